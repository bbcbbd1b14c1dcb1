#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real `email-worker` binary fed SQS batches as Lambda feeds them: SQS hands a failed
//! record out again until its `maxReceiveCount`-th receive, then moves it to the DLQ, so
//! `MailsDeadLettered` must count it once, on that last receive, not on every failure.

use std::io::Read;
use std::process::Stdio;

use serde_json::{Value, json};
use testkit::lambda::{FakeRuntime, lambda_command, spawn_function};

/// A record of the fixture with this id, body and `ApproximateReceiveCount`.
fn record(id: &str, body: &str, receives: u32) -> Value {
    let fixture = format!("{}/../../events/email-worker-sqs.json", env!("CARGO_MANIFEST_DIR"));
    let mut record: Value =
        serde_json::from_str::<Value>(&std::fs::read_to_string(fixture).unwrap()).unwrap()["Records"][0].clone();
    record["messageId"] = json!(id);
    record["body"] = json!(body);
    record["attributes"]["ApproximateReceiveCount"] = json!(receives.to_string());
    record
}

/// The sum of `name` over the EMF lines of `stdout`.
fn total(stdout: &str, name: &str) -> f64 {
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("_aws").is_some())
        .filter_map(|line| line[name].as_f64())
        .sum()
}

#[tokio::test]
async fn a_message_is_counted_dead_lettered_once_on_its_last_receive() {
    const MAX_RECEIVES: u32 = 3;
    // One malformed message (it fails on every receive) and one well-formed whose send
    // fails for a transient reason (the database is a closed port), both received
    // MAX_RECEIVES times, as SQS redelivers them before its redrive moves them to the DLQ.
    let welcome = json!({"id": 1, "kind": "welcome_email", "payload": {"to": "ann@example.com"}}).to_string();
    let batches: Vec<(String, Value)> = (1..=MAX_RECEIVES)
        .map(|receives| {
            let records =
                [record("malformed", "{\"id\": \"not a message\"", receives), record("transient", &welcome, receives)];
            (format!("receive-{receives}"), json!({"Records": records}))
        })
        .collect();
    let mut runtime = FakeRuntime::start("email-worker", batches).await.unwrap();
    let mut command = lambda_command(env!("CARGO_BIN_EXE_email-worker"), "email-worker", runtime.address);
    command
        .env("DATABASE_URL", format!("postgres://u@127.0.0.1:{}/db", testkit::process::free_port()))
        .env("MAILER", "log")
        .env("QUEUE_MAX_ATTEMPTS", MAX_RECEIVES.to_string())
        .stdout(Stdio::piped());
    let mut child = spawn_function(&mut command).unwrap();

    for receives in 1..=MAX_RECEIVES {
        let answer = runtime.answer().await;
        assert_eq!(answer.id, format!("receive-{receives}"), "{}", answer.body);
        assert_eq!(
            answer.body,
            json!({"batchItemFailures": [{"itemIdentifier": "malformed"}, {"itemIdentifier": "transient"}]}),
            "both fail on every receive"
        );
    }
    let _ = child.0.kill();
    let mut stdout = String::new();
    child.0.stdout.take().expect("stdout").read_to_string(&mut stdout).unwrap();

    assert_eq!(total(&stdout, "MailsDeadLettered"), 2.0, "each message once, on its last receive:\n{stdout}");
    assert_eq!(total(&stdout, "MailsFailed"), f64::from(MAX_RECEIVES), "every transient failure:\n{stdout}");
}
