//! Log set-up: JSON in Lambda (honouring AWS_LAMBDA_LOG_FORMAT / AWS_LAMBDA_LOG_LEVEL),
//! human-readable locally unless LOG_FORMAT=json; RUST_LOG filters in both.

use std::borrow::Cow;

use tracing_subscriber::EnvFilter;

pub fn init_lambda() {
    lambda_runtime::tracing::init_default_subscriber();
}

pub fn init_local() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
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
    use super::redact_url;

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
