//! Log set-up: JSON in Lambda (honouring AWS_LAMBDA_LOG_FORMAT / AWS_LAMBDA_LOG_LEVEL),
//! human-readable locally unless LOG_FORMAT=json; RUST_LOG filters in both.

use std::borrow::Cow;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{Directive, LevelFilter};

use crate::config::{LogSettings, ProcessEnv};

/// The Lambda runtime logs each raw event at TRACE under this target: whole requests,
/// passwords and `Authorization` headers included. Never below DEBUG, whatever the level.
const RAW_EVENT_TRACE_OFF: &str = "lambda_runtime::layers::api_response=debug";

/// As `lambda_runtime::tracing::init_default_subscriber` (level from `AWS_LAMBDA_LOG_LEVEL`,
/// else `RUST_LOG`, else INFO; JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`; no timestamps, which
/// CloudWatch adds), but with the runtime's raw-event trace off.
pub fn init_lambda() {
    let settings = LogSettings::lambda(&ProcessEnv);
    let level = settings.level.and_then(|level| level.parse().ok()).unwrap_or(LevelFilter::INFO);
    let builder = tracing_subscriber::fmt().with_target(false).without_time().with_env_filter(lambda_filter(level));
    if settings.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn lambda_filter(level: LevelFilter) -> EnvFilter {
    let filter = EnvFilter::builder().with_default_directive(level.into()).from_env_lossy();
    match RAW_EVENT_TRACE_OFF.parse::<Directive>() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

pub fn init_local() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if LogSettings::local(&ProcessEnv).json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `url` as logs and error messages may show it: credentials (`user:password@`) replaced
/// by `***@`, so a queue or database URL with a password can be named in a log line.
pub fn redact_url(url: &str) -> Cow<'_, str> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Cow::Borrowed(url);
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    match authority.rfind('@') {
        Some(at) => Cow::Owned(format!("{scheme}://***@{}", &rest[at + 1..])),
        None => Cow::Borrowed(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_logs_never_show_the_raw_event_even_at_trace() {
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(lambda_filter(LevelFilter::TRACE))
            .with_writer(move || SharedWriter(sink.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "lambda_runtime::layers::api_response", body = "password", "raw JSON event");
            tracing::trace!(target: "common::anything", "other trace");
        });
        let log = String::from_utf8_lossy(&buffer.lock().map(|b| b.clone()).unwrap_or_default()).into_owned();
        assert!(log.contains("other trace"), "{log}");
        assert!(!log.contains("raw JSON event"), "{log}");
    }

    struct SharedWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for SharedWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut buffer) = self.0.lock() {
                buffer.extend_from_slice(bytes);
            }
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(redact_url("redis://default:s3cret@127.0.0.1:6379/0"), "redis://***@127.0.0.1:6379/0");
        assert_eq!(redact_url("redis://:s3cret@cache:6379"), "redis://***@cache:6379");
        assert_eq!(
            redact_url("postgres://app:p%40ss@db/store?sslmode=require"),
            "postgres://***@db/store?sslmode=require"
        );
        for plain in ["redis://127.0.0.1:6379", "https://sqs.eu-west-1.amazonaws.com/1/q?x=a@b", "not a url"] {
            assert_eq!(redact_url(plain), plain);
        }
    }
}
