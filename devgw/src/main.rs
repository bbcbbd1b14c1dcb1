//! `devgw serve`: the local API Gateway, SQS event source, schedule and secrets extension.
//! `devgw functions`: the binaries it invokes; `devgw env --function NAME`: that function's
//! environment as the template sets it, for its own `cargo lambda watch --env-file`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use common::telemetry;
use devgw::gateway::Gateway;
use devgw::invoke::Invoker;
use devgw::secrets::SecretsProxy;
use devgw::sqs::{self, QueuePoller};
use devgw::template::{Bindings, Template};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "Local API Gateway, SQS event source, schedule and Secrets extension from infra/template.yaml")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// The SAM template.
    #[arg(long, default_value = "infra/template.yaml")]
    template: PathBuf,
    /// Local value of a `!Ref`/`!GetAtt` (LogicalId or LogicalId.Attribute), e.g.
    /// `EmailQueue=<queue URL>`, `JwtSecret=<secret name>`; repeatable.
    #[arg(long = "ref", value_parser = pair)]
    refs: Vec<(String, String)>,
    /// Port of the Secrets extension's HTTP interface.
    #[arg(long, default_value_t = common::config::DEFAULT_EXTENSION_PORT)]
    extension_port: u16,
    /// Session token the functions send to the extension (their AWS_SESSION_TOKEN).
    #[arg(long, env = "DEVGW_TOKEN", default_value = "local-session-token")]
    token: String,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, the event sources and the Secrets extension.
    Serve(ServeArgs),
    /// Print the binaries the runner invokes, one a line.
    Functions {
        /// The SAM template.
        #[arg(long, default_value = "infra/template.yaml")]
        template: PathBuf,
    },
    /// Print one function's environment (NAME=value lines) for `cargo lambda watch --env-file`.
    Env {
        #[command(flatten)]
        common: Common,
        /// The function's binary.
        #[arg(long)]
        function: String,
        /// A variable set as given, overriding the template; repeatable.
        #[arg(long = "set", value_parser = pair)]
        set: Vec<(String, String)>,
    },
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: String,
    /// The Invoke API of `cargo lambda watch`.
    #[arg(long, default_value = "http://127.0.0.1:9001")]
    invoke: String,
    /// The Invoke API of one function's own `cargo lambda watch` (BINARY=URL); repeatable.
    #[arg(long = "invoke-function", value_parser = pair)]
    invoke_functions: Vec<(String, String)>,
    /// LocalStack's endpoint, for Secrets Manager (SQS uses the AWS_* environment).
    #[arg(long, env = "AWS_ENDPOINT_URL", default_value = "http://127.0.0.1:4566")]
    aws_endpoint: String,
    /// Seconds between scheduled invocations, instead of the template's rate.
    #[arg(long, env = "DEVGW_SCHEDULE_SECONDS")]
    schedule_seconds: Option<f64>,
    /// The queues' visibility timeout instead of the template's (tests).
    #[arg(long)]
    visibility_timeout: Option<u64>,
    /// The redrive policy's maxReceiveCount instead of the template's (tests).
    #[arg(long)]
    max_receive_count: Option<u32>,
}

fn pair(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())).ok_or_else(|| format!("{raw:?} is not NAME=VALUE"))
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    telemetry::init_local();
    match Cli::parse().command {
        Command::Functions { template } => {
            Template::read(&template)?.invoked_functions().into_iter().for_each(|function| println!("{function}"));
            Ok(())
        }
        Command::Env { common, function, set } => print_env(common, &function, set),
        Command::Serve(args) => serve(args).await,
    }
}

fn print_env(common: Common, function: &str, set: Vec<(String, String)>) -> Result<(), BoxError> {
    let template = Template::read(&common.template)?;
    let mut overrides: BTreeMap<String, String> = set.into_iter().collect();
    // What Lambda and the extension layer give every function.
    overrides.insert("AWS_SESSION_TOKEN".into(), common.token.clone());
    overrides.insert("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT".into(), common.extension_port.to_string());
    let env = template.environment(function, &Bindings::new(common.refs), &overrides)?;
    for (name, value) in env {
        println!("{name}={value}");
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> Result<(), BoxError> {
    let template = Template::read(&args.common.template)?;
    let bindings = Bindings::new(args.common.refs.clone());
    let invoker = Invoker::per_function(&args.invoke, args.invoke_functions.iter().cloned().collect());
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());

    let extension = TcpListener::bind(("127.0.0.1", args.common.extension_port)).await?;
    let proxy = Arc::new(SecretsProxy::new(&args.aws_endpoint, &args.common.token));
    tokio::spawn(devgw::serve(extension, move |request, _| proxy.clone().handle(request)));

    let client = aws_sdk_sqs::Client::new(&common::aws::sdk_config().await);
    for source in &template.queue_sources {
        let queue_url = bindings.get(&source.queue)?.to_owned();
        if let Some(settings) = template.queues.get(&source.queue) {
            let mut settings = settings.clone();
            settings.visibility_timeout = args.visibility_timeout.or(settings.visibility_timeout);
            if let (Some(redrive), Some(count)) = (settings.redrive.as_mut(), args.max_receive_count) {
                redrive.1 = count;
            }
            let dead_letter = settings.redrive.as_ref().map(|(dlq, _)| bindings.get(dlq)).transpose()?;
            sqs::apply_settings(&client, &queue_url, &settings, dead_letter).await?;
            tracing::info!(queue = %queue_url, ?settings, "queue settings from the template");
        }
        tracing::info!(function = %source.function, queue = %queue_url, batch = source.batch_size, "SQS event source");
        let poller =
            QueuePoller::new(client.clone(), source.clone(), queue_url, region.clone(), invoker.clone()).await?;
        tokio::spawn(poller.run());
    }
    for source in &template.schedules {
        let period = args.schedule_seconds.map(Duration::from_secs_f64).unwrap_or(source.period);
        tracing::info!(function = %source.function, ?period, "schedule");
        tokio::spawn(devgw::schedule::run(source.clone(), period, region.clone(), invoker.clone()));
    }

    let gateway = Arc::new(Gateway::new(template.routes.clone(), template.default_function.clone(), invoker));
    let listener = TcpListener::bind(&args.listen).await?;
    tracing::info!(address = %listener.local_addr()?, routes = template.routes.len(), "HTTP API");
    tokio::select! {
        () = devgw::serve(listener, move |request, peer| gateway.clone().handle(request, peer)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
