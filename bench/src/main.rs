//! `loadgen`: the tools behind `make bench` (scripts/bench.sh runs them).
//!
//! Everything runs on a current-thread runtime: on a 2-core machine the load generator must
//! leave the other core(s) to the server and PostgreSQL it is measuring.

mod cost;
mod lambda;
mod load;
mod report;
mod stats;

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use common::auth::Jwt;
use common::domain::{Password, Role, UserId};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Parser)]
#[command(about = "Benchmark tooling for the game store")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load an HTTP server for a fixed time; prints a JSON result.
    Http {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, value_enum)]
        scenario: load::Scenario,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Orders pick a product uniformly from 1..=products (1 = one hot product).
        #[arg(long, default_value_t = 1)]
        products: u64,
        /// File with one bearer token per line (orders).
        #[arg(long)]
        tokens: Option<PathBuf>,
        /// Login picks bench<N>@example.com, N in 1..=users.
        #[arg(long, default_value_t = 1000)]
        users: u64,
        #[arg(long, default_value = "bench-password")]
        password: String,
        /// The catalogue scenario's request path and query.
        #[arg(long, default_value = "/api/v1/products?limit=50")]
        path: String,
    },
    /// Cold init, RSS and warm latency of one Lambda binary against a fake Runtime API.
    Lambda {
        #[arg(long)]
        bin: PathBuf,
        /// API Gateway v2 event; REPLACE_WITH_USER_TOKEN / REPLACE_WITH_ADMIN_TOKEN are filled
        /// in, and REPLACE_WITH_SEQUENCE with a number of its own in every invocation.
        #[arg(long)]
        event: PathBuf,
        #[arg(long, default_value_t = 20)]
        starts: usize,
        #[arg(long, default_value_t = 0)]
        warm: usize,
        #[arg(long, default_value = "")]
        user_token: String,
        #[arg(long, default_value = "")]
        admin_token: String,
    },
    /// Reads "id role" lines on stdin, prints one token per line (JWT_SECRET from env).
    Tokens {
        #[arg(long, default_value_t = 86_400)]
        ttl_seconds: u64,
    },
    /// Prints the argon2id hash of a password, as the API stores it.
    Hash { password: String },
    /// Builds the tables from a run directory; writes JSON and Markdown.
    Report {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        rounds: usize,
        #[arg(long)]
        json_out: PathBuf,
        #[arg(long)]
        markdown_out: PathBuf,
        /// Free-form description of the machine and settings, copied into the outputs.
        #[arg(long, default_value = "")]
        machine: String,
        #[arg(long, default_value = "")]
        settings: String,
        /// The SAM template whose `MemorySize` per function the cost model prices.
        #[arg(long, default_value = "infra/template.yaml")]
        template: PathBuf,
    },
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loadgen: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn run(cmd: Cmd) -> Result<(), Error> {
    match cmd {
        Cmd::Http { addr, scenario, connections, seconds, products, tokens, users, password, path } => {
            let tokens = match tokens {
                Some(path) => {
                    std::fs::read_to_string(path)?.lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
                }
                None => Vec::new(),
            };
            if scenario == load::Scenario::Orders && tokens.is_empty() {
                return Err("--tokens with at least one token is required for orders".into());
            }
            let opts = load::Options {
                addr,
                scenario,
                connections: connections.max(1),
                duration: Duration::from_secs(seconds),
                products,
                tokens,
                users,
                password,
                path,
            };
            let result = runtime()?.block_on(load::run(opts))?;
            println!("{result}");
        }
        Cmd::Lambda { bin, event, starts, warm, user_token, admin_token } => {
            let event = std::fs::read_to_string(event)?
                .replace("REPLACE_WITH_USER_TOKEN", &user_token)
                .replace("REPLACE_WITH_ADMIN_TOKEN", &admin_token);
            let opts = lambda::Options { bin, event, starts, warm };
            let result = runtime()?.block_on(lambda::run(opts))?;
            println!("{result}");
        }
        Cmd::Tokens { ttl_seconds } => {
            let secret = std::env::var("JWT_SECRET").map_err(|_| "JWT_SECRET is not set")?;
            let jwt = Jwt::new(secret.as_bytes(), Duration::from_secs(ttl_seconds));
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                let mut parts = line.split_whitespace();
                let (Some(id), role) = (parts.next(), parts.next()) else {
                    continue;
                };
                let role = match role {
                    Some("admin") => Role::Admin,
                    _ => Role::User,
                };
                let token = jwt.issue(UserId::new(id.parse()?), role)?;
                writeln!(out, "{token}")?;
            }
        }
        Cmd::Hash { password } => {
            let password = Password::parse(password).map_err(|e| e.0)?;
            let hash = runtime()?.block_on(common::auth::hash_password(password))?;
            println!("{hash}");
        }
        Cmd::Report { dir, rounds, json_out, markdown_out, machine, settings, template } => {
            let template = std::fs::read_to_string(&template)?;
            report::run(&dir, rounds, &json_out, &markdown_out, &machine, &settings, &template)?
        }
    }
    Ok(())
}
