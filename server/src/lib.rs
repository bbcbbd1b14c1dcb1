//! The whole API in one process: every function's router merged, served over plain HTTP.

use common::config::{MailConfig, QueueConfig, SweepConfig};
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use axum::Router;
use common::AppState;
use common::db::Pool;
use common::http::{Routes, finish};
use common::mail::{self, Mailer};
use common::outbox;
use common::queue::{self, Consumer};
use common::resources::Needs;
use email_worker::{Worker, WorkerOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Every HTTP function, by crate name, with what its Lambda needs (so which secrets it
/// reads) and its routes: what the local server serves, and what the template tests
/// (`tests/infra_drift.rs`, `tests/infra_template.rs`) compare with `infra/template.yaml`.
pub fn functions() -> Vec<(&'static str, Needs, Routes<AppState>)> {
    vec![
        ("register", register::LAMBDA.needs(), register::api()),
        ("login", login::LAMBDA.needs(), login::api()),
        ("list-products", list_products::LAMBDA.needs(), list_products::api()),
        ("get-product", get_product::LAMBDA.needs(), get_product::api()),
        ("create-product", create_product::LAMBDA.needs(), create_product::api()),
        ("update-product", update_product::LAMBDA.needs(), update_product::api()),
        ("restock-product", restock_product::LAMBDA.needs(), restock_product::api()),
        ("archive-product", archive_product::LAMBDA.needs(), archive_product::api()),
        ("create-order", create_order::LAMBDA.needs(), create_order::api()),
        ("list-orders", list_orders::LAMBDA.needs(), list_orders::api()),
        ("get-order", get_order::LAMBDA.needs(), get_order::api()),
        ("cancel-order", cancel_order::LAMBDA.needs(), cancel_order::api()),
        ("list-all-orders", list_all_orders::LAMBDA.needs(), list_all_orders::api()),
        ("openapi", openapi::LAMBDA.needs(), openapi::api()),
    ]
}

/// Every HTTP function's routes on one router: the same handlers the Lambdas run.
pub fn app(state: AppState) -> Router {
    let routes = functions().into_iter().fold(Routes::new(), |all, (_, _, routes)| all.merge(routes));
    finish(routes.with_state(state))
}

/// How long in-flight requests may run after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves until `shutdown` resolves, then stops accepting and gives in-flight requests
/// [`DRAIN_TIMEOUT`] to finish before returning.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = signalled_tx.send(());
        });
    let deadline = async move {
        if signalled_rx.await.is_ok() {
            tokio::time::sleep(DRAIN_TIMEOUT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!("requests still running {DRAIN_TIMEOUT:?} after shutdown signal; closing them");
            Ok(())
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown signal received");
}

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The welcome-email pipeline beside the API, as the seed ran its worker goroutine: the
/// queue worker and the outbox sweeper as tasks of this process.
pub struct Pipeline {
    tasks: JoinSet<()>,
    stop: watch::Sender<bool>,
}

impl Pipeline {
    /// Starts the worker (`consumer` → `mailer`) and, when `state` has a publisher, the
    /// sweeper republishing through it.
    pub fn start(
        state: &AppState,
        consumer: Arc<dyn Consumer>,
        mailer: Arc<dyn Mailer>,
        worker: WorkerOptions,
        sweep: SweepConfig,
    ) -> Self {
        let (stop, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let worker = Worker::new(state.db.clone(), mailer, worker);
        let worker_stop = stopped(stop.subscribe());
        tasks.spawn(async move { worker.run(consumer.as_ref(), worker_stop).await });
        if let Some(publisher) = state.publisher.clone() {
            tasks.spawn(outbox::run_sweeper(state.db.clone(), publisher, sweep, stopped(stop.subscribe())));
        }
        Self { tasks, stop }
    }

    /// Stops both tasks after their current batch.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Runs only the polling email worker until `shutdown` (the `gamestore worker` command).
pub async fn run_worker(
    db: Pool,
    queue: &QueueConfig,
    mail: &MailConfig,
    options: WorkerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let consumer: Arc<dyn Consumer> = queue::consumer(queue).await?;
    let worker = Worker::new(db, mail::mailer(mail).await?, options);
    tracing::info!(queue = %queue.url_for_logs(), "email worker polling");
    worker.run(consumer.as_ref(), shutdown).await;
    Ok(())
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
