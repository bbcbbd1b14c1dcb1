//! `make dev-lambda`'s stand-in for what AWS puts around the functions, read from
//! `infra/template.yaml`: the HTTP API (routes to functions, payload 2.0 events), the SQS
//! event source of the email worker, the sweeper's schedule, and the Parameters and
//! Secrets extension (backed by LocalStack). Functions run under `cargo lambda watch` and
//! are invoked through its Invoke API.

pub mod gateway;
pub mod invoke;
pub mod schedule;
pub mod secrets;
pub mod sqs;
pub mod template;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Serves HTTP/1.1 on `listener`, one task per connection, until the process ends.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(http::Request<Incoming>, SocketAddr) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(error = %err, "accept failed");
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(request, peer).await) }
            });
            if let Err(err) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!(error = %err, "connection closed");
            }
        });
    }
}
