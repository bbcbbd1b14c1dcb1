//! The layers of `common` (its top comment) hold only while its top-level modules import
//! each other without a cycle: a cycle is where a leaf starts reaching back up (the store
//! into HTTP, the settings into what they configure). Reads the sources as text, as a
//! reviewer would: `crate::<module>` outside comments and unit tests is an edge.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|err| panic!("read {}: {err}", dir.display())).flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap_or(&file);
        let Some(first) = relative.components().next() else { continue };
        let module = first.as_os_str().to_string_lossy().trim_end_matches(".rs").to_owned();
        if module == "lib" {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap_or_default();
        // Unit tests may reach anywhere: they are not a layer.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        let edges = graph.entry(module.clone()).or_default();
        for line in code.lines().filter(|line| !line.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let target: String =
                    line[at + "crate::".len()..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !target.is_empty() && target != module {
                    edges.insert(target);
                }
            }
        }
    }
    graph
}

/// One cycle through `from`, if any, as the path of modules.
fn cycle_from(graph: &Graph, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_owned(), vec![from.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == from {
                return Some([path.clone(), vec![next.clone()]].concat());
            }
            if graph.contains_key(next) && seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn the_modules_of_common_import_each_other_without_a_cycle() {
    let graph = module_graph();
    assert!(graph.contains_key("store") && graph.contains_key("http"), "modules found: {graph:?}");
    let cycles: Vec<String> =
        graph.keys().filter_map(|module| cycle_from(&graph, module)).map(|path| path.join(" -> ")).collect();
    assert!(cycles.is_empty(), "cycles in common's module graph: {cycles:#?}");
}

#[test]
fn the_store_and_the_settings_know_nothing_of_http() {
    let graph = module_graph();
    for leaf in ["store", "config", "message", "error", "db"] {
        let edges = graph.get(leaf).cloned().unwrap_or_default();
        for forbidden in ["http", "lambda", "auth", "outbox", "queue", "mail", "resources", "state"] {
            assert!(!edges.contains(forbidden), "{leaf} imports {forbidden}: {edges:?}");
        }
    }
}
