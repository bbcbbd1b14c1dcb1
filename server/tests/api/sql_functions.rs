//! Every SQL function lives in one file of `migrations/functions`, which `migrate` applies
//! after the versioned migrations (migrations/README.md): the database's definitions are
//! the files', and no function is defined only in a migration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::db::Pool;
use deadpool_postgres::GenericClient;

use testkit::app::TestApp;

/// Signature (`name(argument types)`) to `pg_get_functiondef`, for the functions of `schema`.
type Definitions = BTreeMap<String, String>;

const DEFINITIONS: &str = "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p \
                            WHERE p.pronamespace = $1::text::regnamespace";

fn function_files() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../migrations/functions");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .map(|path| {
            let name = path.file_stem().and_then(|s| s.to_str()).expect("file name").to_owned();
            (name, std::fs::read_to_string(&path).expect("read function file"))
        })
        .collect();
    files.sort();
    files
}

async fn definitions(client: &impl GenericClient, schema: &str) -> Definitions {
    let rows = client.query(DEFINITIONS, &[&schema]).await.expect("read definitions");
    rows.iter().map(|row| (row.get(0), row.get(1))).collect()
}

/// The files as Postgres reads them: each one run in a scratch schema (first on the
/// search path, so its unqualified `CREATE OR REPLACE` lands there), its functions read back
/// as they would be in `public`; rolled back. Also checks each file defines only functions
/// named after it.
async fn file_definitions(pool: &Pool) -> Definitions {
    let mut client = pool.get().await.expect("connection");
    let tx = client.transaction().await.expect("begin");
    tx.batch_execute("CREATE SCHEMA function_files; SET LOCAL search_path = function_files, public")
        .await
        .expect("scratch schema");
    let mut all = Definitions::new();
    for (name, sql) in function_files() {
        tx.batch_execute(&sql).await.unwrap_or_else(|err| panic!("{name}.sql: {err:?}"));
        let created = definitions(&tx, "function_files").await;
        let new: Vec<_> = created.into_iter().filter(|(signature, _)| !all.contains_key(signature)).collect();
        assert!(!new.is_empty(), "{name}.sql defines no function");
        for (signature, definition) in new {
            assert!(signature.starts_with(&format!("{name}(")), "{name}.sql defines {signature}");
            let definition = definition.replacen("FUNCTION function_files.", "FUNCTION public.", 1);
            all.insert(signature, definition);
        }
    }
    tx.rollback().await.expect("rollback");
    all
}

async fn assert_database_matches_files(app: &TestApp) {
    let files = file_definitions(&app.owner_pool()).await;
    let database = definitions(&app.owner_pool().get().await.expect("connection"), "public").await;
    let without_file: Vec<_> = database.keys().filter(|s| !files.contains_key(*s)).collect();
    assert!(without_file.is_empty(), "functions with no file in migrations/functions: {without_file:?}");
    for (signature, definition) in &files {
        assert_eq!(database.get(signature), Some(definition), "{signature} differs from its file");
    }
}

#[tokio::test]
async fn every_function_is_its_file_after_migrating_a_fresh_database() {
    // Test databases are copies of a template a fresh database migrated by this build.
    let app = TestApp::spawn().await;
    assert_database_matches_files(&app).await;
}

/// A database whose functions differ from the files (as one the previous release migrated
/// would, or one changed by hand): every `migrate` puts the files' definitions back, also
/// when several run at once.
#[tokio::test]
async fn migrate_puts_back_every_function_from_its_file() {
    let app = TestApp::spawn().await;
    app.owner_pool()
        .get()
        .await
        .expect("connection")
        .batch_execute(
            "DO $$ DECLARE f oid; BEGIN
               FOR f IN SELECT oid FROM pg_proc WHERE pronamespace = 'public'::regnamespace LOOP
                 EXECUTE regexp_replace(pg_get_functiondef(f), '\\$function\\$', '$function$ -- an older body');
               END LOOP;
             END $$",
        )
        .await
        .expect("change every function");
    let changed = definitions(&app.owner_pool().get().await.expect("connection"), "public").await;
    assert!(changed.values().all(|d| d.contains("-- an older body")), "{changed:?}");

    let runs = (0..4).map(|_| async {
        let pool = common::db::pool(&app.database_url, 1).expect("pool");
        let applied = common::db::migrate(&pool).await.map_err(|err| err.to_string());
        pool.close();
        applied
    });
    for applied in futures_util::future::join_all(runs).await {
        assert_eq!(applied, Ok(vec![]), "nothing versioned to apply, and no run failed");
    }
    assert_database_matches_files(&app).await;
}
