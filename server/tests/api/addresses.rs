//! Email addresses at the API edge: only a plain mailbox registers or signs in. A display
//! name, a list or a domain literal creates no account and queues no mail, and signing in
//! with one answers the same whether or not the mailbox inside it has an account.

use http::StatusCode;

use testkit::app::{PASSWORD, TestApp};

/// The forms of issue 12 and their neighbours, each aimed at an inbox that is not the
/// caller's (or at no inbox at all).
const REFUSED: &[&str] = &[
    "Claim your refund at evil.example <victim@corp.com>",
    "a <victim@corp.com>",
    "b <victim@corp.com>",
    "x@evil.com, y <victim2@corp.com>",
    "user@[127.0.0.1]",
    "<victim@corp.com>",
    "victim@corp.com, victim2@corp.com",
    "\"victim@corp.com\"@evil.com",
    "victim@corp.com (Your refund)",
    "victim@corp.com\r\nBcc: victim2@corp.com",
    " victim@corp.com",
    "victim@127.0.0.1",
    "victim@localhost",
];

#[tokio::test]
async fn only_a_plain_mailbox_creates_an_account_or_a_mail() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register("victim@corp.com", PASSWORD).await.status, StatusCode::CREATED);

    for raw in REFUSED {
        let response = app.register(raw, PASSWORD).await;
        assert_eq!(
            (response.status, response.code(), response.field()),
            (StatusCode::BAD_REQUEST, "invalid_input", "email"),
            "register {raw:?}: {:?}",
            response.body
        );
    }

    assert_eq!(app.count("users").await, 1);
    assert_eq!(app.count("outbox").await, 1);
    let recipient: String = app.query_one("SELECT payload->>'to' FROM outbox", &[]).await;
    assert_eq!(recipient, "victim@corp.com");
}

/// 400, not 401: the address is refused for its form before any account is looked up, so
/// the answer is the same for a mailbox with an account and one without (no enumeration),
/// and no attempt is counted against the account's owner.
#[tokio::test]
async fn signing_in_with_anything_but_a_plain_mailbox_is_invalid_input() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register("victim@corp.com", PASSWORD).await.status, StatusCode::CREATED);

    for raw in REFUSED {
        let response = app.login(raw, PASSWORD).await;
        assert_eq!(
            (response.status, response.code(), response.field()),
            (StatusCode::BAD_REQUEST, "invalid_input", "email"),
            "login {raw:?}: {:?}",
            response.body
        );
        let unknown = app.login(&raw.replace("victim@", "nobody@"), PASSWORD).await;
        assert_eq!((unknown.status, &unknown.body), (response.status, &response.body), "{raw:?}");
    }
    assert_eq!(app.login("victim@corp.com", PASSWORD).await.status, StatusCode::OK);
}

/// An internationalised domain is one account however it is spelled, stored and mailed in
/// punycode (what SES and DNS take).
#[tokio::test]
async fn an_idn_domain_is_stored_and_mailed_in_punycode() {
    let app = TestApp::spawn().await;

    let response = app.register("Ann@BÜCHER.example", PASSWORD).await;

    assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
    assert_eq!(response.body["user"]["email"], "ann@xn--bcher-kva.example");
    let recipient: String = app.query_one("SELECT payload->>'to' FROM outbox", &[]).await;
    assert_eq!(recipient, "ann@xn--bcher-kva.example");
    let again = app.register("ann@xn--bcher-kva.example", PASSWORD).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "email_taken"));
    assert_eq!(app.login("ann@bücher.example", PASSWORD).await.status, StatusCode::OK);
    assert_eq!(app.login("ann@xn--bcher-kva.example", PASSWORD).await.status, StatusCode::OK);
}
