#![allow(clippy::expect_used)]
//! Properties of `infra/template.yaml` (and `infra/samconfig.toml`) that would hurt on a
//! real deploy and that neither cfn-lint nor the checkov scan knows about:
//! - every function CodeDeploy deploys runs the migrate function as its PreTraffic hook and
//!   rolls back on the alarms that watch it;
//! - the reserved concurrency of every environment fits the connections RDS Proxy may open
//!   on that environment's instance class (README "Concurrency budget");
//! - each function is granted exactly the secrets it reads;
//! - no resource that an update may replace carries a fixed physical name, except the
//!   few the README's "Names and replacements" lists;
//! - the Secrets extension rule names exactly the regions of the layer mapping;
//! - the email worker knows the email queue's `maxReceiveCount`, so it counts a message
//!   dead-lettered on its last receive.
//!
//! Like `infra_drift.rs`, the template is read by indentation rather than with a YAML
//! crate (CloudFormation's short-form tags would need one that keeps them): [`Block`] is a
//! YAML block mapping as lines, and the checks read keys at known places in this file's style.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::resources::Needs;

/// Lines of one YAML block; its direct children are the lines at its smallest indent.
#[derive(Debug, Clone)]
struct Block<'a> {
    lines: Vec<&'a str>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

impl<'a> Block<'a> {
    fn new(text: &'a str) -> Self {
        let lines =
            text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).collect::<Vec<_>>();
        Block { lines }
    }

    fn child_indent(&self) -> usize {
        self.lines.iter().map(|l| indent(l)).min().unwrap_or(0)
    }

    /// `(key, inline value, block)` of each direct child `key: value`.
    fn entries(&self) -> Vec<(&'a str, &'a str, Block<'a>)> {
        let base = self.child_indent();
        let mut entries = Vec::new();
        for (i, line) in self.lines.iter().enumerate() {
            if indent(line) != base {
                continue;
            }
            let Some((key, value)) = line.trim().split_once(':') else { continue };
            if key.starts_with("- ") || key.contains(' ') && !key.starts_with('"') {
                continue;
            }
            let body = self.lines[i + 1..].iter().take_while(|l| indent(l) > base).copied().collect();
            entries.push((key.trim_matches('"'), value.trim(), Block { lines: body }));
        }
        entries
    }

    fn child(&self, key: &str) -> Option<Block<'a>> {
        self.entries().into_iter().find(|(k, _, _)| *k == key).map(|(_, _, block)| block)
    }

    fn path(&self, keys: &[&str]) -> Option<Block<'a>> {
        keys.iter().try_fold(self.clone(), |block, key| block.child(key))
    }

    fn value(&self, key: &str) -> Option<&'a str> {
        self.entries().into_iter().find(|(k, _, _)| *k == key).map(|(_, v, _)| v)
    }

    /// Every `!Ref Name` (and `!GetAtt Name.…`) anywhere in the block.
    fn refs(&self) -> BTreeSet<String> {
        let mut refs = BTreeSet::new();
        for line in &self.lines {
            for tag in ["!Ref ", "!GetAtt "] {
                for (i, _) in line.match_indices(tag) {
                    let name: String =
                        line[i + tag.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == ':').collect();
                    refs.insert(name);
                }
            }
        }
        refs
    }

    fn text(&self) -> String {
        self.lines.join("\n")
    }
}

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

struct Template<'a> {
    root: Block<'a>,
}

impl<'a> Template<'a> {
    fn resources(&self) -> Vec<(&'a str, Block<'a>)> {
        let resources = self.root.child("Resources").expect("Resources");
        resources.entries().into_iter().map(|(id, _, block)| (id, block)).collect()
    }

    fn functions(&self) -> Vec<(&'a str, Block<'a>)> {
        self.resources().into_iter().filter(|(_, r)| r.value("Type") == Some("AWS::Serverless::Function")).collect()
    }

    fn is_http(function: &Block) -> bool {
        function
            .path(&["Properties", "Events"])
            .is_some_and(|events| events.entries().iter().any(|(_, _, e)| e.value("Type") == Some("HttpApi")))
    }

    fn resource(&self, id: &str) -> Block<'a> {
        self.resources().into_iter().find(|(i, _)| *i == id).map(|(_, b)| b).unwrap_or_else(|| panic!("no {id}"))
    }

    fn parameter_default(&self, name: &str) -> Option<&'a str> {
        self.root.path(&["Parameters", name])?.value("Default").map(|v| v.trim_matches('"'))
    }
}

// ------------------------------------------------------------------ rollout

/// Problems with the rollout: every deployed function (all but migrate) publishes to an
/// alias CodeDeploy shifts after the migrate hook, with alarms that roll it back.
fn rollout_problems(template: &Template) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(globals) = template.root.path(&["Globals", "Function"]) else {
        return vec!["no Globals.Function".to_owned()];
    };
    if globals.value("AutoPublishAlias").is_none() {
        problems.push("Globals.Function has no AutoPublishAlias: nothing for CodeDeploy to shift".to_owned());
    }
    let preference = globals.child("DeploymentPreference");
    let hook = preference.as_ref().and_then(|p| p.path(&["Hooks"])).and_then(|h| h.value("PreTraffic"));
    if hook != Some("!Ref MigrateFunction") {
        problems
            .push(format!("Globals DeploymentPreference PreTraffic hook is {hook:?}, expected !Ref MigrateFunction"));
    }
    let global_alarms = preference.as_ref().map(Block::refs).unwrap_or_default();
    for alarm in ["Api5xxAlarm", "HttpFunctionErrorsAlarm"] {
        if !global_alarms.contains(alarm) {
            problems.push(format!("the HTTP functions' deployments do not roll back on {alarm}"));
        }
    }

    let http_errors = template.resource("HttpFunctionErrorsAlarm").refs();
    let background_errors = template.resource("BackgroundFunctionErrorsAlarm").refs();
    for (id, function) in template.functions() {
        let own = function.path(&["Properties", "DeploymentPreference"]);
        let disabled = own.as_ref().and_then(|p| p.value("Enabled")) == Some("false");
        if id == "MigrateFunction" {
            if !disabled {
                problems.push("MigrateFunction is the hook: its own DeploymentPreference must be disabled".to_owned());
            }
            continue;
        }
        if disabled || own.as_ref().is_some_and(|p| p.child("Hooks").is_some() || p.value("Type").is_some()) {
            problems.push(format!("{id} overrides the hook or strategy of the global DeploymentPreference"));
        }
        if Template::is_http(&function) {
            if own.is_some() {
                problems.push(format!("{id} is an HTTP function but overrides the HTTP rollback alarms"));
            }
            if !http_errors.contains(id) {
                problems.push(format!("{id}'s errors are not in HttpFunctionErrorsAlarm, which rolls it back"));
            }
        } else {
            let refs = own.as_ref().map(Block::refs).unwrap_or_default();
            if !refs.contains("BackgroundFunctionErrorsAlarm") || !background_errors.contains(id) {
                problems.push(format!("{id}'s deployment does not roll back on BackgroundFunctionErrorsAlarm"));
            }
        }
    }
    problems
}

#[test]
fn every_deployment_runs_the_migrations_first_and_rolls_back_on_alarms() {
    let text = read("infra/template.yaml");
    let template = Template { root: Block::new(&text) };
    assert!(template.functions().len() >= 10, "parsed too few functions");
    let problems = rollout_problems(&template);
    assert!(problems.is_empty(), "rollout:\n  {}", problems.join("\n  "));
}

// ------------------------------------------------------------------ concurrency budget

/// Memory of the instance classes the README's budget table covers, in GiB.
const CLASS_MEMORY_GIB: &[(&str, u64)] = &[
    ("db.t4g.micro", 1),
    ("db.t4g.small", 2),
    ("db.t4g.medium", 4),
    ("db.t4g.large", 8),
    ("db.m7g.large", 8),
    ("db.r7g.large", 16),
];

/// The max_connections we plan with: RDS's default, LEAST(DBInstanceClassMemory/9531392,
/// 5000), computed from the full memory, less 30 % because DBInstanceClassMemory leaves
/// out what the OS and RDS keep (README "Concurrency budget").
fn planned_max_connections(class: &str) -> Option<u64> {
    let gib = CLASS_MEMORY_GIB.iter().find(|(c, _)| *c == class)?.1;
    Some((gib * 1024 * 1024 * 1024 / 9_531_392).min(5000) * 7 / 10)
}

/// The environments of samconfig.toml: name -> parameter overrides.
fn environments(samconfig: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut envs = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_overrides = false;
    for line in samconfig.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            current = section.strip_suffix(".deploy.parameters").filter(|env| *env != "default").map(str::to_owned);
            in_overrides = false;
            if let Some(env) = &current {
                envs.entry(env.clone()).or_insert_with(BTreeMap::new);
            }
        } else if line.starts_with("parameter_overrides") {
            in_overrides = true;
        } else if in_overrides && line.starts_with(']') {
            in_overrides = false;
        } else if let (true, Some(env), Some((key, value))) =
            (in_overrides, &current, line.trim_end_matches(',').trim_matches('"').split_once('='))
        {
            envs.entry(env.clone()).or_default().insert(key.to_owned(), value.to_owned());
        }
    }
    envs
}

/// Each function's reserved concurrency in an environment (None: not reserved).
fn reserved_concurrency(template: &Template, overrides: &BTreeMap<String, String>) -> BTreeMap<String, Option<u64>> {
    let resolve = |token: &str| -> Option<u64> {
        let token = token.trim();
        match token.strip_prefix("!Ref ") {
            Some(param) => overrides
                .get(param)
                .map(String::as_str)
                .or_else(|| template.parameter_default(param))
                .and_then(|v| v.parse().ok()),
            None => token.parse().ok(),
        }
    };
    template
        .functions()
        .into_iter()
        .map(|(id, function)| {
            let value = function.path(&["Properties"]).and_then(|p| p.value("ReservedConcurrentExecutions"));
            // `!If [ReserveConcurrency, <count>, !Ref AWS::NoValue]`, or a plain count.
            let count = value.and_then(|v| match v.strip_prefix("!If [ReserveConcurrency,") {
                Some(rest) => rest.split(',').next().and_then(resolve),
                None => resolve(v),
            });
            (id.to_owned(), count)
        })
        .collect()
}

/// Functions that open no database pool (`resources::Needs` asks for none).
const NO_POOL: &[&str] = &["OpenapiFunction"];

fn budget_problems(template: &Template, envs: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<String> {
    let mut problems = Vec::new();
    let pool = template.resource("DbProxyTargetGroup");
    let percent: u64 = pool
        .path(&["Properties", "ConnectionPoolConfigurationInfo"])
        .and_then(|c| c.value("MaxConnectionsPercent"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let borrow: u64 = pool
        .path(&["Properties", "ConnectionPoolConfigurationInfo"])
        .and_then(|c| c.value("ConnectionBorrowTimeout"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    for (id, function) in template.functions() {
        let timeout: u64 =
            function.path(&["Properties"]).and_then(|p| p.value("Timeout")).and_then(|v| v.parse().ok()).unwrap_or(10);
        if Template::is_http(&function) && borrow * 2 > timeout {
            problems.push(format!("ConnectionBorrowTimeout {borrow} s is not well under {id}'s timeout {timeout} s"));
        }
    }
    for (env, overrides) in envs {
        let class = overrides
            .get("DbInstanceClass")
            .map(String::as_str)
            .or_else(|| template.parameter_default("DbInstanceClass"))
            .unwrap_or_default();
        let Some(max_connections) = planned_max_connections(class) else {
            problems.push(format!("{env}: instance class {class} is not in the budget table"));
            continue;
        };
        let share = max_connections * percent / 100;
        // One connection per execution environment (DB_POOL_SIZE 1 in Lambda).
        let reserved = reserved_concurrency(template, overrides);
        let mut total = 0;
        for (id, count) in &reserved {
            match count {
                // Only the functions that run queries hold a connection; `openapi` opens no
                // pool, and is reserved only to cap the `$default` route.
                Some(count) if !NO_POOL.contains(&id.as_str()) => total += count,
                Some(_) => {}
                None => problems.push(format!("{env}: {id} has no reserved concurrency")),
            }
        }
        if total > share {
            problems.push(format!(
                "{env}: reserved concurrency {total} exceeds the proxy's share {share} ({percent} % of {max_connections}) on {class}"
            ));
        }
    }
    problems
}

#[test]
fn reserved_concurrency_fits_the_connections_the_proxy_may_open() {
    let text = read("infra/template.yaml");
    let template = Template { root: Block::new(&text) };
    let envs = environments(&read("infra/samconfig.toml"));
    assert!(envs.contains_key("dev") && envs.contains_key("prod"), "{envs:?}");
    let problems = budget_problems(&template, &envs);
    assert!(problems.is_empty(), "concurrency budget:\n  {}", problems.join("\n  "));
}

// ------------------------------------------------------------------ secrets

/// The secrets behind `resources::Needs`: the application role's database credentials
/// and the JWT key. What an HTTP function needs is read from its crate (`LAMBDA`, through
/// `gamestore::functions()`), so the template follows the code.
fn secrets_of(needs: Needs) -> BTreeSet<&'static str> {
    [("DbAppSecret", needs.database), ("JwtSecret", needs.jwt)]
        .into_iter()
        .filter_map(|(secret, asked)| asked.then_some(secret))
        .collect()
}

/// The background functions, which read their secrets outside the shared HTTP start-up:
/// the email worker and the sweeper run queries as the application role; migrate connects
/// as the owner (DbSecret), sets the application role's password (DbAppSecret) and creates
/// the first admin (AdminSecret).
const BACKGROUND_SECRETS: &[(&str, &[&str])] = &[
    ("email-worker", &["DbAppSecret"]),
    ("outbox-sweeper", &["DbAppSecret"]),
    ("migrate", &["DbSecret", "DbAppSecret", "AdminSecret"]),
];

/// The secrets each template function reads, by logical id, from the binary it builds.
fn secrets_used(template: &Template) -> BTreeMap<String, BTreeSet<&'static str>> {
    let http: BTreeMap<&str, Needs> =
        gamestore::functions().into_iter().map(|(name, needs, _)| (name, needs)).collect();
    template
        .functions()
        .into_iter()
        .map(|(id, function)| {
            let binary = function.path(&["Metadata", "BuildProperties"]).and_then(|b| b.value("Binary"));
            let binary = binary.unwrap_or_else(|| panic!("{id} names no binary"));
            let used: BTreeSet<&str> = match (http.get(binary), BACKGROUND_SECRETS.iter().find(|(b, _)| *b == binary)) {
                (Some(needs), _) => secrets_of(*needs),
                (None, Some((_, secrets))) => secrets.iter().copied().collect(),
                (None, None) => panic!("{id} builds {binary}, which is neither an HTTP function nor listed here"),
            };
            (id.to_owned(), used)
        })
        .collect()
}

/// The environment variable through which a function finds each secret.
const SECRET_VARIABLES: &[(&str, &str)] = &[
    ("DbSecret", "DB_OWNER_SECRET_ARN"),
    ("DbAppSecret", "DB_SECRET_ARN"),
    ("JwtSecret", "JWT_SECRET_ARN"),
    ("AdminSecret", "ADMIN_SECRET_ARN"),
];

/// The secrets RDS Proxy must serve: every database login a function uses.
const PROXY_LOGINS: &[&str] = &["DbSecret", "DbAppSecret"];

/// Every secret of the template: those the functions' policies may name.
const SECRETS: &[&str] = &["DbSecret", "DbAppSecret", "JwtSecret", "AdminSecret"];

/// Problems with the secrets: a function granted, or told in its environment, a secret it
/// does not use (or not one it uses), a secret variable in Globals (which every function
/// gets), a login the proxy does not serve.
fn secret_problems(template: &Template, used: &BTreeMap<String, BTreeSet<&str>>) -> Vec<String> {
    let mut problems = Vec::new();
    let globals_env = template.root.path(&["Globals", "Function", "Environment", "Variables"]);
    for (_, variable) in SECRET_VARIABLES {
        if globals_env.as_ref().and_then(|e| e.value(variable)).is_some() {
            problems.push(format!("Globals tells every function {variable}"));
        }
    }
    let proxy = template.resources().into_iter().find(|(id, _)| *id == "DbProxy").map(|(_, p)| p);
    let proxy_auth = proxy.as_ref().and_then(|p| p.path(&["Properties", "Auth"])).map(|a| a.refs()).unwrap_or_default();
    for login in PROXY_LOGINS {
        if !proxy_auth.contains(*login) {
            problems.push(format!("DbProxy does not serve the {login} login"));
        }
    }
    for (id, function) in template.functions() {
        let policies = function.path(&["Properties", "Policies"]).map(|p| p.text()).unwrap_or_default();
        if policies.contains("secretsmanager:*") || policies.contains("Resource: \"*\"") {
            problems.push(format!("{id}: a wildcard in its policies"));
        }
        let granted = function.path(&["Properties", "Policies"]).map(|p| p.refs()).unwrap_or_default();
        let env = function.path(&["Properties", "Environment", "Variables"]);
        let uses = used.get(id).cloned().unwrap_or_default();
        for secret in SECRETS {
            let expected = uses.contains(secret);
            let has_grant = granted.contains(*secret);
            if has_grant != expected {
                problems.push(format!("{id}: {} {secret}", if has_grant { "must not read" } else { "needs" }));
            }
            let variable = SECRET_VARIABLES.iter().find(|(s, _)| s == secret).map(|(_, v)| *v).unwrap_or_default();
            let own = env.as_ref().and_then(|e| e.value(variable));
            let global = globals_env.as_ref().and_then(|e| e.value(variable));
            let told = own.or(global).is_some();
            if told != expected {
                problems.push(format!(
                    "{id}: {} {variable}",
                    if told { "is told, and does not use," } else { "is not told" }
                ));
            }
        }
    }
    problems
}

#[test]
fn each_function_reads_only_the_secrets_it_uses() {
    let text = read("infra/template.yaml");
    let template = Template { root: Block::new(&text) };
    let problems = secret_problems(&template, &secrets_used(&template));
    assert!(problems.is_empty(), "secret grants:\n  {}", problems.join("\n  "));
}

// ------------------------------------------------------------------ dead letters

#[test]
fn the_email_worker_knows_when_the_queue_dead_letters_a_message() {
    let text = read("infra/template.yaml");
    let template = Template { root: Block::new(&text) };
    let redrive = template.resource("EmailQueue").path(&["Properties", "RedrivePolicy"]).expect("a redrive policy");
    let max_receives = redrive.value("maxReceiveCount").expect("maxReceiveCount");
    let worker = template.resource("EmailWorkerFunction");
    let told = worker.path(&["Properties", "Environment", "Variables"]).and_then(|env| env.value("QUEUE_MAX_ATTEMPTS"));
    assert_eq!(told.map(|v| v.trim_matches('"')), Some(max_receives), "EmailWorkerFunction's QUEUE_MAX_ATTEMPTS");
}

// ------------------------------------------------------------------ names

/// Properties that set a physical name.
const NAME_PROPERTIES: &[&str] = &[
    "Name",
    "FunctionName",
    "QueueName",
    "TopicName",
    "LogGroupName",
    "RoleName",
    "GroupName",
    "DBInstanceIdentifier",
    "DBProxyName",
    "DBSubnetGroupName",
    "AlarmName",
    "ApplicationName",
    "DeploymentGroupName",
    "TableName",
    "BucketName",
];

/// Names we keep on purpose, each explained in the README's "Names and replacements"
/// (resource, property). `DBSubnetGroupName` on Database and `LogGroup` references are
/// references, not names of the resource itself, and are not properties of this kind.
const NAMED_ON_PURPOSE: &[(&str, &str)] = &[
    ("Database", "DBInstanceIdentifier"),
    ("DatabaseLogGroup", "LogGroupName"),
    ("DbProxy", "DBProxyName"),
    ("DbProxyTargetGroup", "DBProxyName"),
];

fn name_problems(template: &Template, readme: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, resource) in template.resources() {
        let Some(properties) = resource.child("Properties") else { continue };
        for (key, value, _) in properties.entries() {
            if !NAME_PROPERTIES.contains(&key) || value.starts_with("!Ref ") || value.starts_with("!GetAtt ") {
                continue;
            }
            if !NAMED_ON_PURPOSE.contains(&(id, key)) {
                problems.push(format!("{id}.{key} is a fixed physical name ({value})"));
            }
        }
    }
    let section = readme.split("### Names and replacements").nth(1).unwrap_or_default();
    let section = section.split("\n#").next().unwrap_or_default();
    for (id, key) in NAMED_ON_PURPOSE {
        if !section.contains(id) || !section.contains(key) {
            problems.push(format!("README \"Names and replacements\" does not explain {id}.{key}"));
        }
    }
    problems
}

#[test]
fn no_fixed_names_on_replaceable_resources() {
    let text = read("infra/template.yaml");
    let template = Template { root: Block::new(&text) };
    let problems = name_problems(&template, &read("README.md"));
    assert!(problems.is_empty(), "names:\n  {}", problems.join("\n  "));
}

// ------------------------------------------------------------------ CORS

/// The items of a flow list value, `[a, b, "c"]`.
fn flow_list(value: &str) -> Vec<String> {
    let inner = value.trim().strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or_default();
    inner.split(',').map(|item| item.trim().trim_matches('"').to_owned()).filter(|item| !item.is_empty()).collect()
}

/// API Gateway answers CORS in AWS, the local server's layer locally: a browser may send
/// and read the same things through both.
#[test]
fn api_gateway_cors_allows_what_the_local_server_does() {
    let text = read("infra/template.yaml");
    let template = Template { root: Block::new(&text) };
    let cors = template.resource("HttpApi").path(&["Properties", "CorsConfiguration"]).expect("CorsConfiguration");
    let listed = |key: &str| flow_list(cors.value(key).unwrap_or_else(|| panic!("CorsConfiguration.{key}")));
    let methods: Vec<String> = common::http::CORS_ALLOW_METHODS.iter().map(ToString::to_string).collect();
    assert_eq!(listed("AllowMethods"), methods);
    assert_eq!(listed("AllowHeaders"), common::http::CORS_ALLOW_HEADERS);
    assert_eq!(listed("ExposeHeaders"), common::http::CORS_EXPOSE_HEADERS);
    assert_eq!(cors.value("MaxAge"), Some(common::http::CORS_MAX_AGE_SECS.to_string().as_str()));
    assert!(cors.value("AllowOrigins").is_some_and(|v| v.contains("CorsAllowedOrigins")), "{}", cors.text());
}

// ------------------------------------------------------------------ extension layer

#[test]
fn the_layer_rule_names_exactly_the_mapped_regions() {
    let text = read("infra/template.yaml");
    let template = Template { root: Block::new(&text) };
    let mapped: BTreeSet<&str> = template
        .root
        .path(&["Mappings", "SecretsExtensionLayer"])
        .expect("SecretsExtensionLayer mapping")
        .entries()
        .into_iter()
        .map(|(region, _, _)| region)
        .collect();
    let rule = template.root.path(&["Rules", "SecretsExtensionLayerIsMapped"]).expect("the layer rule").text();
    let list = rule.split_once("- [").and_then(|(_, rest)| rest.split_once(']')).map(|(list, _)| list);
    let asserted: BTreeSet<&str> = list.unwrap_or_default().split(',').map(str::trim).collect();
    assert!(mapped.len() >= 10, "{mapped:?}");
    assert_eq!(asserted, mapped, "the rule's regions and the mapping's differ");
}

// ------------------------------------------------------------------ the checks catch what they claim

const SAMPLE: &str = r#"
Parameters:
  DbInstanceClass:
    Type: String
    Default: db.t4g.micro
  ApiConcurrency:
    Type: Number
    Default: 40
Globals:
  Function:
    AutoPublishAlias: live
    DeploymentPreference:
      Type: !Ref DeploymentStrategy
      Hooks:
        PreTraffic: !Ref MigrateFunction
      Alarms:
        - !Ref Api5xxAlarm
    Environment:
      Variables:
        DB_SECRET_ARN: !Ref DbSecret
Resources:
  ApiFunction:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: fixed-name
      ReservedConcurrentExecutions: !If [ReserveConcurrency, !Ref ApiConcurrency, !Ref AWS::NoValue]
      Environment:
        Variables:
          JWT_SECRET_ARN: !Ref JwtSecret
      Policies:
        - Statement:
            - Effect: Allow
              Action: secretsmanager:GetSecretValue
              Resource: [!Ref DbSecret, !Ref AdminSecret]
      Events:
        Api:
          Type: HttpApi
          Properties:
            Path: /x
  MigrateFunction:
    Type: AWS::Serverless::Function
    Properties:
      ReservedConcurrentExecutions: 1
      Policies:
        - Statement:
            - Effect: Allow
              Action: secretsmanager:GetSecretValue
              Resource: [!Ref DbSecret]
  HttpFunctionErrorsAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Metrics: []
  BackgroundFunctionErrorsAlarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Metrics: []
  DbProxyTargetGroup:
    Type: AWS::RDS::DBProxyTargetGroup
    Properties:
      ConnectionPoolConfigurationInfo:
        MaxConnectionsPercent: 80
        ConnectionBorrowTimeout: 10
"#;

#[test]
fn the_checks_find_what_they_look_for() {
    let template = Template { root: Block::new(SAMPLE) };

    let rollout = rollout_problems(&template).join("\n");
    assert!(rollout.contains("do not roll back on HttpFunctionErrorsAlarm"), "{rollout}");
    assert!(rollout.contains("ApiFunction's errors are not in HttpFunctionErrorsAlarm"), "{rollout}");
    assert!(rollout.contains("MigrateFunction is the hook"), "{rollout}");

    // 40 + 1 fits 62 on a micro; 80 + 1 does not.
    let env = |count: &str| {
        BTreeMap::from([("dev".to_owned(), BTreeMap::from([("ApiConcurrency".to_owned(), count.to_owned())]))])
    };
    let fits = budget_problems(&template, &env("40"));
    assert_eq!(fits, vec!["ConnectionBorrowTimeout 10 s is not well under ApiFunction's timeout 10 s".to_owned()]);
    let over = budget_problems(&template, &env("80")).join("\n");
    assert!(over.contains("dev: reserved concurrency 81 exceeds the proxy's share 62"), "{over}");

    let used = BTreeMap::from([
        ("ApiFunction".to_owned(), BTreeSet::from(["DbSecret"])),
        ("MigrateFunction".to_owned(), BTreeSet::from(["DbSecret", "AdminSecret"])),
    ]);
    let secrets = secret_problems(&template, &used).join("\n");
    assert!(secrets.contains("ApiFunction: must not read AdminSecret"), "{secrets}");
    assert!(secrets.contains("MigrateFunction: needs AdminSecret"), "{secrets}");
    assert!(secrets.contains("Globals tells every function DB_SECRET_ARN"), "{secrets}");
    assert!(secrets.contains("ApiFunction: is told, and does not use, JWT_SECRET_ARN"), "{secrets}");
    assert!(secrets.contains("MigrateFunction: is not told ADMIN_SECRET_ARN"), "{secrets}");
    assert!(secrets.contains("DbProxy does not serve the DbAppSecret login"), "{secrets}");

    let names = name_problems(&template, "").join("\n");
    assert!(names.contains("ApiFunction.FunctionName is a fixed physical name"), "{names}");
    assert!(names.contains("does not explain Database.DBInstanceIdentifier"), "{names}");
}
