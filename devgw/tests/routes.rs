//! The router follows the template: a route changed in a copy of `infra/template.yaml`
//! moves the path to the function the copy names, and the old path falls through to the
//! `$default` route. Requests reach the function as API Gateway payload 2.0 events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use devgw::gateway::Gateway;
use devgw::invoke::Invoker;
use devgw::template::Template;
use serde_json::json;
use support::fake_functions;
use testkit::http::{get, post, send};
use tokio::net::TcpListener;

fn project_template() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml")).unwrap()
}

/// The template text with ListProductsFunction's path replaced by `path`.
fn with_list_products_path(text: &str, path: &str) -> String {
    let start = text.find("  ListProductsFunction:").unwrap();
    let offset = text[start..].find("Path: /api/v1/products\n").unwrap() + start;
    format!("{}Path: {path}\n{}", &text[..offset], &text[offset + "Path: /api/v1/products\n".len()..])
}

/// Serves the template at `path` in front of fake functions that answer their own name.
async fn gateway(path: &Path) -> (String, support::Calls) {
    let template = Template::read(path).unwrap();
    let (invoke, calls) = fake_functions(|function, _| {
        Ok(json!({"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": function}))
    })
    .await;
    let gateway = Arc::new(Gateway::new(template.routes, template.default_function, Invoker::new(&invoke)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(devgw::serve(listener, move |request, peer| gateway.clone().handle(request, peer)));
    (base, calls)
}

fn copy(text: &str, name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("devgw-{}-{name}.yaml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

async fn answered_by(request: http::Request<http_body_util::Full<bytes::Bytes>>) -> String {
    let (status, _, body) = send(request).await;
    assert_eq!(status, 200);
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test]
async fn a_route_changed_in_the_template_moves_to_its_function() {
    let original = copy(&project_template(), "original");
    let (base, _) = gateway(&original).await;
    assert_eq!(answered_by(get(&format!("{base}/api/v1/products"))).await, "list-products");

    let changed = copy(&with_list_products_path(&project_template(), "/api/v1/games"), "changed");
    let (base, calls) = gateway(&changed).await;
    assert_eq!(answered_by(get(&format!("{base}/api/v1/games?limit=2"))).await, "list-products");
    // The old path is nobody's route now: the $default route's function gets it.
    assert_eq!(answered_by(get(&format!("{base}/api/v1/products"))).await, "openapi");
    // The other method on that path is still its own route.
    let create = post(&format!("{base}/api/v1/products"), "application/json", r#"{"name":"x"}"#);
    assert_eq!(answered_by(create).await, "create-product");

    let calls = calls.lock().unwrap().clone();
    let (_, games) = &calls[0];
    assert_eq!(games["routeKey"], "GET /api/v1/games");
    assert_eq!(games["rawPath"], "/api/v1/games");
    assert_eq!(games["rawQueryString"], "limit=2");
    assert_eq!(games["requestContext"]["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(games["requestContext"]["stage"], "$default");
    assert_eq!(calls[1].1["routeKey"], "$default");
    assert_eq!(calls[2].1["body"], r#"{"name":"x"}"#);
    assert_eq!(calls[2].1["isBase64Encoded"], false);
    for path in [original, changed] {
        let _ = std::fs::remove_file(path);
    }
}

#[tokio::test]
async fn path_parameters_binary_bodies_and_function_errors() {
    let path = copy(&project_template(), "params");
    let template = Template::read(&path).unwrap();
    let (invoke, calls) = fake_functions(|function, _| match function {
        "create-order" => Err(r#"{"errorType":"panic","errorMessage":"boom"}"#.to_owned()),
        _ => Ok(json!({"statusCode": 204, "cookies": ["a=1", "b=2"]})),
    })
    .await;
    let gateway = Arc::new(Gateway::new(template.routes, template.default_function, Invoker::new(&invoke)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(devgw::serve(listener, move |request, peer| gateway.clone().handle(request, peer)));

    let (status, headers, _) = send(get(&format!("{base}/api/v1/products/42"))).await;
    assert_eq!(status, 204);
    assert_eq!(headers.get_all("set-cookie").iter().count(), 2);
    let event = calls.lock().unwrap()[0].1.clone();
    assert_eq!(event["routeKey"], "GET /api/v1/products/{id}");
    assert_eq!(event["pathParameters"], json!({"id": "42"}));

    let (status, _, _) =
        send(post(&format!("{base}/api/v1/auth/register"), "application/octet-stream", vec![0u8, 159, 146])).await;
    assert_eq!(status, 204);
    let event = calls.lock().unwrap()[1].1.clone();
    assert_eq!(event["isBase64Encoded"], true);
    assert_eq!(event["body"], "AJ+S");

    // A function error is API Gateway's 500, not the function's text.
    let (status, _, body) = send(post(&format!("{base}/api/v1/orders"), "application/json", "{}")).await;
    assert_eq!(status, 500);
    assert_eq!(&body[..], br#"{"message":"Internal Server Error"}"#);
    let _ = std::fs::remove_file(path);
}
