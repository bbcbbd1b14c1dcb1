//! Login throttling: counted before the password is checked, keyed on the (account,
//! network) pair so nobody can lock the owner out, slowed per account, limited per
//! network, shared across server instances, and the same for unknown emails.

use std::sync::Arc;
use std::time::Duration;

use common::config::Limits;
use common::message::OutboxMessage;
use common::outbox;
use common::queue::{Publisher, QueueError};
use http::StatusCode;

use crate::email::fast_sweep;
use testkit::app::{PASSWORD, TestApp, TestResponse};

fn retry_after(response: &TestResponse) -> u64 {
    response.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Ends every counter's window, as if its 15 minutes had passed.
async fn end_windows(app: &TestApp) {
    let db = app.pool().get().await.expect("connection");
    db.execute("UPDATE rate_limits SET expires_at = now() - INTERVAL '1 second'", &[]).await.expect("age");
}

#[tokio::test]
async fn five_failures_block_the_pair_even_for_the_right_password() {
    let app = TestApp::spawn().await;
    app.register("kim@example.com", PASSWORD).await;
    for attempt in 1..=5 {
        let response = app.login("kim@example.com", "wrong password").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }

    let blocked = app.login("kim@example.com", PASSWORD).await;

    assert_eq!(blocked.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(blocked.code(), "too_many_attempts");
    let wait = retry_after(&blocked);
    assert!((1..=900).contains(&wait), "Retry-After {wait}");
    // Another account from the same address is unaffected.
    app.register("lee@example.com", PASSWORD).await;
    assert_eq!(app.login("lee@example.com", PASSWORD).await.status, StatusCode::OK);

    // When the window has passed, the right password works again.
    end_windows(&app).await;
    assert_eq!(app.login("kim@example.com", PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_owner_on_another_network_is_not_locked_out() {
    let first = TestApp::spawn().await;
    let second = first.sibling().await;
    first.register("ora@example.com", PASSWORD).await;
    let (attacker_1, attacker_2) = (first.client_at([127, 0, 0, 2]), second.client_at([127, 0, 0, 2]));
    for attempt in 0..5 {
        let attacker = if attempt % 2 == 0 { &attacker_1 } else { &attacker_2 };
        assert_eq!(attacker.login("ora@example.com", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(attacker_1.login("ora@example.com", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);

    // The owner, at home and on the phone, on either server.
    assert_eq!(second.client_at([127, 0, 0, 3]).login("ora@example.com", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(first.client_at([127, 0, 0, 4]).login("ora@example.com", PASSWORD).await.status, StatusCode::OK);
    // The owner's success does not lift the attacker's block.
    assert_eq!(attacker_2.login("ora@example.com", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn unknown_emails_are_throttled_the_same_way() {
    let app = TestApp::spawn().await;
    app.register("real@example.com", PASSWORD).await;
    let mut real = Vec::new();
    let mut ghost = Vec::new();
    for _ in 0..6 {
        real.push(app.login("real@example.com", "wrong password").await);
        ghost.push(app.login("ghost@example.com", "wrong password").await);
    }
    for (real, ghost) in real.iter().zip(&ghost) {
        assert_eq!(real.status, ghost.status);
        assert_eq!(real.body, ghost.body);
    }
    assert_eq!(real[5].status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_success_resets_the_count() {
    let app = TestApp::spawn().await;
    app.register("max@example.com", PASSWORD).await;
    for round in 0..3 {
        for _ in 0..4 {
            assert_eq!(app.login("max@example.com", "wrong password").await.status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(app.login("max@example.com", PASSWORD).await.status, StatusCode::OK, "round {round}");
    }
}

/// While the guesses race, the owner signs in from four other networks and the attacker's
/// network fails at other accounts: the counters they share (account, network) are
/// counted and forgiven concurrently without a deadlock or a lost owner login.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_guesses_get_at_most_five_password_checks() {
    let first = Arc::new(TestApp::spawn().await);
    let second = Arc::new(first.sibling().await);
    first.register("pia@example.com", PASSWORD).await;

    let guesses: Vec<_> = (0..50)
        .map(|i| {
            let server = if i % 2 == 0 { first.clone() } else { second.clone() };
            tokio::spawn(async move { server.login("pia@example.com", &format!("guess {i}")).await })
        })
        .collect();
    let owner: Vec<_> = (2..6)
        .map(|host| {
            let server =
                if host % 2 == 0 { first.client_at([127, 0, 0, host]) } else { second.client_at([127, 0, 0, host]) };
            tokio::spawn(async move { server.login("pia@example.com", PASSWORD).await.status })
        })
        .collect();
    let others: Vec<_> = (0..10)
        .map(|i| {
            let server = if i % 2 == 0 { first.clone() } else { second.clone() };
            tokio::spawn(async move { server.login(&format!("other{i}@example.com"), "guess").await.status })
        })
        .collect();

    let mut checked = 0;
    for guess in guesses {
        let response = guess.await.expect("task");
        match response.status {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(response.code(), "too_many_attempts");
                assert!((1..=900).contains(&retry_after(&response)), "{:?}", response.headers);
            }
            other => panic!("unexpected {other}: {:?}", response.body),
        }
    }
    assert!((1..=5).contains(&checked), "{checked} passwords checked");
    for status in owner {
        assert_eq!(status.await.expect("task"), StatusCode::OK);
    }
    for status in others {
        assert_eq!(status.await.expect("task"), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn one_network_trying_many_emails_is_blocked() {
    let app = TestApp::spawn().await;
    let limit = Limits::default().login_per_network;
    for i in 0..limit {
        let response = app.login(&format!("spray{i}@example.com"), "guess").await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let next = app.login("spray-new@example.com", "guess").await;
    assert_eq!(next.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(next.code(), "too_many_attempts");
    // Another network is not affected.
    assert_eq!(
        app.client_at([127, 0, 0, 2]).login("spray-new@example.com", "guess").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn successes_from_one_network_do_not_count_against_it() {
    let app = TestApp::spawn_with(None, Limits { login_per_network: 3, ..Limits::default() }).await;
    app.register("office@example.com", PASSWORD).await;
    // A whole office signing in from one address: successes are not failures.
    for _ in 0..10 {
        assert_eq!(app.login("office@example.com", PASSWORD).await.status, StatusCode::OK);
    }
    for i in 0..3 {
        assert_eq!(app.login(&format!("x{i}@example.com"), "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(app.login("office@example.com", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Guesses from many networks (each under its pair limit) slow the account down with a
/// growing delay: nothing refuses the account for the whole window, so the owner gets in.
#[tokio::test]
async fn guesses_from_many_networks_slow_the_account_down() {
    let limits = Limits {
        login_account_delay: Duration::from_secs(100),
        login_account_max_delay: Duration::from_secs(300),
        ..Limits::default()
    };
    let first = TestApp::spawn_with(None, limits).await;
    let second = first.sibling().await;
    first.register("una@example.com", PASSWORD).await;
    let from = |host: u8| {
        if host.is_multiple_of(2) { first.client_at([127, 0, 1, host]) } else { second.client_at([127, 0, 1, host]) }
    };
    for host in 0..5 {
        for _ in 0..2 {
            assert_eq!(from(host).login("una@example.com", "guess").await.status, StatusCode::UNAUTHORIZED);
        }
    }

    // Past 10 failures the next attempt waits the first delay, from any network, even
    // with the right password (checking it would be one more guess).
    let slowed = from(10).login("una@example.com", "guess").await;
    assert_eq!(slowed.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(slowed.code(), "too_many_attempts");
    let first_wait = retry_after(&slowed);
    assert!((1..=100).contains(&first_wait), "Retry-After {first_wait}");
    assert_eq!(from(11).login("una@example.com", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    // Other accounts are not slowed.
    first.register("vic@example.com", PASSWORD).await;
    assert_eq!(from(10).login("vic@example.com", PASSWORD).await.status, StatusCode::OK);

    // Once the delay has passed one more guess is checked, then the delay has doubled.
    pass_the_delay(&first).await;
    assert_eq!(from(12).login("una@example.com", "guess").await.status, StatusCode::UNAUTHORIZED);
    let slower = from(13).login("una@example.com", "guess").await;
    assert_eq!(slower.status, StatusCode::TOO_MANY_REQUESTS);
    let second_wait = retry_after(&slower);
    assert!(second_wait > first_wait && second_wait <= 200, "Retry-After {first_wait} then {second_wait}");

    // The owner waits the delay and gets in: slowed, not locked out.
    pass_the_delay(&first).await;
    assert_eq!(from(14).login("una@example.com", PASSWORD).await.status, StatusCode::OK);
}

/// Moves every counter's last hit into the past, as if the growing delay had passed.
async fn pass_the_delay(app: &TestApp) {
    let db = app.pool().get().await.expect("connection");
    db.execute("UPDATE rate_limits SET last_at = last_at - INTERVAL '1 hour'", &[]).await.expect("age");
}

#[tokio::test]
async fn the_count_is_shared_between_server_instances() {
    let first = TestApp::spawn().await;
    let second = first.sibling().await;
    first.register("ivy@example.com", PASSWORD).await;
    for attempt in 0..5 {
        let server = if attempt % 2 == 0 { &first } else { &second };
        assert_eq!(server.login("ivy@example.com", "wrong password").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(second.login("ivy@example.com", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first.login("ivy@example.com", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Publishes nothing: these sweeps find no outbox rows.
struct NoQueue;

#[async_trait::async_trait]
impl Publisher for NoQueue {
    async fn publish(&self, _: &OutboxMessage) -> Result<(), QueueError> {
        Ok(())
    }
}

#[tokio::test]
async fn the_sweeper_deletes_counters_past_their_window() {
    let app = TestApp::spawn().await;
    for i in 0..4 {
        app.login(&format!("gone{i}@example.com"), "guess").await;
    }
    end_windows(&app).await;
    app.login("kept@example.com", "guess").await;
    // Pair, account and network: the network's window restarted with the last attempt.
    assert_eq!(app.count("rate_limits").await, 4 * 2 + 3);

    outbox::sweep(app.pool(), &NoQueue, &fast_sweep()).await.expect("sweep");

    let left: Vec<String> = app
        .pool()
        .get()
        .await
        .expect("connection")
        .query("SELECT subject FROM rate_limits ORDER BY subject", &[])
        .await
        .expect("query")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(left.iter().all(|subject| subject.contains("kept@example.com") || subject.starts_with("login:network:")));
}
