//! Retention: the sweeper deletes expired idempotency and registration keys, and settled
//! outbox rows with their delivery records past the retention period, in bounded batches;
//! newer rows stay, and an unsettled outbox row is never deleted.

use common::config::{RetentionConfig, SweepConfig};
use std::time::Duration;

use common::domain::Role;
use common::outbox;
use common::retention::PurgeReport;

use testkit::unique;

use crate::email::fast_sweep;
use crate::mail_failures::RecordingPublisher;
use testkit::app::TestApp;

/// An outbox row created `age` days ago, published or not, settled `settled` days ago (with
/// its delivery record: sent, or rejected) or not settled at all.
struct Row {
    age: i32,
    published: bool,
    settled: Option<(i32, &'static str)>,
}

async fn insert(app: &TestApp, row: Row) -> i64 {
    let to = format!("{}@example.com", unique("kept"));
    let id: i64 = app
        .query_one(
            "INSERT INTO outbox (kind, payload, created_at, last_attempt_at, published_at, settled_at) \
             VALUES ('welcome_email', jsonb_build_object('to', $1::TEXT), \
                     now() - make_interval(days => $2), now() - make_interval(days => $2), \
                     CASE WHEN $3 THEN now() - make_interval(days => $2) END, \
                     now() - make_interval(days => $4)) \
             RETURNING id",
            &[&to, &row.age, &row.published, &row.settled.map(|(days, _)| days)],
        )
        .await;
    let (claimed, outcome) = row.settled.unwrap_or((row.age, "claimed"));
    let client = app.pool().get().await.unwrap();
    if row.published {
        client
            .execute(
                "INSERT INTO email_deliveries (message_id, recipient, claimed_at, sent_at, rejected_at, failure) \
                 VALUES ($1, $2, now() - make_interval(days => $3), \
                         CASE WHEN $4 = 'sent' THEN now() - make_interval(days => $3) END, \
                         CASE WHEN $4 = 'rejected' THEN now() - make_interval(days => $3) END, \
                         CASE WHEN $4 = 'rejected' THEN 'MessageRejected: test' END)",
                &[&id, &to, &claimed, &outcome],
            )
            .await
            .unwrap();
    }
    id
}

async fn ids(app: &TestApp, sql: &str) -> Vec<i64> {
    let client = app.pool().get().await.unwrap();
    client.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn a_sweep_deletes_what_is_past_retention_in_bounded_batches_and_keeps_the_rest() {
    let app = TestApp::spawn().await;
    app.user_token(Role::User).await;
    let user: i64 = app.query_one("SELECT id FROM users", &[]).await;
    let client = app.pool().get().await.unwrap();
    // 25 expired order keys and one 23 hours old; one expired registration key, one fresh.
    client
        .execute(
            "INSERT INTO idempotency_keys (user_id, key, fingerprint, created_at) \
             SELECT $1::BIGINT, 'old-' || n, 'f', now() - INTERVAL '25 hours' FROM generate_series(1, 25) AS n \
             UNION ALL SELECT $1::BIGINT, 'fresh', 'f', now() - INTERVAL '23 hours'",
            &[&user],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO registration_keys (key, email, created_at) VALUES \
             ('old', 'a@example.com', now() - INTERVAL '25 hours'), \
             ('fresh', 'b@example.com', now() - INTERVAL '23 hours')",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    let sent_long_ago = insert(&app, Row { age: 31, published: true, settled: Some((31, "sent")) }).await;
    let rejected_long_ago = insert(&app, Row { age: 40, published: true, settled: Some((31, "rejected")) }).await;
    let sent_recently = insert(&app, Row { age: 29, published: true, settled: Some((29, "sent")) }).await;
    let unsent_claimed = insert(&app, Row { age: 60, published: true, settled: None }).await;
    let unpublished = insert(&app, Row { age: 60, published: false, settled: None }).await;

    // Batches of 2, at most 10 batches per table and sweep: 20 keys per sweep.
    let publisher = RecordingPublisher::default();
    let config = SweepConfig {
        retention: RetentionConfig { period: Duration::from_secs(30 * 86_400), batch: 2 },
        ..fast_sweep()
    };
    let first = outbox::sweep(app.pool(), &publisher, &config).await.unwrap();
    assert_eq!(first.deleted, PurgeReport { idempotency_keys: 20, registration_keys: 1, outbox: 2, rate_limits: 0 });
    let second = outbox::sweep(app.pool(), &publisher, &config).await.unwrap();
    assert_eq!(second.deleted, PurgeReport { idempotency_keys: 5, registration_keys: 0, outbox: 0, rate_limits: 0 });

    let keys: Vec<String> = {
        let client = app.pool().get().await.unwrap();
        client.query("SELECT key FROM idempotency_keys", &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
    };
    assert_eq!(keys, vec!["fresh".to_owned()]);
    let registration: String = app.query_one("SELECT string_agg(key, ',') FROM registration_keys", &[]).await;
    assert_eq!(registration, "fresh");
    let mut kept = vec![sent_recently, unsent_claimed, unpublished];
    kept.sort_unstable();
    assert_eq!(ids(&app, "SELECT id FROM outbox ORDER BY id").await, kept);
    assert_eq!(
        ids(&app, "SELECT message_id FROM email_deliveries ORDER BY message_id").await,
        vec![sent_recently, unsent_claimed]
    );
    assert!(!kept.contains(&sent_long_ago) && !kept.contains(&rejected_long_ago));
}
