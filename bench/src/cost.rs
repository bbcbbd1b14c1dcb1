//! The cost model: what a million requests of each HTTP function cost on AWS at the figures
//! this run measured, and how many orders one database instance sustains. Prices are
//! us-east-1 on-demand, as found on 2026-12-01; most come from secondary sources because the
//! official pricing pages render their numbers client-side (bench/README.md, "Cost model",
//! names each source).

use std::fmt::Write as _;

use serde_json::{Value, json};

/// Lambda arm64 duration, USD per GB-second (first 7.5 B GB-s a month).
const LAMBDA_GB_S: f64 = 0.000_013_333_4;
/// Lambda requests, USD per million (x86 and arm64 alike).
const LAMBDA_PER_MILLION: f64 = 0.20;
/// API Gateway HTTP API, USD per million requests (first 300 M a month; 512 KB metering).
const HTTP_API_PER_MILLION: f64 = 1.00;
/// RDS Proxy on a provisioned instance, USD per vCPU-hour of the target instance.
const PROXY_VCPU_HOUR: f64 = 0.015;
/// Memory at which a Lambda function gets one full vCPU; below it the CPU share is
/// proportional to the memory.
const FULL_VCPU_MB: f64 = 1769.0;

/// A database instance class: RDS for PostgreSQL, Single-AZ, on demand.
struct DbClass {
    name: &'static str,
    vcpus: f64,
    usd_hour: f64,
    /// The share of each vCPU a burstable class sustains on CPU credits (1.0: not burstable).
    baseline: f64,
}

const DB_CLASSES: &[DbClass] = &[
    DbClass { name: "db.t4g.micro", vcpus: 2.0, usd_hour: 0.016, baseline: 0.10 },
    DbClass { name: "db.t4g.medium", vcpus: 2.0, usd_hour: 0.065, baseline: 0.20 },
    DbClass { name: "db.m7g.large", vcpus: 2.0, usd_hour: 0.168, baseline: 1.0 },
];

/// The bench case whose database CPU per answer stands for an HTTP function's; the others
/// have no HTTP row of their own in the bench.
fn db_case(function: &str) -> Option<&'static str> {
    match function {
        "create-order" => Some("orders spread"),
        "list-products" => Some("products list"),
        "login" => Some("login"),
        _ => None,
    }
}

/// `MemorySize` of the function whose `Binary:` is `function` in the SAM template, else the
/// template's global default.
fn memory_mb(template: &str, function: &str) -> Option<f64> {
    let size = |line: &str| line.trim().strip_prefix("MemorySize:").and_then(|v| v.trim().parse::<f64>().ok());
    let global = template.lines().find_map(size);
    let mut lines = template.lines().skip_while(|l| l.trim() != format!("Binary: {function}"));
    lines.next()?;
    lines.take_while(|l| !l.contains("AWS::Serverless::Function")).find_map(size).or(global)
}

fn db_us(http: &[Value], case: &str) -> Option<f64> {
    http.iter()
        .filter(|r| r["case"] == case)
        .max_by_key(|r| r["clients"].as_u64())
        .and_then(|r| r["cpu_us_per_answer_median"]["db"].as_f64())
}

/// USD per million requests for `db_us` of database CPU each, on `class` at full use of what
/// it sustains (the baseline share of its vCPUs for a burstable class).
fn db_usd_per_million(class: &DbClass, db_us: f64) -> f64 {
    db_us * class.usd_hour / 3600.0 / (class.vcpus * class.baseline)
}

/// The model as JSON and as two markdown tables.
pub fn model(lambdas: &[Value], http: &[Value], template: &str) -> (Value, String) {
    let mut md = String::new();
    let class_names: Vec<&str> = DB_CLASSES.iter().map(|c| c.name).collect();
    let _ = writeln!(
        md,
        "| function | MemorySize MB | warm p50 ms (1 core) | billed ms (model) | Lambda $/M | HTTP API $/M | db µs | db $/M ({}) | total $/M ({}) |",
        class_names.join(" / "),
        class_names.join(" / ")
    );
    let _ = writeln!(md, "|{}|", ["---"; 9].join("|"));
    let mut rows = Vec::new();
    // Every HTTP function: those the bench invoked warm (the others take no requests).
    let mut http_functions: Vec<&Value> =
        lambdas.iter().filter(|l| l["warm_invocations"].as_u64().is_some_and(|n| n > 0)).collect();
    http_functions.sort_by_key(|l| l["function"].as_str());
    for lambda in http_functions {
        let function = lambda["function"].as_str().unwrap_or_default();
        let case = db_case(function);
        let warm_ms = lambda["warm_p50_ms"].as_f64();
        let memory = memory_mb(template, function);
        // Upper bound: the whole warm duration measured on a full core is taken as CPU,
        // slowed by the share of a vCPU the memory buys, then rounded up to Lambda's 1 ms.
        let billed_ms = warm_ms.zip(memory).map(|(ms, mb)| (ms * (FULL_VCPU_MB / mb).max(1.0)).ceil().max(1.0));
        let lambda_usd =
            billed_ms.zip(memory).map(|(ms, mb)| LAMBDA_PER_MILLION + ms / 1000.0 * mb / 1024.0 * 1e6 * LAMBDA_GB_S);
        let db = case.and_then(|c| db_us(http, c));
        let db_usd: Vec<Option<f64>> = DB_CLASSES.iter().map(|c| db.map(|us| db_usd_per_million(c, us))).collect();
        let total: Vec<Option<f64>> =
            db_usd.iter().map(|d| lambda_usd.map(|l| l + HTTP_API_PER_MILLION + d.unwrap_or(0.0))).collect();
        let money = |v: &[Option<f64>]| v.iter().map(|v| crate::report::fmt(*v, 4)).collect::<Vec<_>>().join(" / ");
        let _ = writeln!(
            md,
            "| {function} | {} | {} | {} | {} | {HTTP_API_PER_MILLION:.2} | {} | {} | {} |",
            crate::report::fmt(memory, 0),
            crate::report::fmt(warm_ms, 2),
            crate::report::fmt(billed_ms, 0),
            crate::report::fmt(lambda_usd, 4),
            crate::report::fmt(db, 0),
            money(&db_usd),
            money(&total),
        );
        rows.push(json!({
            "function": function, "memory_mb": memory, "warm_p50_ms": warm_ms, "billed_ms_model": billed_ms,
            "lambda_usd_per_million": lambda_usd, "http_api_usd_per_million": HTTP_API_PER_MILLION,
            "db_us_per_request": db, "db_case": case,
            "db_usd_per_million": DB_CLASSES.iter().zip(&db_usd).map(|(c, v)| json!({"class": c.name, "usd": v})).collect::<Vec<_>>(),
            "total_usd_per_million": DB_CLASSES.iter().zip(&total).map(|(c, v)| json!({"class": c.name, "usd": v})).collect::<Vec<_>>(),
        }));
    }

    let order_us = db_us(http, "orders spread");
    let _ = writeln!(
        md,
        "\n| instance | vCPU | $/h | sustained CPU share | orders/s at {} db µs/order | RDS Proxy $/h | proxy $/M orders at that rate |",
        crate::report::fmt(order_us, 0)
    );
    let _ = writeln!(md, "|{}|", ["---"; 7].join("|"));
    let mut classes = Vec::new();
    for class in DB_CLASSES {
        let rate = order_us.map(|us| class.vcpus * class.baseline * 1e6 / us);
        let proxy_hour = PROXY_VCPU_HOUR * class.vcpus;
        let proxy_per_million = rate.map(|r| proxy_hour / (r * 3600.0) * 1e6);
        let _ = writeln!(
            md,
            "| {} | {} | {:.3} | {:.0} % | {} | {proxy_hour:.3} | {} |",
            class.name,
            class.vcpus,
            class.usd_hour,
            class.baseline * 100.0,
            crate::report::fmt(rate, 0),
            crate::report::fmt(proxy_per_million, 4),
        );
        classes.push(json!({
            "class": class.name, "vcpus": class.vcpus, "usd_per_hour": class.usd_hour, "cpu_share_sustained": class.baseline,
            "orders_per_s": rate, "proxy_usd_per_hour": proxy_hour, "proxy_usd_per_million_orders_at_that_rate": proxy_per_million,
        }));
    }
    let doc = json!({
        "prices_as_of": "2026-12-01", "region": "us-east-1",
        "prices": {
            "lambda_arm64_usd_per_gb_s": LAMBDA_GB_S, "lambda_usd_per_million_requests": LAMBDA_PER_MILLION,
            "http_api_usd_per_million": HTTP_API_PER_MILLION, "rds_proxy_usd_per_vcpu_hour": PROXY_VCPU_HOUR,
        },
        "sources": "bench/README.md, Cost model",
        "functions": rows, "instances": classes,
    });
    (doc, md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_of_a_function_or_the_global_default() {
        let template = "Globals:\n  Function:\n    MemorySize: 256\nResources:\n  A:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: login\n    Properties:\n      MemorySize: 1024\n  B:\n    Type: AWS::Serverless::Function\n    Metadata:\n      BuildProperties:\n        Binary: get-product\n    Properties:\n      Timeout: 5\n  C:\n    Type: AWS::Serverless::Function\n    Properties:\n      MemorySize: 128\n";
        assert_eq!(memory_mb(template, "login"), Some(1024.0));
        assert_eq!(memory_mb(template, "get-product"), Some(256.0));
        assert_eq!(memory_mb(template, "missing"), None);
    }

    #[test]
    fn database_share_uses_the_sustained_cpu() {
        // 200 µs on a 2-vCPU, $0.016/h class at 10 %: 200 s of CPU per million over 0.2 vCPU.
        let micro = &DB_CLASSES[0];
        assert!((db_usd_per_million(micro, 200.0) - 200.0 * 0.016 / 3600.0 / 0.2).abs() < 1e-12);
    }
}
