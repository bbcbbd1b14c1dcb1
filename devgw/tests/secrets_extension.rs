//! devgw's Secrets extension, read by the functions' own client
//! (`common::config::SecretsExtension`), answers from LocalStack's Secrets Manager.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use common::config::SecretsExtension;
use devgw::secrets::SecretsProxy;
use testkit::http::{post, send};
use testkit::services::localstack_url;
use tokio::net::TcpListener;

async fn create_secret(name: &str, value: &str) {
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("{}/", localstack_url()))
        .header("x-amz-target", "secretsmanager.CreateSecret")
        .header("content-type", "application/x-amz-json-1.1")
        .body(
            serde_json::json!({"Name": name, "SecretString": value, "ClientRequestToken": uuid::Uuid::new_v4().to_string()})
                .to_string()
                .into(),
        )
        .unwrap();
    let (status, _, body) = send(request).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

fn client(port: u16, token: &str) -> SecretsExtension {
    let env: HashMap<&str, String> = HashMap::from([
        ("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT", port.to_string()),
        ("AWS_SESSION_TOKEN", token.into()),
    ]);
    SecretsExtension::from_env(&move |name: &str| env.get(name).cloned()).unwrap()
}

#[tokio::test]
async fn functions_read_localstack_secrets_through_the_extension_interface() {
    let name = format!("devgw/test-{}", uuid::Uuid::new_v4().simple());
    create_secret(&name, r#"{"username":"app","password":"p w"}"#).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let proxy = Arc::new(SecretsProxy::new(&localstack_url(), "session"));
    tokio::spawn(devgw::serve(listener, move |request, _| proxy.clone().handle(request)));

    let value = client(port, "session").get(&name).await.map_err(|e| e.to_string());
    assert_eq!(value.as_deref(), Ok(r#"{"username":"app","password":"p w"}"#));

    let wrong_token = client(port, "other").get(&name).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(wrong_token.contains("401"), "{wrong_token}");
    let missing = client(port, "session").get(&format!("{name}-missing")).await.err().map(|e| e.to_string());
    assert!(missing.unwrap_or_default().contains("ResourceNotFoundException"));
    // Only the extension's one path is served.
    let (status, _, _) =
        send(post(&format!("http://127.0.0.1:{port}/systemsmanager/parameters/get"), "text/plain", "")).await;
    assert_eq!(status, 404);
}
