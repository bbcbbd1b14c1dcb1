//! The EMF metric lines and the correlation ids, as a real `gamestore serve` writes them
//! (JSON logs, as in Lambda): every metric line valid against `infra/emf.schema.json`
//! (checked by Python's `jsonschema`, in the project's `.venv`), counting what the user
//! did, free of personal data; and one registration followed from the API call to its
//! mail by its request id and X-Ray trace id.

use std::io::Write;
use std::process::{Command, Stdio};

use common::domain::Role;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use testkit::app::TestApp;

use crate::logs::{Server, base_url, call, call_with, send};

const EMAIL: &str = "Metered.Person@Example.com";
const PASSWORD: &str = "pw-never-in-a-metric";
const TRACE: &str = "1-67a0b1c2-0123456789abcdef01234567";

/// The log's lines that are JSON objects.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()).filter(Value::is_object).collect()
}

fn emf_lines(log: &str) -> Vec<Value> {
    json_lines(log).into_iter().filter(|line| line.get("_aws").is_some()).collect()
}

/// What the schema refuses in `lines`, one message per problem.
fn schema_errors(lines: &[Value]) -> Vec<String> {
    const CHECK: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema)
for n, line in enumerate(sys.stdin):
    for error in validator.iter_errors(json.loads(line)):
        print(f"line {n}: {error.json_path}: {error.message}")
"#;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut python = Command::new(format!("{root}/.venv/bin/python"))
        .args(["-c", CHECK, &format!("{root}/infra/emf.schema.json")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the project's .venv with jsonschema (scripts/test.sh installs it)");
    let input: String = lines.iter().map(|line| format!("{line}\n")).collect();
    python.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write lines");
    let output = python.wait_with_output().expect("jsonschema ran");
    assert!(output.status.success(), "jsonschema failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().map(str::to_owned).collect()
}

/// What the EMF specification asks beyond the schema: each metric a number or at most 100
/// numbers at the root, each dimension key a root string, the line at most 1 MB.
fn spec_errors(line: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    if line.to_string().len() > 1 << 20 {
        errors.push("longer than 1 MB".to_owned());
    }
    for directive in line["_aws"]["CloudWatchMetrics"].as_array().into_iter().flatten() {
        for name in directive["Metrics"].as_array().into_iter().flatten().filter_map(|m| m["Name"].as_str()) {
            let ok = match &line[name] {
                Value::Number(_) => true,
                Value::Array(values) => values.len() <= 100 && values.iter().all(Value::is_number),
                _ => false,
            };
            if !ok {
                errors.push(format!("metric {name} has no numeric value at the root"));
            }
        }
        for key in directive["Dimensions"].as_array().into_iter().flatten().flat_map(|set| set.as_array()).flatten() {
            if !key.as_str().is_some_and(|key| line[key].is_string()) {
                errors.push(format!("dimension {key} is not a root string"));
            }
        }
    }
    errors
}

/// The sum of `name` over `lines` (an array counts each value).
fn total(lines: &[Value], name: &str) -> f64 {
    lines
        .iter()
        .map(|line| match &line[name] {
            Value::Number(n) => n.as_f64().unwrap_or_default(),
            Value::Array(values) => values.len() as f64,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn every_metric_line_is_valid_emf_and_counts_what_users_did() {
    let app = TestApp::spawn().await;
    let server = Server::start_with(&app, "json");
    let base = base_url(&server).await;

    let (status, _) = call(&base, "/api/v1/auth/register", json!({"email": EMAIL, "password": PASSWORD}), None).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = call(&base, "/api/v1/auth/login", json!({"email": EMAIL, "password": "wrong"}), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = call(&base, "/api/v1/auth/login", json!({"email": EMAIL, "password": PASSWORD}), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    let admin = app.user_token(Role::Admin).await;
    let product = json!({"name": "Metered Game", "price": 100, "sku": "METERED-1", "stock": 3});
    let (status, product) = call(&base, "/api/v1/products", product, Some(&admin)).await;
    assert_eq!(status, StatusCode::CREATED, "{product}");
    let order = json!({"product_id": product["id"], "quantity": 2});
    let (status, body) = call(&base, "/api/v1/orders", order.clone(), Some(&token)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = call(&base, "/api/v1/orders", order, Some(&token)).await;
    assert_eq!(status, StatusCode::CONFLICT, "only 1 left: {body}");
    // Two mails: the welcome and the order's confirmation, in one batch or two. The worker's
    // line comes after its batch, so after the mails' own log lines.
    let start = std::time::Instant::now();
    while total(&emf_lines(&server.log()), "MailsSent") < 2.0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "two mails not sent:\n{}", server.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let log = server.stop();

    let lines = emf_lines(&log);
    assert!(lines.len() >= 7, "one line per request and one per mail batch:\n{log}");
    assert_eq!(schema_errors(&lines), Vec::<String>::new(), "lines refused by the EMF schema:\n{log}");
    for line in &lines {
        assert_eq!(spec_errors(line), Vec::<String>::new(), "{line}");
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "GameStore", "{line}");
        assert_eq!(line["Service"], "gamestore", "{line}");
        assert!(line["RequestId"].is_string() && line["TraceId"].is_string(), "{line}");
    }
    let expected = [
        ("Registrations", 1.0),
        ("LoginsFailed", 1.0),
        ("LoginsOk", 1.0),
        ("OrdersPlaced", 1.0),
        ("OrderLines", 1.0),
        ("UnitsSold", 2.0),
        ("OutOfStock", 1.0),
        ("MailsSent", 2.0),
        ("ColdStart", 1.0),
        ("IdempotentReplays", 0.0),
        ("MailsFailed", 0.0),
    ];
    for (name, count) in expected {
        assert_eq!(
            total(&lines, name),
            count,
            "{name} in:\n{}",
            lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")
        );
    }
    for timing in ["Latency", "MailLag", "PublishLag"] {
        let timed: Vec<f64> = lines
            .iter()
            .flat_map(|line| match &line[timing] {
                Value::Array(values) => values.iter().filter_map(Value::as_f64).collect(),
                value => value.as_f64().into_iter().collect::<Vec<_>>(),
            })
            .collect();
        let expected = if timing == "Latency" { lines.len() } else { 2 };
        assert_eq!(timed.len(), expected, "{timing}: every line times its invocation, two publishes, two mails");
        assert!(timed.iter().all(|ms| *ms >= 0.0), "{timing}: {timed:?}");
    }

    let metric_text = lines.iter().map(Value::to_string).collect::<String>().to_lowercase();
    for personal in ["metered.person", "example.com", PASSWORD, &token.to_lowercase()] {
        assert!(!metric_text.contains(personal), "{personal} in a metric line:\n{metric_text}");
    }
}

/// The metric line of the request sent with `x-request-id: id`.
fn line_of<'a>(lines: &'a [Value], id: &str, log: &str) -> &'a Value {
    lines.iter().find(|line| line["RequestId"] == id).unwrap_or_else(|| panic!("no metric line for {id}:\n{log}"))
}

#[tokio::test]
async fn every_request_that_reads_the_database_reports_database_time_and_pool_wait() {
    let app = TestApp::spawn().await;
    let server = Server::start_with(&app, "json");
    let base = base_url(&server).await;
    let admin = app.user_token(Role::Admin).await;
    let (status, _) = call(&base, "/api/v1/auth/register", json!({"email": EMAIL, "password": PASSWORD}), None).await;
    assert_eq!(status, StatusCode::CREATED);

    fn id(name: &str) -> [(&str, &str); 1] {
        [("x-request-id", name)]
    }
    let product = json!({"name": "Timed Game", "price": 100, "sku": "TIMED-1", "stock": 3});
    let (status, _, product) =
        send(Method::POST, &base, "/api/v1/products", Some(product), Some(&admin), &id("product-create")).await;
    assert_eq!(status, StatusCode::CREATED, "{product}");
    let (status, _, page) = send(Method::GET, &base, "/api/v1/products", None, None, &id("catalogue-page")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let login = json!({"email": EMAIL, "password": PASSWORD});
    let (status, _, body) = send(Method::POST, &base, "/api/v1/auth/login", Some(login), None, &id("login")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["token"].as_str().expect("token").to_owned();
    let order = json!({"product_id": product["id"], "quantity": 1});
    let (status, order) = call(&base, "/api/v1/orders", order, Some(&token)).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let cancel = format!("/api/v1/orders/{}/cancel", order["order_id"]);
    let (status, _, body) = send(Method::POST, &base, &cancel, None, Some(&token), &id("cancel")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let log = server.stop();

    let lines = emf_lines(&log);
    for request in ["catalogue-page", "login", "product-create", "cancel"] {
        let line = line_of(&lines, request, &log);
        let declared: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .map(|all| all.iter().filter_map(|m| m["Name"].as_str()).collect())
            .unwrap_or_default();
        for timing in ["DatabaseTime", "PoolWait"] {
            assert!(line[timing].as_f64().is_some_and(|ms| ms >= 0.0), "{request} has no {timing}: {line}");
            assert!(declared.contains(&timing), "{request} does not declare {timing}: {line}");
        }
    }
}

#[tokio::test]
async fn metrics_off_writes_no_line_and_keeps_the_request_ids_for_the_mail() {
    let app = TestApp::spawn().await;
    let server = Server::start_with_env(&app, "json", &[("METRICS", "off")]);
    let base = base_url(&server).await;
    let (status, headers, body) = call_with(
        &base,
        "/api/v1/auth/register",
        json!({"email": EMAIL, "password": PASSWORD}),
        None,
        &[("x-request-id", "unmetered")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers.get("x-request-id").and_then(|v| v.to_str().ok()), Some("unmetered"));
    let mail = server.wait_for_log("welcome mail sent").await;
    let log = server.stop();

    assert_eq!(emf_lines(&log), Vec::<Value>::new(), "no metric line:\n{log}");
    assert!(json_lines(&mail).iter().any(|line| line["span"]["request_id"] == "unmetered"), "{mail}");
}

#[test]
fn the_schema_refuses_what_the_specification_forbids() {
    let line = |directive: Value| json!({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [directive]}, "A": 1});
    let bad = [
        line(json!({"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "A", "Unit": "Millis"}]})),
        line(json!({"Dimensions": [[]], "Metrics": [{"Name": "A"}]})),
        line(json!({"Namespace": ":N", "Dimensions": [[]], "Metrics": [{"Name": "A"}]})),
        line(
            json!({"Namespace": "N", "Dimensions": [(0..31).map(|i| format!("D{i}")).collect::<Vec<_>>()], "Metrics": [{"Name": "A"}]}),
        ),
        json!({"_aws": {"CloudWatchMetrics": []}}),
    ];
    let good = line(json!({"Namespace": "N", "Dimensions": [[]], "Metrics": [{"Name": "A", "Unit": "Count"}]}));
    let errors = schema_errors(&[bad.to_vec(), vec![good]].concat());
    for n in 0..bad.len() {
        assert!(errors.iter().any(|e| e.starts_with(&format!("line {n}:"))), "line {n} accepted: {errors:?}");
    }
    assert!(!errors.iter().any(|e| e.starts_with(&format!("line {}:", bad.len()))), "{errors:?}");
}

#[tokio::test]
async fn a_registration_is_followed_to_its_mail_by_its_request_and_trace_ids() {
    let app = TestApp::spawn().await;
    let server = Server::start_with(&app, "json");
    let base = base_url(&server).await;
    let header = format!("Root={TRACE};Parent=53995c3f42cd8ad8;Sampled=1");

    let (status, headers, body) = call_with(
        &base,
        "/api/v1/auth/register",
        json!({"email": EMAIL, "password": PASSWORD}),
        None,
        &[("x-amzn-trace-id", &header)],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let request_id = headers.get("x-request-id").and_then(|v| v.to_str().ok()).expect("x-request-id").to_owned();
    server.wait_for_log("welcome mail sent").await;
    let log = server.stop();

    let lines = json_lines(&log);
    let of_the_request: Vec<&Value> =
        lines.iter().filter(|line| line["span"]["request_id"] == request_id.as_str()).collect();
    assert!(!of_the_request.is_empty(), "no log line names request {request_id}:\n{log}");
    for line in &of_the_request {
        assert_eq!(line["span"]["trace_id"], TRACE, "{line}");
    }
    let mail = lines
        .iter()
        .find(|line| line["fields"]["message"] == "welcome mail sent")
        .unwrap_or_else(|| panic!("no mail line:\n{log}"));
    assert_eq!(mail["span"]["name"], "mail", "{mail}");
    assert_eq!(mail["span"]["request_id"], request_id.as_str(), "the mail names its request: {mail}");
    assert_eq!(mail["span"]["trace_id"], TRACE, "{mail}");
    let registered = emf_lines(&log)
        .into_iter()
        .find(|line| line["Registrations"] == 1.0)
        .unwrap_or_else(|| panic!("no metric line for the registration:\n{log}"));
    assert_eq!(registered["RequestId"], request_id.as_str());
    assert_eq!(registered["TraceId"], TRACE);
}
