//! What the migrate Lambda and `gamestore migrate` run after a deploy
//! (`common::setup::migrate_and_ensure_admin`): idempotent migrations, then the first admin
//! from the admin secret only while no admin exists.

use common::config::AdminCredentials;
use common::setup::{SetupError, migrate_and_ensure_admin};
use http::StatusCode;

use testkit::app::TestApp;

fn creds(email: &str, password: &str) -> Option<AdminCredentials> {
    Some(AdminCredentials { email: email.to_owned(), password: password.to_owned() })
}

async fn admins(app: &TestApp) -> i64 {
    app.query_one("SELECT count(*) FROM users WHERE role = 'admin'", &[]).await
}

#[tokio::test]
async fn first_admin_is_created_once_and_never_reset() {
    let app = TestApp::spawn().await;

    let report = migrate_and_ensure_admin(&app.owner_pool(), None, None).await.expect("migrate without admin");
    assert!(report.applied_migrations.is_empty(), "the test database is already migrated");
    assert_eq!(report.admin, "skipped");
    assert_eq!(admins(&app).await, 0);

    let report = migrate_and_ensure_admin(&app.owner_pool(), None, creds("Root@Example.com", "first password"))
        .await
        .expect("migrate");
    assert_eq!(report.admin, "created");
    assert_eq!(admins(&app).await, 1);
    let login = app.login("root@example.com", "first password").await;
    assert_eq!(login.status, StatusCode::OK, "{:?}", login.body);
    let token = login.body["token"].as_str().expect("token").to_owned();
    let created = app
        .post(
            "/api/v1/products",
            &serde_json::json!({"name": "Admin made", "price": 100, "sku": "ADMIN-1"}),
            Some(&token),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "the first admin is an admin: {:?}", created.body);

    // Every later deploy: nothing changes, not even the password, whatever the secret says.
    let report = migrate_and_ensure_admin(&app.owner_pool(), None, creds("root@example.com", "rotated in the secret"))
        .await
        .expect("again");
    assert_eq!(report.admin, "present");
    let report = migrate_and_ensure_admin(&app.owner_pool(), None, creds("other@example.com", "another password"))
        .await
        .expect("again");
    assert_eq!(report.admin, "present");
    assert_eq!(admins(&app).await, 1);
    assert_eq!(app.login("root@example.com", "first password").await.status, StatusCode::OK);
    assert_eq!(app.login("other@example.com", "another password").await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_account_registered_with_the_admin_email_is_taken_over() {
    let app = TestApp::spawn().await;
    assert_eq!(app.register("boss@example.com", "squatter password").await.status, StatusCode::CREATED);

    let report = migrate_and_ensure_admin(&app.owner_pool(), None, creds("boss@example.com", "the real password"))
        .await
        .expect("migrate");
    assert_eq!(report.admin, "created");
    assert_eq!(admins(&app).await, 1);
    // Whoever registered the address first can no longer log in to the admin account.
    assert_eq!(app.login("boss@example.com", "squatter password").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.login("boss@example.com", "the real password").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_invalid_admin_secret_is_reported_before_anything_is_written() {
    let app = TestApp::spawn().await;
    let err =
        migrate_and_ensure_admin(&app.owner_pool(), None, creds("not-an-email", "long enough password")).await.err();
    assert!(matches!(err, Some(SetupError::InvalidAdmin { field: "email", .. })), "{err:?}");
    let err = migrate_and_ensure_admin(&app.owner_pool(), None, creds("a@example.com", "short")).await.err();
    assert!(matches!(err, Some(SetupError::InvalidAdmin { field: "password", .. })), "{err:?}");
    assert_eq!(admins(&app).await, 0);
}
