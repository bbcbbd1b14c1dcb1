//! A throw-away PostgreSQL cluster of a test's own, for tests that restart it (never the
//! shared one). Included with `#[path]` by the tests that need it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

/// A loopback port nothing listens on (at the time of asking).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free loopback port").port()
}

/// A cluster in a temporary directory on a free loopback port, trust authentication for
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

    #[allow(dead_code, reason = "not every test that includes this file needs the bare port")]
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
