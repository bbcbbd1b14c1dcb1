//! Turns one run directory into the two tables: HTTP against the peer (median of the
//! per-round ratios, since single runs on a shared 2-core machine vary by up to 30 %), and
//! the Lambda figures.
//!
//! Layout read: `peer-<round>.json` (the peer's `run.sh` JSON_OUT), `ours-<round>/<case>-
//! <clients>.json` (loadgen http), `lambda/<function>.json` (loadgen lambda).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::Error;
use crate::stats::median;

/// One table row: our case against one peer script.
struct Row {
    case: &'static str,
    ours: &'static str,
    peer: Option<(&'static str, &'static str)>,
    clients: u64,
    /// The target for ours/peer, if there is one.
    target: Option<f64>,
}

const ROWS: &[Row] = &[
    row("orders hot", "orders-hot", Some(("seed-order", "hot")), 32, None),
    row("orders hot", "orders-hot", Some(("single-order", "hot")), 32, None),
    row("orders hot", "orders-hot", Some(("seed-order", "hot")), 64, Some(3.5)),
    row("orders hot", "orders-hot", Some(("single-order", "hot")), 64, Some(2.5)),
    row("orders spread", "orders-spread", Some(("seed-order", "spread")), 32, None),
    row("orders spread", "orders-spread", Some(("single-order", "spread")), 32, None),
    row("orders spread", "orders-spread", Some(("seed-order", "spread")), 64, None),
    row("orders spread", "orders-spread", Some(("single-order", "spread")), 64, Some(0.45)),
    row("products list", "list", Some(("seed-list", "list50")), 32, None),
    row("products list", "list", Some(("seed-list", "list50")), 64, Some(0.3)),
    row("login", "login", None, 8, None),
    // The catalogue at 100k products (no peer: the seed has no search). The unfiltered id
    // page is the baseline of the others, in the same run and on the same data.
    row("catalogue id", "catalogue-id", None, 64, None),
    row("catalogue q", "catalogue-q", None, 64, None),
    row("catalogue q rare", "catalogue-q-rare", None, 64, None),
    row("catalogue price", "catalogue-price", None, 64, None),
    row("catalogue newest", "catalogue-newest", None, 64, None),
    // No database at all: what the HTTP path alone costs, against the peer's cheapest script.
    row("http floor", "floor", Some(("seed-list", "list50")), 64, None),
];

/// The cost of the EMF metric line on the order path: spread orders at this many clients,
/// with `METRICS=on` and `METRICS=off` (scripts/bench.sh runs both in every round).
const METRICS_PAIR: (&str, &str, u64) = ("orders-metrics-on", "orders-metrics-off", 32);

/// The metrics pair: server µs per answer with the line on and off, per round and their
/// medians, and the median of the per-round on/off ratios. Text, Markdown, JSON.
fn metrics_cost(dir: &Path, rounds: usize) -> Result<(String, String, Value), Error> {
    let (on_case, off_case, clients) = METRICS_PAIR;
    let server_us = |round: usize, case: &str| {
        read(&dir.join(format!("ours-{round}/{case}-{clients}.json"))).and_then(|o| cpu_per_answer_us(&o)).map(|c| c[1])
    };
    let (mut on, mut off, mut ratios, mut per_round) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (a, b) = (server_us(round, on_case), server_us(round, off_case));
        on.extend(a);
        off.extend(b);
        let ratio = a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b);
        ratios.extend(ratio);
        per_round.push(json!({ "round": round, "server_us_on": a, "server_us_off": b, "on_over_off": ratio }));
    }
    let ratio = median(&ratios);
    let header = ["case", "clients", "server µs per answer", "on/off (median of rounds)"];
    let mut text = format!("{}\n", text_line(&header, &[-22, 7, 20]));
    let mut md = format!("| {} |\n|---|---|---|---|\n", header.join(" | "));
    for (name, values, ratio) in
        [("order (metrics on)", &on, fmt(ratio, 3)), ("order (metrics off)", &off, String::new())]
    {
        let cells = [name.to_owned(), clients.to_string(), fmt(median(values), 1), ratio];
        writeln!(text, "{}", text_line(&cells, &[-22, 7, 20]))?;
        writeln!(md, "| {} |", cells.join(" | "))?;
    }
    let doc = json!({
        "clients": clients, "server_us_on_median": median(&on), "server_us_off_median": median(&off),
        "on_over_off_median": ratio, "rounds": per_round,
    });
    Ok((text, md, doc))
}

/// The CPU each side of ours spent per correct answer, in µs (the `cpu_s` that bench.sh
/// adds to loadgen's result), as [database, server, client].
fn cpu_per_answer_us(ours: &Value) -> Option<[f64; 3]> {
    let ok = ours["ok"].as_f64().filter(|ok| *ok > 0.0)?;
    let cpu = &ours["cpu_s"];
    let per = |side: &str| cpu[side].as_f64().map(|s| s * 1e6 / ok);
    Some([per("db")?, per("server")?, per("client")?])
}

const fn row(
    case: &'static str,
    ours: &'static str,
    peer: Option<(&'static str, &'static str)>,
    clients: u64,
    target: Option<f64>,
) -> Row {
    Row { case, ours, peer, clients, target }
}

/// Widths of the text tables' columns before the last one; negative means left-aligned.
const HTTP_WIDTHS: [isize; 12] = [-17, 7, -13, 9, 9, 9, 7, 7, 6, 6, 9, 9];
const LAMBDA_WIDTHS: [isize; 7] = [-15, 8, 11, 11, 7, 11, 11];

/// One line of a text table: each cell padded to its column's width, then the last cell
/// as it is, two spaces apart.
fn text_line(cells: &[impl AsRef<str>], widths: &[isize]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        let cell = cell.as_ref();
        match widths.get(i) {
            Some(&w) if w < 0 => line.push_str(&format!("{cell:<width$} ", width = w.unsigned_abs())),
            Some(&w) => line.push_str(&format!("{cell:>width$} ", width = w.unsigned_abs())),
            None => line.push_str(&format!(" {cell}")),
        }
    }
    line
}

fn read(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn peer_tps(peer: &Value, script: &str, dataset: &str, clients: u64) -> Option<f64> {
    peer["runs"].as_array()?.iter().find_map(|r| {
        (r["script"] == script && r["dataset"] == dataset && r["clients"].as_u64() == Some(clients))
            .then(|| r["tps"].as_f64())
            .flatten()
    })
}

pub(crate) fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

pub fn run(
    dir: &Path,
    rounds: usize,
    json_out: &Path,
    md_out: &Path,
    machine: &str,
    settings: &str,
    template: &str,
) -> Result<(), Error> {
    let peers: Vec<Option<Value>> = (1..=rounds).map(|r| read(&dir.join(format!("peer-{r}.json")))).collect();
    let mut rows_json = Vec::new();
    let mut md = String::new();
    let mut text = String::new();
    let header = [
        "case",
        "clients",
        "peer",
        "peer tps",
        "ours rps",
        "ours/peer",
        "p50 ms",
        "p99 ms",
        "errors",
        "db µs",
        "server µs",
        "client µs",
        "target",
    ];
    writeln!(text, "{}", text_line(&header, &HTTP_WIDTHS))?;
    writeln!(md, "| {} |", header.join(" | "))?;
    writeln!(md, "|{}|", ["---"; 13].join("|"))?;
    for row in ROWS {
        let mut ratios = Vec::new();
        let mut peer_v = Vec::new();
        let mut ours_v = Vec::new();
        let mut p50 = Vec::new();
        let mut p99 = Vec::new();
        let mut errors = 0u64;
        let mut per_round = Vec::new();
        let mut cpu: [Vec<f64>; 3] = Default::default();
        for r in 1..=rounds {
            let ours = read(&dir.join(format!("ours-{r}/{}-{}.json", row.ours, row.clients)));
            let rps = ours.as_ref().and_then(|o| o["rps"].as_f64());
            if let Some(o) = &ours {
                p50.extend(o["p50_ms"].as_f64());
                p99.extend(o["p99_ms"].as_f64());
                errors += o["bad_status"].as_u64().unwrap_or(0) + o["errors"].as_u64().unwrap_or(0);
                for (side, us) in cpu.iter_mut().zip(cpu_per_answer_us(o).into_iter().flatten()) {
                    side.push(us);
                }
            }
            ours_v.extend(rps);
            let tps = match (row.peer, &peers[r - 1]) {
                (Some((script, dataset)), Some(p)) => peer_tps(p, script, dataset, row.clients),
                _ => None,
            };
            peer_v.extend(tps);
            let ratio = match (rps, tps) {
                (Some(o), Some(p)) if p > 0.0 => Some(o / p),
                _ => None,
            };
            ratios.extend(ratio);
            per_round.push(json!({ "round": r, "peer_tps": tps, "ours_rps": rps, "ratio": ratio }));
        }
        let ratio = median(&ratios);
        let verdict = match (row.target, ratio) {
            (Some(t), Some(r)) => format!(">= {t}x {}", if r >= t { "met" } else { "MISSED" }),
            (Some(t), None) => format!(">= {t}x ?"),
            (None, _) => String::new(),
        };
        let peer_name = row.peer.map_or("(none)", |p| p.0);
        let cells = [
            row.case.to_owned(),
            row.clients.to_string(),
            peer_name.to_owned(),
            fmt(median(&peer_v), 0),
            fmt(median(&ours_v), 0),
            fmt(ratio, 2),
            fmt(median(&p50), 2),
            fmt(median(&p99), 2),
            errors.to_string(),
            fmt(median(&cpu[0]), 0),
            fmt(median(&cpu[1]), 0),
            fmt(median(&cpu[2]), 0),
            verdict.clone(),
        ];
        writeln!(text, "{}", text_line(&cells, &HTTP_WIDTHS))?;
        writeln!(md, "| {} |", cells.join(" | "))?;
        rows_json.push(json!({
            "case": row.case, "clients": row.clients, "peer_script": row.peer.map(|p| p.0),
            "peer_dataset": row.peer.map(|p| p.1), "peer_tps_median": median(&peer_v),
            "ours_rps_median": median(&ours_v), "ratio_median": ratio, "p50_ms_median": median(&p50),
            "p99_ms_median": median(&p99), "errors": errors, "target_ratio": row.target,
            "cpu_us_per_answer_median": { "db": median(&cpu[0]), "server": median(&cpu[1]), "client": median(&cpu[2]) },
            "target_met": row.target.zip(ratio).map(|(t, r)| r >= t), "rounds": per_round,
        }));
    }

    let mut lambdas = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir.join("lambda"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    entries.sort();
    let lheader =
        ["function", "size MB", "cold p50 ms", "cold p90 ms", "RSS MB", "warm p50 ms", "warm p99 ms", "first status"];
    let mut ltext = format!("{}\n", text_line(&lheader, &LAMBDA_WIDTHS));
    let mut lmd = format!("| {} |\n|{}|\n", lheader.join(" | "), ["---"; 8].join("|"));
    for path in entries {
        let Some(l) = read(&path) else { continue };
        let statuses = l["first_invocation_statuses"]
            .as_array()
            .and_then(|a| a.first())
            .map_or_else(|| "-".to_owned(), Value::to_string);
        let cells = [
            l["function"].as_str().unwrap_or("?").to_owned(),
            fmt(l["size_mb"].as_f64(), 2),
            fmt(l["cold_init_p50_ms"].as_f64(), 2),
            fmt(l["cold_init_p90_ms"].as_f64(), 2),
            fmt(l["rss_mb"].as_f64(), 1),
            fmt(l["warm_p50_ms"].as_f64(), 2),
            fmt(l["warm_p99_ms"].as_f64(), 2),
            statuses,
        ];
        writeln!(ltext, "{}", text_line(&cells, &LAMBDA_WIDTHS))?;
        writeln!(lmd, "| {} |", cells.join(" | "))?;
        lambdas.push(l);
    }

    let budgets = cpu_targets(&rows_json, &peers);
    let mut budget_md =
        String::from("| CPU target (64 clients) | measured µs | limit µs | verdict |\n|---|---|---|---|\n");
    for b in &budgets {
        let (measured, limit) = (b["measured_us"].as_f64(), b["limit_us"].as_f64());
        let verdict = match b["met"].as_bool() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "?",
        };
        writeln!(
            budget_md,
            "| {} | {} | {} | {verdict} |",
            b["target"].as_str().unwrap_or("?"),
            fmt(measured, 0),
            fmt(limit, 0)
        )?;
    }
    let (cost_json, cost_md) = crate::cost::model(&lambdas, &rows_json, template);
    let (metrics_text, metrics_md, metrics_json) = metrics_cost(dir, rounds)?;

    let generated = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!("\nHTTP vs peer (median over {rounds} alternating rounds; ratio = median of per-round ours/peer)");
    print!("{text}");
    println!("\nCPU budgets\n{budget_md}");
    println!("\nThe metric line's cost on the order path (spread orders, METRICS=on/off)");
    print!("{metrics_text}");
    println!("\nLambda binaries (fake Runtime API on loopback)");
    print!("{ltext}");
    println!("\nCost model\n{cost_md}");
    let doc = json!({
        "generated_at": generated, "machine": machine, "settings": settings, "rounds": rounds,
        "http": rows_json, "cpu_targets": budgets, "metrics_cost": metrics_json, "lambda": lambdas, "cost_model": cost_json,
        "peer_runs": peers,
    });
    std::fs::write(json_out, serde_json::to_string_pretty(&doc)? + "\n")?;
    let md_doc = format!(
        "Measured {generated} on {machine}. {settings}\n\n{md}\nCPU per answer against its budget (the peer's budget is 2 cores / its rate, pgbench included):\n\n{budget_md}\nThe metric line's cost on the order path (spread orders, server CPU per answer with METRICS=on and off):\n\n{metrics_md}\nLambda binaries (release; fake Runtime API on loopback):\n\n{lmd}\nCost per million requests, us-east-1, prices of 2026-12-01 (sources: bench/README.md, \"Cost model\"):\n\n{cost_md}"
    );
    std::fs::write(md_out, md_doc)?;
    Ok(())
}

/// The CPU targets, each a ratio inside this run: the server's CPU per catalogue page
/// against its CPU per floor request, and the database's CPU per answer against the peer's
/// whole budget per answer (the machine's CPUs divided by the peer's rate, so pgbench's own
/// CPU is in it).
fn cpu_targets(rows: &[Value], peers: &[Option<Value>]) -> Vec<Value> {
    let cpus = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let cpu = |case: &str, side: &str| {
        rows.iter()
            .find(|r| r["case"] == case && r["clients"] == 64)
            .and_then(|r| r["cpu_us_per_answer_median"][side].as_f64())
    };
    let peer_budget = |script: &str, dataset: &str| {
        let tps: Vec<f64> = peers.iter().flatten().filter_map(|p| peer_tps(p, script, dataset, 64)).collect();
        median(&tps).map(|tps| cpus * 1e6 / tps)
    };
    let target = |name: &str, measured: Option<f64>, limit: Option<f64>| {
        json!({ "target": name, "measured_us": measured, "limit_us": limit,
                "met": measured.zip(limit).map(|(m, l)| m <= l) })
    };
    vec![
        target(
            "list: server µs per page <= 6x per floor request",
            cpu("products list", "server"),
            cpu("http floor", "server").map(|f| 6.0 * f),
        ),
        target(
            "list: db µs per page <= 1.5x peer budget per seed-list",
            cpu("products list", "db"),
            peer_budget("seed-list", "list50").map(|b| 1.5 * b),
        ),
        target(
            "spread: db µs per order <= 1.3x peer budget per single-order",
            cpu("orders spread", "db"),
            peer_budget("single-order", "spread").map(|b| 1.3 * b),
        ),
    ]
}
