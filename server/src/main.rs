//! `gamestore`: run the whole store locally, migrate a database, seed an admin or demo data.

use common::config::{MailConfig, QueueConfig, SweepConfig};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use common::config::{self, ProcessEnv};
use common::db::Pool;
use common::domain::{Cents, Description, Email, Password, ProductName, Sku, Stock};
use common::mail;
use common::queue;
use common::resources::{Needs, QueueNeed, Resources};
use common::state::FromResources;
use common::store::{products, users};
use common::{AppError, AppState, auth, db, setup, telemetry};
use email_worker::WorkerOptions;
use gamestore::{Error, Pipeline};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(version, about = "The game store API in one local process")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every function's routes over HTTP (applies pending migrations first).
    Serve {
        #[arg(long, env = "BIND", default_value = "127.0.0.1")]
        bind: IpAddr,
        #[arg(long, env = "PORT", default_value_t = 8080)]
        port: u16,
    },
    /// Run only the email worker: poll the queue (QUEUE_URL) and send welcome mails.
    Worker {
        /// Fault injection for crash tests: sleep this long after claiming a message,
        /// before sending its mail.
        #[arg(long, hide = true, default_value_t = 0)]
        pause_before_send_ms: u64,
        /// Fault injection for crash tests: sleep this long after sending and recording,
        /// before acknowledging the queue.
        #[arg(long, hide = true, default_value_t = 0)]
        pause_before_ack_ms: u64,
    },
    /// Apply pending database migrations, then create the first admin from ADMIN_SECRET_ARN
    /// or ADMIN_EMAIL + ADMIN_PASSWORD when set and no admin exists (what the migrate
    /// Lambda does after a deploy).
    Migrate,
    /// Create an admin account, or make an existing account an admin with this password.
    SeedAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
    /// Add a few demo products (skipped when their SKUs exist).
    SeedDemo,
}

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init_local();
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), Error> {
    common::metrics::init(&ProcessEnv)?;
    match command {
        Command::Serve { bind, port } => return serve(bind, port).await,
        Command::Worker { pause_before_send_ms, pause_before_ack_ms } => {
            return worker(pause_before_send_ms, pause_before_ack_ms).await;
        }
        _ => {}
    }
    if let Command::Migrate = command {
        let target = config::migration_database(&ProcessEnv).await?;
        let owner = db::pool(&target.owner_url, 1)?;
        let admin = config::admin_credentials(&ProcessEnv).await?;
        let report = setup::migrate_and_ensure_admin(&owner, target.application.as_ref(), admin).await;
        owner.close();
        let report = report?;
        tracing::info!(applied = report.applied_migrations.len(), admin = report.admin, "database ready");
        return Ok(());
    }
    let resources = Resources::build(Needs::DATABASE, &ProcessEnv).await?;
    let pool = resources.pool()?;
    match command {
        // Returned above.
        Command::Serve { .. } | Command::Worker { .. } | Command::Migrate => {}
        Command::SeedAdmin { email, password } => {
            let email = Email::parse(email).map_err(|e| format!("--email {}", e.0))?;
            let password = Password::parse(password).map_err(|e| format!("--password {}", e.0))?;
            let hash = auth::hash_password(password).await?;
            let admin = users::upsert_admin(&**pool.get().await?, &email, &hash).await?;
            tracing::info!(id = admin.id.get(), email = %email.masked(), "admin account ready");
        }
        Command::SeedDemo => seed_demo(pool).await?,
    }
    resources.close();
    Ok(())
}

async fn serve(bind: IpAddr, port: u16) -> Result<(), Error> {
    // The same resources as the Lambdas build, for every function at once; their settings
    // checked before anything connects.
    let needs = Needs::DATABASE.jwt().queue(QueueNeed::IfConfigured);
    needs.check(&ProcessEnv)?;
    // Migrations only, as the owner: the local admin comes from `seed-admin` (make dev).
    let target = config::migration_database(&ProcessEnv).await?;
    let owner = db::pool(&target.owner_url, 1)?;
    let migrated = setup::migrate(&owner, target.application.as_ref()).await;
    owner.close();
    migrated?;
    let state = AppState::from_resources(&Resources::build(needs, &ProcessEnv).await?)?;
    let pipeline = match QueueConfig::from_env(&ProcessEnv)? {
        Some(queue) => {
            let mail = MailConfig::from_env(&ProcessEnv)?;
            let pipeline = Pipeline::start(
                &state,
                queue::consumer(&queue).await?,
                mail::mailer(&mail).await?,
                WorkerOptions::from_env(&ProcessEnv)?,
                SweepConfig::from_env(&ProcessEnv)?,
            );
            tracing::info!(queue = %queue.url_for_logs(), mailer = ?mail.backend, "email worker and outbox sweeper running");
            Some(pipeline)
        }
        // `Resources::build` said so: no queue, no worker.
        None => None,
    };
    let listener = TcpListener::bind(SocketAddr::new(bind, port)).await?;
    tracing::info!(address = %listener.local_addr()?, "serving the game store API");
    let pool = state.db.clone();
    gamestore::serve(listener, state, gamestore::shutdown_signal()).await?;
    if let Some(pipeline) = pipeline {
        pipeline.stop().await;
    }
    pool.close();
    Ok(())
}

/// The polling email worker alone: needs DATABASE_URL and QUEUE_URL, not the JWT secret.
async fn worker(pause_before_send_ms: u64, pause_before_ack_ms: u64) -> Result<(), Error> {
    let queue = QueueConfig::required(&ProcessEnv)?;
    let options = WorkerOptions {
        pause_before_send: Duration::from_millis(pause_before_send_ms),
        pause_before_ack: Duration::from_millis(pause_before_ack_ms),
        ..WorkerOptions::from_env(&ProcessEnv)?
    };
    let pool = db::pool(&config::database_url(&ProcessEnv).await?, options.batch + 1)?;
    gamestore::run_worker(
        pool.clone(),
        &queue,
        &MailConfig::from_env(&ProcessEnv)?,
        options,
        gamestore::shutdown_signal(),
    )
    .await?;
    pool.close();
    Ok(())
}

const DEMO_PRODUCTS: &[(&str, &str, i64, &str, i64)] = &[
    ("Stardew Valley", "Farming life sim with a town full of secrets.", 1499, "DEMO-STARDEW", 100),
    ("Hollow Knight", "Hand-drawn action adventure in a ruined kingdom.", 1499, "DEMO-HOLLOW", 50),
    ("Celeste", "Climb a mountain, one tight jump at a time.", 1999, "DEMO-CELESTE", 25),
    ("Hades", "Roguelike dungeon crawler out of the underworld.", 2499, "DEMO-HADES", 10),
    ("Limited Collector's Edition", "Only three ever made: try buying the fourth.", 9999, "DEMO-LIMITED", 3),
];

async fn seed_demo(pool: &Pool) -> Result<(), Error> {
    let client = pool.get().await?;
    for &(name, description, price, sku, stock) in DEMO_PRODUCTS {
        let new = products::NewProduct {
            name: ProductName::parse(name.into()).map_err(|e| e.0)?,
            description: Description::parse(description.into()).map_err(|e| e.0)?,
            price: Cents::parse(price).map_err(|e| e.0)?,
            sku: Sku::parse(sku.into()).map_err(|e| e.0)?,
            stock: Stock::parse(stock).map_err(|e| e.0)?,
        };
        match products::create(&**client, &new).await.map_err(AppError::from) {
            Ok(product) => tracing::info!(id = product.id, sku, "demo product added"),
            Err(AppError::SkuTaken) => tracing::info!(sku, "demo product already present"),
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}
