//! No drift between the function crates and `infra/template.yaml`: every crate in
//! `functions/` is deployed by a template function building its binary, every HTTP route
//! the crate declares (its `api()` table, as the local server and the Lambda serve it) is
//! an HTTP API route of that function (and no other route is), and the template names no
//! function crate that does not exist.
//!
//! The template is read line by line rather than with a YAML crate: it only needs the
//! resources' names, `Type`, `CodeUri`, `BuildProperties.Binary` and HTTP event
//! `Method`/`Path`, all plain `key: value` lines at fixed indents in this file's style.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Functions the template already deploys whose crates are still being built on other
/// branches. The team lead deletes entries (and then this constant) when those branches
/// merge; the test fails once such a crate exists, so the list cannot go stale.
const PENDING_FUNCTIONS: &[&str] = &[];

#[derive(Debug, Default, Clone)]
struct TemplateFunction {
    logical_id: String,
    build_method: Option<String>,
    binary: Option<String>,
    code_uri: Option<String>,
    timeout: Option<u32>,
    /// (METHOD, path) of each `Type: HttpApi` event.
    routes: BTreeSet<(String, String)>,
}

#[derive(Debug, Default)]
struct Template {
    functions: Vec<TemplateFunction>,
    /// `VisibilityTimeout` of each queue resource, by logical id.
    visibility_timeouts: BTreeMap<String, u32>,
}

fn value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim_start().strip_prefix(key)?.strip_prefix(':')?;
    Some(rest.trim().trim_matches('"').trim_matches('\''))
}

fn parse_template(text: &str) -> Template {
    let mut template = Template::default();
    let mut in_resources = false;
    let mut current: Option<(String, Vec<&str>)> = None;
    let mut blocks: Vec<(String, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() && !line.starts_with('#') {
            in_resources = line.trim_end() == "Resources:";
            if let Some(block) = current.take() {
                blocks.push(block);
            }
            continue;
        }
        if !in_resources {
            continue;
        }
        // A resource starts at exactly two spaces of indent: `  LogicalId:`.
        let indent = line.len() - line.trim_start().len();
        if indent == 2 && line.trim_end().ends_with(':') && !line.trim_start().starts_with('#') {
            if let Some(block) = current.take() {
                blocks.push(block);
            }
            current = Some((line.trim().trim_end_matches(':').to_owned(), Vec::new()));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    if let Some(block) = current.take() {
        blocks.push(block);
    }

    for (logical_id, lines) in blocks {
        let kind = lines.iter().find_map(|l| (l.len() - l.trim_start().len() == 4).then(|| value(l, "Type")).flatten());
        match kind {
            Some("AWS::Serverless::Function") => {
                let mut function = TemplateFunction { logical_id, ..TemplateFunction::default() };
                let mut event_type: Option<&str> = None;
                let mut method: Option<String> = None;
                let mut path: Option<String> = None;
                for line in &lines {
                    let indent = line.len() - line.trim_start().len();
                    if let Some(v) = value(line, "BuildMethod") {
                        function.build_method = Some(v.to_owned());
                    } else if let Some(v) = value(line, "Binary") {
                        function.binary = Some(v.to_owned());
                    } else if let Some(v) = value(line, "CodeUri") {
                        function.code_uri = Some(v.to_owned());
                    } else if indent == 6 && value(line, "Timeout").is_some() {
                        function.timeout = value(line, "Timeout").and_then(|v| v.parse().ok());
                    } else if indent == 10 && value(line, "Type").is_some() {
                        event_type = value(line, "Type");
                        method = None;
                        path = None;
                    } else if event_type == Some("HttpApi") {
                        if let Some(v) = value(line, "Method") {
                            method = Some(v.to_ascii_uppercase());
                        } else if let Some(v) = value(line, "Path") {
                            path = Some(v.to_owned());
                        }
                        if let (Some(m), Some(p)) = (&method, &path) {
                            function.routes.insert((m.clone(), p.clone()));
                            method = None;
                            path = None;
                        }
                    }
                }
                template.functions.push(function);
            }
            Some("AWS::SQS::Queue") => {
                if let Some(timeout) = lines.iter().find_map(|l| value(l, "VisibilityTimeout")?.parse().ok()) {
                    template.visibility_timeouts.insert(logical_id, timeout);
                }
            }
            _ => {}
        }
    }
    template
}

/// A crate in `functions/` and the routes its router owns.
#[derive(Debug)]
struct Crate {
    name: String,
    routes: BTreeSet<(String, String)>,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The crates in `functions/`, each with the routes its `api()` declares (none for the
/// functions not triggered over HTTP).
fn function_crates(root: &Path) -> Vec<Crate> {
    let mut routes: BTreeMap<&str, BTreeSet<(String, String)>> = gamestore::functions()
        .into_iter()
        .map(|(name, _, routes)| {
            (
                name,
                routes.table().iter().map(|(method, path)| (method.as_str().to_owned(), (*path).to_owned())).collect(),
            )
        })
        .collect();
    let mut crates = Vec::new();
    let Ok(entries) = std::fs::read_dir(root.join("functions")) else { panic!("cannot list functions/") };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.join("Cargo.toml").is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        crates.push(Crate { routes: routes.remove(name.as_str()).unwrap_or_default(), name });
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    crates
}

/// Every disagreement between the template and the crates, as messages for people.
fn drift(template: &Template, crates: &[Crate], pending: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let by_binary: BTreeMap<&str, &TemplateFunction> =
        template.functions.iter().filter_map(|f| Some((f.binary.as_deref()?, f))).collect();

    for function in &template.functions {
        let id = &function.logical_id;
        if function.build_method.as_deref() != Some("rust-cargolambda") {
            problems.push(format!("{id}: Metadata.BuildMethod must be rust-cargolambda"));
        }
        let Some(binary) = function.binary.as_deref() else {
            problems.push(format!("{id}: Metadata.BuildProperties.Binary is missing"));
            continue;
        };
        let expected_uri = format!("../functions/{binary}");
        if function.code_uri.as_deref() != Some(expected_uri.as_str()) {
            problems.push(format!("{id}: CodeUri is {:?}, expected {expected_uri}", function.code_uri));
        }
        let exists = crates.iter().any(|c| c.name == binary);
        let is_pending = pending.contains(&binary);
        if !exists && !is_pending {
            problems.push(format!("{id}: the template builds `{binary}` but functions/{binary} does not exist"));
        }
        if exists && is_pending {
            problems.push(format!(
                "functions/{binary} exists now: remove it from PENDING_FUNCTIONS in server/tests/infra_drift.rs"
            ));
        }
    }
    if template.functions.iter().filter(|f| f.routes.iter().any(|r| r.1 == "$default")).count() > 1 {
        problems.push("more than one function takes the HTTP API's $default route".to_owned());
    }
    if template.functions.iter().filter_map(|f| f.binary.as_deref()).collect::<BTreeSet<_>>().len()
        != template.functions.len()
    {
        problems.push("two template functions build the same binary".to_owned());
    }

    for krate in crates {
        let Some(function) = by_binary.get(krate.name.as_str()) else {
            problems.push(format!("functions/{} has no AWS::Serverless::Function in infra/template.yaml", krate.name));
            continue;
        };
        for route in krate.routes.difference(&function.routes) {
            problems
                .push(format!("{}: route {} {} has no HttpApi event in the template", krate.name, route.0, route.1));
        }
        // The API's `$default` route (whatever no function owns) lands on one router's
        // JSON 404 fallback; it is not a route that router declares.
        for route in function.routes.difference(&krate.routes).filter(|r| r.1 != "$default") {
            problems.push(format!(
                "{}: the template routes {} {} to it, but its router does not serve it",
                function.logical_id, route.0, route.1
            ));
        }
    }

    // Lambda's SQS integration wants the queue's visibility timeout >= 6x the consumer's timeout.
    if let (Some(worker), Some(visibility)) = (
        template.functions.iter().find(|f| f.binary.as_deref() == Some("email-worker")),
        template.visibility_timeouts.get("EmailQueue"),
    ) {
        match worker.timeout {
            Some(timeout) if *visibility >= 6 * timeout => {}
            other => problems.push(format!(
                "EmailQueue VisibilityTimeout {visibility} s is less than 6x the email worker's Timeout {other:?}"
            )),
        }
    }
    problems
}

#[test]
fn template_and_function_crates_agree() {
    let root = repo_root();
    let text = std::fs::read_to_string(root.join("infra/template.yaml")).unwrap_or_default();
    let template = parse_template(&text);
    let crates = function_crates(&root);
    assert!(template.functions.len() >= 7, "parsed too few functions: {template:#?}");
    assert!(crates.len() >= 7, "found too few crates: {crates:#?}");
    // The parser must see the routes on both sides, or the comparison proves nothing.
    assert!(template.functions.iter().filter(|f| !f.routes.is_empty()).count() >= 6);
    assert!(crates.iter().filter(|c| !c.routes.is_empty()).count() >= 6);
    let problems = drift(&template, &crates, PENDING_FUNCTIONS);
    assert!(problems.is_empty(), "infra/template.yaml and functions/ disagree:\n  {}", problems.join("\n  "));
}

const SAMPLE: &str = r#"
Parameters:
  Stage:
    Type: String
Resources:
  # a comment
  ListThingsFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: list-things
    Properties:
      CodeUri: ../functions/list-things
      Timeout: 10
      Events:
        Api:
          Type: HttpApi
          Properties:
            Method: GET
            Path: /things
  WorkerFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: email-worker
    Properties:
      CodeUri: ../functions/email-worker
      Timeout: 30
      Events:
        Queue:
          Type: SQS
          Properties:
            Queue: !GetAtt EmailQueue.Arn
  EmailQueue:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 120
Outputs:
  Url:
    Value: x
"#;

#[test]
fn drift_is_detected() {
    let template = parse_template(SAMPLE);
    assert_eq!(template.functions.len(), 2);
    let routes = |pairs: &[(&str, &str)]| pairs.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let things = |r| Crate { name: "list-things".into(), routes: r };

    // In step (the worker pending): nothing to report but the short visibility timeout.
    let ok = drift(&template, &[things(routes(&[("GET", "/things")]))], &["email-worker"]);
    assert_eq!(ok, vec!["EmailQueue VisibilityTimeout 120 s is less than 6x the email worker's Timeout Some(30)"]);

    // A route the template lacks, a crate without a resource, a resource without a crate.
    let problems = drift(
        &template,
        &[
            things(routes(&[("GET", "/things"), ("POST", "/things")])),
            Crate { name: "orphan".into(), routes: routes(&[]) },
        ],
        &[],
    );
    let all = problems.join("\n");
    assert!(all.contains("list-things: route POST /things has no HttpApi event"), "{all}");
    assert!(all.contains("functions/orphan has no AWS::Serverless::Function"), "{all}");
    assert!(all.contains("functions/email-worker does not exist"), "{all}");

    // A template route the router does not serve; a pending crate that has landed.
    let problems = drift(
        &template,
        &[things(routes(&[])), Crate { name: "email-worker".into(), routes: routes(&[]) }],
        &["email-worker"],
    );
    let all = problems.join("\n");
    assert!(all.contains("routes GET /things to it, but its router does not serve it"), "{all}");
    assert!(all.contains("remove it from PENDING_FUNCTIONS"), "{all}");
}

#[test]
fn every_routed_function_is_a_crate() {
    // A name that matches no crate would leave its routes out of the comparison.
    let crates = function_crates(&repo_root());
    for (name, _, routes) in gamestore::functions() {
        assert!(crates.iter().any(|c| c.name == name), "gamestore::functions() lists {name}, not in functions/");
        assert!(!routes.table().is_empty(), "{name} declares no route");
    }
}
