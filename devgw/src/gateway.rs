//! The HTTP API: picks the route of the template that matches a request (the `$default`
//! route when none does), hands the request to the route's function as a payload 2.0
//! event, and turns the function's payload 2.0 answer back into an HTTP response.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::invoke::Invoker;
use crate::template::Route;

/// API Gateway's own limit on a request body.
const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

pub struct Gateway {
    routes: Vec<Route>,
    default_function: Option<String>,
    invoker: Invoker,
}

/// The route a request matched: its function, route key and path parameters.
#[derive(Debug, PartialEq, Eq)]
pub struct Matched<'a> {
    pub function: &'a str,
    pub route_key: String,
    pub path_parameters: BTreeMap<String, String>,
}

impl Gateway {
    pub fn new(routes: Vec<Route>, default_function: Option<String>, invoker: Invoker) -> Self {
        Self { routes, default_function, invoker }
    }

    /// The most specific matching route (most literal segments, then an exact method
    /// before `ANY`), as HTTP APIs choose; else the `$default` route.
    pub fn route(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        let best = self
            .routes
            .iter()
            .filter(|route| route.method == method || route.method == "ANY")
            .filter_map(|route| {
                let parameters = match_path(&route.path, path)?;
                let literals = route.path.split('/').filter(|s| !s.starts_with('{')).count();
                Some(((literals, route.method != "ANY"), route, parameters))
            })
            .max_by_key(|(rank, _, _)| *rank);
        match best {
            Some((_, route, path_parameters)) => {
                Some(Matched { function: &route.function, route_key: route.key(), path_parameters })
            }
            None => self.default_function.as_deref().map(|function| Matched {
                function,
                route_key: "$default".to_owned(),
                path_parameters: BTreeMap::new(),
            }),
        }
    }

    pub async fn handle(self: Arc<Self>, request: http::Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let body = match http_body_util::Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
        };
        let path = parts.uri.path().to_owned();
        let Some(matched) = self.route(parts.method.as_str(), &path) else {
            return message(StatusCode::NOT_FOUND, "Not Found");
        };
        let event = event(&parts, &body, peer, &matched);
        tracing::debug!(function = matched.function, route = %matched.route_key, "invoking");
        match self.invoker.invoke(matched.function, &event).await {
            Ok(answer) => response(answer).unwrap_or_else(|reason| {
                tracing::error!(function = matched.function, reason, "malformed function response");
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }),
            Err(err) => {
                tracing::error!(error = %err, "invocation failed");
                message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
            }
        }
    }
}

/// Path parameters when `path` matches the route template (`{name}` is one segment,
/// `{name+}` the rest of the path).
fn match_path(template: &str, path: &str) -> Option<BTreeMap<String, String>> {
    let mut parameters = BTreeMap::new();
    let mut actual = path.split('/');
    for expected in template.split('/') {
        if let Some(name) = expected.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            let rest: Vec<&str> = actual.by_ref().collect();
            if rest.is_empty() || rest.iter().all(|s| s.is_empty()) {
                return None;
            }
            parameters.insert(name.to_owned(), rest.join("/"));
            return Some(parameters);
        }
        let segment = actual.next()?;
        match expected.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(_) if segment.is_empty() => return None,
            Some(name) => {
                parameters.insert(name.to_owned(), segment.to_owned());
            }
            None if expected == segment => {}
            None => return None,
        }
    }
    actual.next().is_none().then_some(parameters)
}

/// Bodies API Gateway passes as text; any other content type arrives base64-encoded.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else { return true };
    let mime = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    mime.starts_with("text/")
        || mime.ends_with("/json")
        || mime.ends_with("+json")
        || mime.ends_with("/xml")
        || mime.ends_with("+xml")
        || mime == "application/javascript"
        || mime == "application/x-www-form-urlencoded"
}

/// Appends `value` to `key`'s entry, comma-joined as API Gateway joins repeated headers
/// and query parameters.
fn join_into(map: &mut Map<String, Value>, key: &str, value: &str) {
    match map.get_mut(key) {
        Some(Value::String(joined)) => {
            joined.push(',');
            joined.push_str(value);
        }
        _ => {
            map.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
}

/// Headers by lower-case name, and the `cookie` header split into cookies.
fn headers_and_cookies(headers: &HeaderMap) -> (Map<String, Value>, Vec<String>) {
    let mut map = Map::new();
    let mut cookies = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        if name == COOKIE {
            cookies.extend(value.split(';').map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned));
        } else {
            join_into(&mut map, name.as_str(), &value);
        }
    }
    (map, cookies)
}

fn query_parameters(raw_query: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        join_into(&mut map, key, value);
    }
    map
}

/// The payload 2.0 event of a request.
pub fn event(parts: &http::request::Parts, body: &[u8], peer: SocketAddr, matched: &Matched<'_>) -> Value {
    let (headers, cookies) = headers_and_cookies(&parts.headers);
    let raw_query = parts.uri.query().unwrap_or_default();
    let query = query_parameters(raw_query);
    let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let (body, base64) = match std::str::from_utf8(body) {
        Ok(text) if is_text(content_type) => (text.to_owned(), false),
        _ => (BASE64.encode(body), true),
    };
    let now = OffsetDateTime::now_utc();
    let host = parts.headers.get(http::header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let mut event = json!({
        "version": "2.0",
        "routeKey": matched.route_key,
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": host,
            "domainPrefix": host.split('.').next().unwrap_or(host),
            "http": {
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "protocol": format!("{:?}", parts.version),
                "sourceIp": peer.ip().to_string(),
                "userAgent": parts.headers.get(http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or_default(),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": matched.route_key,
            "stage": "$default",
            "time": clf_time(now),
            "timeEpoch": now.unix_timestamp_nanos() / 1_000_000,
        },
        "isBase64Encoded": base64,
    });
    if let Some(object) = event.as_object_mut() {
        if !cookies.is_empty() {
            object.insert("cookies".into(), json!(cookies));
        }
        if !query.is_empty() {
            object.insert("queryStringParameters".into(), Value::Object(query));
        }
        if !matched.path_parameters.is_empty() {
            object.insert("pathParameters".into(), json!(matched.path_parameters));
        }
        if !body.is_empty() {
            object.insert("body".into(), Value::String(body));
        }
    }
    event
}

/// `01/Dec/2026:18:00:00 +0000`, the format of `requestContext.time`.
fn clf_time(now: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        now.day(),
        MONTHS[usize::from(u8::from(now.month())) - 1],
        now.year(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionResponse {
    status_code: u16,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    multi_value_headers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    cookies: Vec<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

/// The HTTP response of a payload 2.0 answer. An answer without `statusCode` is, as in
/// API Gateway, a 200 with the answer itself as JSON body.
pub fn response(answer: Value) -> Result<Response<Full<Bytes>>, String> {
    if answer.get("statusCode").is_none() {
        let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(response);
    }
    let answer: FunctionResponse = serde_json::from_value(answer).map_err(|err| err.to_string())?;
    let body = match answer.body {
        Some(body) if answer.is_base64_encoded => BASE64.decode(body).map_err(|err| err.to_string())?,
        Some(body) => body.into_bytes(),
        None => Vec::new(),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(answer.status_code).map_err(|err| err.to_string())?;
    let headers: &mut HeaderMap = response.headers_mut();
    let single = answer.headers.into_iter().map(|(name, value)| (name, vec![value]));
    for (name, values) in single.chain(answer.multi_value_headers) {
        let name = HeaderName::try_from(name.as_str()).map_err(|err| err.to_string())?;
        headers.remove(&name);
        for value in values {
            headers.append(&name, HeaderValue::try_from(value).map_err(|err| err.to_string())?);
        }
    }
    for cookie in answer.cookies {
        headers.append(SET_COOKIE, HeaderValue::try_from(cookie).map_err(|err| err.to_string())?);
    }
    Ok(response)
}

/// API Gateway's own answers (`{"message": ...}`), for what no function answered.
fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(json!({ "message": text }).to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(method: &str, path: &str, function: &str) -> Route {
        Route { method: method.into(), path: path.into(), function: function.into() }
    }

    fn gateway() -> Gateway {
        Gateway::new(
            vec![
                route("GET", "/api/v1/products", "list-products"),
                route("GET", "/api/v1/products/{id}", "get-product"),
                route("GET", "/api/v1/products/featured", "featured"),
                route("ANY", "/files/{path+}", "files"),
            ],
            Some("openapi".into()),
            Invoker::new("http://127.0.0.1:1"),
        )
    }

    #[test]
    fn literal_segments_win_and_parameters_are_extracted() {
        let gw = gateway();
        let m = gw.route("GET", "/api/v1/products/7");
        assert_eq!(m.as_ref().map(|m| m.function), Some("get-product"));
        assert_eq!(m.as_ref().map(|m| m.route_key.as_str()), Some("GET /api/v1/products/{id}"));
        assert_eq!(m.and_then(|m| m.path_parameters.get("id").cloned()).as_deref(), Some("7"));
        assert_eq!(gw.route("GET", "/api/v1/products/featured").map(|m| m.function), Some("featured"));
        let greedy = gw.route("PUT", "/files/a/b.txt");
        assert_eq!(greedy.and_then(|m| m.path_parameters.get("path").cloned()).as_deref(), Some("a/b.txt"));
    }

    #[test]
    fn unrouted_requests_reach_the_default_route() {
        let gw = gateway();
        for (method, path) in [("POST", "/api/v1/products"), ("GET", "/api/v1/products/"), ("GET", "/nope")] {
            let m = gw.route(method, path);
            assert_eq!(
                m.map(|m| (m.function, m.route_key)),
                Some(("openapi", "$default".to_owned())),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn the_event_has_api_gateways_shape() {
        let request = http::Request::post("/api/v1/products/9?a=1&a=2&b=")
            .header("Content-Type", "image/png")
            .header("X-Trace", "one")
            .header("X-Trace", "two")
            .header("Cookie", "s=1; t=2")
            .header("User-Agent", "curl/8")
            .body(())
            .unwrap_or_default();
        let (parts, ()) = request.into_parts();
        let matched = Matched {
            function: "get-product",
            route_key: "GET /api/v1/products/{id}".into(),
            path_parameters: BTreeMap::from([("id".to_owned(), "9".to_owned())]),
        };
        let peer: SocketAddr = ([127, 0, 0, 2], 5000).into();
        let e = event(&parts, &[0xff, 0x00], peer, &matched);
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["rawPath"], "/api/v1/products/9");
        assert_eq!(e["rawQueryString"], "a=1&a=2&b=");
        assert_eq!(e["queryStringParameters"], json!({"a": "1,2", "b": ""}));
        assert_eq!(e["pathParameters"], json!({"id": "9"}));
        assert_eq!(e["headers"]["x-trace"], "one,two");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(e["requestContext"]["http"]["sourceIp"], "127.0.0.2");
        assert_eq!(e["requestContext"]["http"]["userAgent"], "curl/8");
        assert_eq!(e["requestContext"]["stage"], "$default");
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], BASE64.encode([0xff, 0x00]));
    }

    #[test]
    fn responses_keep_status_headers_cookies_and_binary_bodies() {
        let answer = json!({
            "statusCode": 201,
            "headers": {"content-type": "application/octet-stream"},
            "multiValueHeaders": {"x-many": ["a", "b"]},
            "cookies": ["s=1; HttpOnly"],
            "body": BASE64.encode([1, 2, 3]),
            "isBase64Encoded": true,
        });
        let response = response(answer).map_err(|e| e.to_string());
        let response = response.as_ref().map_err(String::as_str);
        assert_eq!(response.map(|r| r.status().as_u16()), Ok(201));
        let headers = response.map(|r| r.headers().clone()).unwrap_or_default();
        assert_eq!(headers.get_all("x-many").iter().count(), 2);
        assert_eq!(headers.get(SET_COOKIE).and_then(|v| v.to_str().ok()), Some("s=1; HttpOnly"));
    }
}
