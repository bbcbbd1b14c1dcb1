//! The JSON body extractor and its errors.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde::Deserializer;
use serde::de::{self, DeserializeOwned, Unexpected};

use super::BODY_LIMIT;
use crate::domain::integral;
use crate::error::AppError;

/// A JSON request body. Wrong content type is 415, too large 413, unparsable JSON 400
/// `malformed_json`, and a value of the wrong type 400 `invalid_input` naming the field.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(AppError::UnsupportedMediaType);
        }
        let body = Bytes::from_request(request, state).await.map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                AppError::PayloadTooLarge { limit: BODY_LIMIT }
            }
            other => AppError::MalformedJson(other.body_text()),
        })?;
        parse_json(&body).map(Self)
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.split_once('/').is_some_and(|(kind, sub)| {
            kind.eq_ignore_ascii_case("application") && sub.to_ascii_lowercase().ends_with("+json")
        })
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    // serde would also read a struct from an array; the API only takes objects.
    if body.trim_ascii_start().first().is_some_and(|b| *b != b'{') {
        return Err(AppError::MalformedJson("the body must be a JSON object".into()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() || field == "." {
            AppError::MalformedJson(inner.to_string())
        } else {
            let message = format!("{field}: {inner}");
            AppError::Invalid { field, message }
        }
    })?;
    deserializer.end().map_err(|err| AppError::MalformedJson(err.to_string()))?;
    Ok(value)
}

/// Reads an optional integer field as JSON Schema counts integers: `3371`, and the same
/// number written `3371.0` or `3.371e3`; `3371.5` and numbers beyond `i64` are refused.
/// `null` is `None`, like an absent field. Use with `#[serde(default, deserialize_with)]`.
pub fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct Integer;

    impl<'de> de::Visitor<'de> for Integer {
        type Value = Option<i64>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_any(self)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
            Ok(Some(value))
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
            i64::try_from(value).map(Some).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), &self))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
            integral(value).map(Some).ok_or_else(|| E::invalid_value(Unexpected::Float(value), &self))
        }
    }

    deserializer.deserialize_option(Integer)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn content_types() {
        let headers = |value: &'static str| {
            let mut map = HeaderMap::new();
            map.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            map
        };
        assert!(is_json(&headers("application/json")));
        assert!(is_json(&headers("Application/JSON; charset=utf-8")));
        assert!(is_json(&headers("application/merge-patch+json")));
        assert!(!is_json(&headers("text/plain")));
        assert!(!is_json(&headers("application/jsonx")));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[derive(serde::Deserialize, Debug)]
    struct Body {
        #[serde(default, deserialize_with = "integer")]
        n: Option<i64>,
    }

    #[test]
    fn integers_as_json_schema_counts_them() {
        let read = |json: &str| parse_json::<Body>(json.as_bytes()).map(|body| body.n).map_err(|err| err.to_string());
        assert_eq!(read(r#"{"n": 3371}"#), Ok(Some(3371)));
        assert_eq!(read(r#"{"n": 3371.0}"#), Ok(Some(3371)));
        assert_eq!(read(r#"{"n": 3.371e3}"#), Ok(Some(3371)));
        assert_eq!(read(r#"{"n": -0.0}"#), Ok(Some(0)));
        assert_eq!(read(r#"{"n": 230209967.0}"#), Ok(Some(230_209_967)));
        // Found by the contract's stateful phase: read as ...747.2 without exact float parsing.
        assert_eq!(read(r#"{"n": 1803706936703747.0}"#), Ok(Some(1_803_706_936_703_747)));
        assert_eq!(read(r#"{"n": -9223372036854775808}"#), Ok(Some(i64::MIN)));
        assert_eq!(read(r#"{"n": null}"#), Ok(None));
        assert_eq!(read("{}"), Ok(None));
        for refused in ["3371.5", "1e-7", "9223372036854775808", "9.3e18", "1e300", "\"7\"", "true", "[1]"] {
            let err = read(&format!(r#"{{"n": {refused}}}"#)).expect_err(refused);
            assert!(err.starts_with("n: invalid") && err.contains("expected an integer"), "{refused}: {err}");
        }
    }
}
