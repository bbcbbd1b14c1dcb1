//! Databases for tests, on the shared test cluster (`TEST_DATABASE_URL`) or on a cluster
//! of a test's own: fresh ones copied from a template migrated once per migration set,
//! empty scratch ones, and [`OwnPostgres`] for tests that restart the server.

use std::path::PathBuf;
use std::process::Command;

pub use tokio_postgres::Client;
use tokio_postgres::NoTls;

use crate::process::free_port;
use crate::services;

/// A client on `url`, its connection driven in a task.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect to test Postgres");
    tokio::spawn(connection);
    client
}

/// `TEST_DATABASE_URL` with its host and port, for configurations that take them apart.
pub fn test_database() -> (String, String, u16) {
    let url = services::database_url();
    let pg: tokio_postgres::Config = url.parse().expect("TEST_DATABASE_URL is a PostgreSQL URL");
    let host = match pg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => panic!("TEST_DATABASE_URL must name a TCP host"),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    (url, host, port)
}

/// `url` naming the database `name` instead of its own (query parameters kept).
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let server = base.rsplit_once('/').map_or(base, |(server, _)| server);
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// The password the test cluster's application role logs in with, set when the template is
/// migrated (the shared cluster trusts loopback connections, so it is not checked there).
pub const APPLICATION_PASSWORD: &str = "test-application-password";

/// `url` logging in as the application role (`common::db::APPLICATION_ROLE`) instead of
/// its own user.
pub fn as_application(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let host = rest.split_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{}:{APPLICATION_PASSWORD}@{host}", common::db::APPLICATION_ROLE)
}

/// The owner's URL of a fresh database on the test cluster ([`as_application`] for the
/// role the functions connect as), copied from a template migrated once
/// per migration set (keyed by `common::db::migrations_fingerprint`, so branches with
/// other migrations share the cluster). Test processes run in parallel (nextest), so the
/// template is built under an advisory lock.
pub async fn fresh_database() -> String {
    let admin_url = services::database_url();
    let admin = connect(&admin_url).await;
    let template = format!("gamestore_template_{:016x}", common::db::migrations_fingerprint());
    admin.execute("SELECT pg_advisory_lock(727272)", &[]).await.expect("advisory lock");
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
        .await
        .expect("look up template")
        .is_some();
    if !exists {
        admin.batch_execute(&format!("CREATE DATABASE \"{template}_building\"")).await.expect("create template");
        let pool = common::db::pool(&with_database(&admin_url, &format!("{template}_building")), 1).expect("pool");
        let login = common::config::ApplicationLogin {
            user: common::db::APPLICATION_ROLE.to_owned(),
            password: Some(APPLICATION_PASSWORD.to_owned()),
        };
        common::setup::migrate(&pool, Some(&login)).await.expect("migrate template");
        pool.close();
        drop(pool);
        admin
            .batch_execute(&format!("ALTER DATABASE \"{template}_building\" RENAME TO \"{template}\""))
            .await
            .expect("publish template");
    }
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")).await.expect("create db");
    admin.execute("SELECT pg_advisory_unlock(727272)", &[]).await.expect("advisory unlock");
    with_database(&admin_url, &name)
}

/// An empty database `<prefix>_<random>` on the cluster `admin_url` names, for a test that
/// migrates it itself; the returned admin client drops it ([`drop_database`]).
pub async fn create_database(admin_url: &str, prefix: &str) -> (Client, String) {
    let admin = connect(admin_url).await;
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("create database");
    (admin, name)
}

/// Drops `name`, ending the sessions still on it.
pub async fn drop_database(admin: &Client, name: &str) {
    admin.batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).await.expect("drop database");
}

/// A throw-away PostgreSQL cluster of a test's own, for tests that restart it (never the
/// shared one): a temporary directory, a free loopback port, trust authentication for
/// `postgres`; stopped and removed when dropped.
pub struct OwnPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl OwnPostgres {
    pub fn start() -> Self {
        // `make test` exports PGBIN; else the newest Debian/Ubuntu server package.
        let bin = std::env::var_os("PGBIN")
            .map(PathBuf::from)
            .or_else(|| {
                std::fs::read_dir("/usr/lib/postgresql")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|version| version.path().join("bin"))
                    .filter(|bin| bin.join("initdb").exists())
                    .max()
            })
            .expect("PostgreSQL server binaries (set PGBIN)");
        let dir = std::env::temp_dir().join(format!("gamestore-pg-{}", uuid::Uuid::new_v4().simple()));
        let cluster = Self { bin, dir, port: free_port() };
        let data = cluster.data();
        cluster.run("initdb", &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
        let conf = "listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\nfsync = off\n";
        let conf_path = cluster.dir.join("data/postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        existing.push_str(conf);
        std::fs::write(&conf_path, existing).expect("write postgresql.conf");
        cluster.pg_ctl("start");
        cluster
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn pg_ctl(&self, action: &str) {
        let log = self.dir.join("server.log").display().to_string();
        let options = format!("-p {}", self.port);
        self.run("pg_ctl", &["-D", &self.data(), "-l", &log, "-m", "fast", "-w", "-t", "60", "-o", &options, action]);
    }

    /// Runs a server binary and checks it succeeded.
    fn run(&self, program: &str, args: &[&str]) {
        let output = self.command(program).args(args).output().expect("run a PostgreSQL binary");
        assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// A server binary's command; as root (which the server refuses) run as `postgres`.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let as_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if !as_root {
            return Command::new(program);
        }
        std::fs::create_dir_all(&self.dir).expect("cluster directory");
        let chown = Command::new("chown").args(["postgres", &self.dir.display().to_string()]).status();
        assert!(chown.is_ok_and(|s| s.success()), "chown the cluster directory to postgres");
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = self.command("pg_ctl").args(["-D", &self.data(), "-m", "immediate", "stop"]).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
