//! What the runner takes from the SAM template, and nothing it does not need: each
//! function's binary, its `HttpApi` routes, its `SQS` and `Schedule` event sources, its
//! environment (with the `Globals`), and the queues' visibility timeout and redrive policy.
//!
//! CloudFormation's short-form tags (`!Ref X`, `!GetAtt X.Arn`, `!Sub ...`) stay tagged
//! values; only `Ref` and `GetAtt` are resolved, through bindings the caller gives
//! ([`Bindings`]): locally a queue's `Ref` is a LocalStack queue URL, a secret's `Ref` its
//! LocalStack name, and so on.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde_norway::Value;

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("not a SAM template: {0}")]
    Parse(String),
    #[error("{resource}: {reason}")]
    Invalid { resource: String, reason: String },
    #[error("no value bound for {0} (pass --ref {0}=VALUE)")]
    Unbound(String),
}

/// One `HttpApi` event: `method` is upper case or `ANY`; `path` keeps its `{param}`s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
    pub function: String,
}

impl Route {
    /// The route key API Gateway puts in the event, e.g. `POST /api/v1/orders`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// An `SQS` event source mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSource {
    pub function: String,
    /// Logical id of the queue resource.
    pub queue: String,
    pub batch_size: usize,
    pub batching_window: Duration,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_failures: bool,
}

/// A `Schedule` event (`rate(...)` only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleSource {
    pub function: String,
    /// Logical id of the event, the rule's name.
    pub rule: String,
    pub period: Duration,
}

/// An `AWS::SQS::Queue` resource's delivery settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    pub visibility_timeout: Option<u64>,
    /// `(logical id of the dead-letter queue, maxReceiveCount)`.
    pub redrive: Option<(String, u32)>,
}

#[derive(Debug, Clone)]
pub struct Function {
    pub logical_id: String,
    /// The binary `cargo lambda watch` serves, which the runner invokes by name.
    pub binary: String,
    environment: BTreeMap<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Template {
    pub functions: Vec<Function>,
    pub routes: Vec<Route>,
    /// The function of the `$default` route, which gets every unrouted request.
    pub default_function: Option<String>,
    pub queue_sources: Vec<QueueSource>,
    pub schedules: Vec<ScheduleSource>,
    pub queues: BTreeMap<String, QueueSettings>,
    global_environment: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTemplate {
    #[serde(default)]
    globals: RawGlobals,
    resources: BTreeMap<String, RawResource>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawGlobals {
    #[serde(default)]
    function: RawFunction,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawResource {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    metadata: Value,
    #[serde(default)]
    properties: Value,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawFunction {
    #[serde(default)]
    environment: RawEnvironment,
    #[serde(default)]
    events: BTreeMap<String, RawEvent>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawEnvironment {
    #[serde(default)]
    variables: BTreeMap<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawEvent {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    properties: Value,
}

impl Template {
    pub fn read(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| TemplateError::Read { path: path.display().to_string(), reason: err.to_string() })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let raw: RawTemplate = serde_norway::from_str(text).map_err(|err| TemplateError::Parse(err.to_string()))?;
        let mut template = Template {
            functions: Vec::new(),
            routes: Vec::new(),
            default_function: None,
            queue_sources: Vec::new(),
            schedules: Vec::new(),
            queues: BTreeMap::new(),
            global_environment: raw.globals.function.environment.variables,
        };
        for (logical_id, resource) in raw.resources {
            let invalid = |reason: String| TemplateError::Invalid { resource: logical_id.clone(), reason };
            match resource.kind.as_str() {
                "AWS::Serverless::Function" => {
                    let binary = resource
                        .metadata
                        .get("BuildProperties")
                        .and_then(|props| props.get("Binary"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| invalid("no Metadata.BuildProperties.Binary".into()))?
                        .to_owned();
                    let function: RawFunction =
                        serde_norway::from_value(resource.properties).map_err(|err| invalid(err.to_string()))?;
                    for (event_id, event) in function.events {
                        template.add_event(&binary, &event_id, event).map_err(invalid)?;
                    }
                    template.functions.push(Function {
                        logical_id: logical_id.clone(),
                        binary,
                        environment: function.environment.variables,
                    });
                }
                "AWS::SQS::Queue" => {
                    let props = &resource.properties;
                    let redrive = props.get("RedrivePolicy").map(|policy| {
                        let target = policy.get("deadLetterTargetArn").and_then(reference).map(logical_part);
                        let count = policy.get("maxReceiveCount").and_then(number);
                        match (target, count) {
                            (Some(target), Some(count)) => Ok((target, count as u32)),
                            _ => Err(invalid("RedrivePolicy needs deadLetterTargetArn and maxReceiveCount".into())),
                        }
                    });
                    let settings = QueueSettings {
                        visibility_timeout: props.get("VisibilityTimeout").and_then(number),
                        redrive: redrive.transpose()?,
                    };
                    template.queues.insert(logical_id.clone(), settings);
                }
                _ => {}
            }
        }
        Ok(template)
    }

    fn add_event(&mut self, function: &str, event_id: &str, event: RawEvent) -> Result<(), String> {
        let props = &event.properties;
        let text = |key: &str| props.get(key).and_then(Value::as_str).map(str::to_owned);
        let function = function.to_owned();
        match event.kind.as_str() {
            "HttpApi" => {
                let path = text("Path").ok_or(format!("event {event_id}: no Path"))?;
                let method = text("Method").unwrap_or_else(|| "ANY".into()).to_ascii_uppercase();
                if path == "$default" {
                    self.default_function = Some(function);
                } else {
                    self.routes.push(Route { method, path, function });
                }
            }
            "SQS" => {
                let queue = props
                    .get("Queue")
                    .and_then(reference)
                    .map(logical_part)
                    .ok_or(format!("event {event_id}: Queue is not a !GetAtt of a queue"))?;
                let report_failures = props
                    .get("FunctionResponseTypes")
                    .and_then(Value::as_sequence)
                    .is_some_and(|types| types.iter().any(|t| t.as_str() == Some("ReportBatchItemFailures")));
                self.queue_sources.push(QueueSource {
                    function,
                    queue,
                    // The SQS event source's defaults.
                    batch_size: props.get("BatchSize").and_then(number).unwrap_or(10) as usize,
                    batching_window: Duration::from_secs(
                        props.get("MaximumBatchingWindowInSeconds").and_then(number).unwrap_or(0),
                    ),
                    report_failures,
                });
            }
            "Schedule" => {
                let expression = text("Schedule").ok_or(format!("event {event_id}: no Schedule"))?;
                let period =
                    rate(&expression).ok_or(format!("event {event_id}: {expression:?} is not rate(N unit)"))?;
                self.schedules.push(ScheduleSource { function, rule: event_id.to_owned(), period });
            }
            _ => {}
        }
        Ok(())
    }

    /// The environment of one function (by binary) as Lambda would give it: the `Globals`
    /// variables, then the function's own (which win), `Ref`/`GetAtt` resolved through
    /// `bindings`, then `overrides`. Each function gets its own, so a secret one function
    /// is told of reaches no other.
    pub fn environment(
        &self,
        function: &str,
        bindings: &Bindings,
        overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, TemplateError> {
        let own = self.functions.iter().find(|f| f.binary == function).ok_or_else(|| TemplateError::Invalid {
            resource: function.to_owned(),
            reason: "no function of the template builds this binary".to_owned(),
        })?;
        let mut env = BTreeMap::new();
        for (name, value) in self.global_environment.iter().chain(&own.environment) {
            if !overrides.contains_key(name) {
                env.insert(name.clone(), bindings.resolve(value)?);
            }
        }
        env.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(env)
    }

    /// Binaries the runner invokes: every function with a route or an event source.
    pub fn invoked_functions(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .routes
            .iter()
            .map(|r| r.function.as_str())
            .chain(self.default_function.as_deref())
            .chain(self.queue_sources.iter().map(|q| q.function.as_str()))
            .chain(self.schedules.iter().map(|s| s.function.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// Local values of the template's `Ref`s and `GetAtt`s, keyed `LogicalId` or
/// `LogicalId.Attribute` (parameters are `Ref`s too).
#[derive(Debug, Clone, Default)]
pub struct Bindings(BTreeMap<String, String>);

impl Bindings {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(pairs.into_iter().collect())
    }

    pub fn get(&self, name: &str) -> Result<&str, TemplateError> {
        self.0.get(name).map(String::as_str).ok_or_else(|| TemplateError::Unbound(name.to_owned()))
    }

    fn resolve(&self, value: &Value) -> Result<String, TemplateError> {
        if let Some(name) = reference(value) {
            return self.get(&name).map(str::to_owned);
        }
        match value {
            Value::Tagged(tagged) if tagged.tag == "Sub" && tagged.value.is_string() => {
                self.substitute(tagged.value.as_str().unwrap_or_default())
            }
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(TemplateError::Unbound(format!("{other:?}"))),
        }
    }
}

impl Bindings {
    /// `!Sub "a-${X}"`, its one-string form: each `${X}` is X's bound value.
    fn substitute(&self, text: &str) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| TemplateError::Unbound(text.to_owned()))?;
            out.push_str(self.get(&after[..end])?);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `!Ref X` -> `X`, `!GetAtt X.Attr` (or `[X, Attr]`) -> `X.Attr`, long forms included.
fn reference(value: &Value) -> Option<String> {
    let (kind, inner) = match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => ("Ref", &tagged.value),
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => ("GetAtt", &tagged.value),
        Value::Mapping(map) if map.len() == 1 => {
            if let Some(inner) = map.get("Ref") {
                ("Ref", inner)
            } else {
                ("GetAtt", map.get("Fn::GetAtt")?)
            }
        }
        _ => return None,
    };
    match (kind, inner) {
        (_, Value::String(name)) => Some(name.clone()),
        ("GetAtt", Value::Sequence(parts)) => {
            Some(parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("."))
        }
        _ => None,
    }
}

/// `EmailQueue.Arn` -> `EmailQueue`.
fn logical_part(reference: String) -> String {
    match reference.split_once('.') {
        Some((logical, _)) => logical.to_owned(),
        None => reference,
    }
}

/// A number, also when quoted (`maxReceiveCount: "5"`).
fn number(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
}

/// `rate(1 minute)`, `rate(5 minutes)`, `rate(2 hours)`, `rate(1 day)`.
fn rate(expression: &str) -> Option<Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (count, unit) = inner.trim().split_once(' ')?;
    let count: u64 = count.parse().ok()?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(count * seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
        match Template::read(&root) {
            Ok(template) => template,
            Err(err) => panic!("{err}"),
        }
    }

    #[test]
    fn reads_the_projects_routes_sources_and_queue() {
        let t = template();
        let find = |key: &str| t.routes.iter().find(|r| r.key() == key).map(|r| r.function.as_str());
        assert_eq!(find("POST /api/v1/auth/register"), Some("register"));
        assert_eq!(find("GET /api/v1/products/{id}"), Some("get-product"));
        assert_eq!(t.default_function.as_deref(), Some("openapi"));
        assert_eq!(
            t.queue_sources,
            vec![QueueSource {
                function: "email-worker".into(),
                queue: "EmailQueue".into(),
                batch_size: 10,
                batching_window: Duration::from_secs(1),
                report_failures: true,
            }]
        );
        assert_eq!(
            t.schedules.first().map(|s| (s.function.as_str(), s.period)),
            Some(("outbox-sweeper", Duration::from_secs(60)))
        );
        let queue = t.queues.get("EmailQueue");
        assert_eq!(queue.and_then(|q| q.redrive.clone()), Some(("EmailDeadLetterQueue".into(), 5)));
        assert_eq!(queue.and_then(|q| q.visibility_timeout), Some(180));
    }

    #[test]
    fn environment_resolves_references_through_bindings() {
        let t = template();
        let bindings = Bindings::new(
            [
                ("JwtSecret", "gamestore/jwt-secret"),
                ("DbAppSecret", "gamestore/db-app"),
                ("DbProxy.Endpoint", "127.0.0.1"),
                ("DbName", "gamestore"),
                ("EmailQueue", "http://queue"),
                ("MailFrom", "welcome@example.com"),
                ("StageName", "dev"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let overrides = BTreeMap::from([("DB_PORT".to_owned(), "5433".to_owned())]);
        let env = |function: &str| match t.environment(function, &bindings, &overrides) {
            Ok(env) => env,
            Err(err) => panic!("{function}: {err}"),
        };
        let login = env("login");
        assert_eq!(login.get("JWT_SECRET_ARN").map(String::as_str), Some("gamestore/jwt-secret"));
        assert_eq!(login.get("DB_SECRET_ARN").map(String::as_str), Some("gamestore/db-app"));
        assert_eq!(login.get("DB_HOST").map(String::as_str), Some("127.0.0.1"));
        assert_eq!(login.get("DB_PORT").map(String::as_str), Some("5433"));
        assert!(!login.contains_key("QUEUE_URL"), "register's queue is not login's");
        assert_eq!(env("register").get("QUEUE_URL").map(String::as_str), Some("http://queue"));

        // Each function is told only of its own secrets, as in AWS.
        let secrets = |function: &str| -> Vec<String> {
            env(function).into_keys().filter(|name| name.ends_with("_SECRET_ARN")).collect()
        };
        assert_eq!(secrets("register"), ["DB_SECRET_ARN"]);
        assert_eq!(secrets("get-product"), ["DB_SECRET_ARN"]);
        assert_eq!(secrets("login"), ["DB_SECRET_ARN", "JWT_SECRET_ARN"]);
        assert!(secrets("openapi").is_empty(), "{:?}", secrets("openapi"));

        let missing = t.environment("login", &Bindings::default(), &overrides);
        assert!(matches!(missing, Err(TemplateError::Unbound(_))));
        assert!(matches!(t.environment("nothing", &bindings, &overrides), Err(TemplateError::Invalid { .. })));
    }

    #[test]
    fn rates() {
        assert_eq!(rate("rate(1 minute)"), Some(Duration::from_secs(60)));
        assert_eq!(rate("rate(2 hours)"), Some(Duration::from_secs(7200)));
        assert_eq!(rate("cron(0 * * * ? *)"), None);
    }
}
