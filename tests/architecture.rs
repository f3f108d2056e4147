//! The module graph, read from `src/`: infrastructure names no feature layer, nothing names the
//! composition root, and the top-level modules import each other without a cycle (of any length).
//!
//! `cargo nextest run --test architecture --no-capture` prints the graph README shows.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// Knows no feature layer.
const INFRASTRUCTURE: &[&str] = &[
    "config",
    "db",
    "http",
    "jobs",
    "mail",
    "telemetry",
    "metrics",
    "housekeeping",
];
/// Imports every layer; imported by nothing (but `main`).
const COMPOSITION_ROOT: &str = "startup";

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn infrastructure_names_no_feature_layer() {
    let graph = module_graph();
    let mut violations = Vec::new();
    for infra in INFRASTRUCTURE {
        for target in graph.get(*infra).into_iter().flatten() {
            if !INFRASTRUCTURE.contains(&target.as_str()) {
                violations.push(format!("{infra} -> {target}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "infrastructure imports a layer: {violations:?}"
    );
}

#[test]
fn only_main_imports_the_composition_root() {
    let graph = module_graph();
    let importers: Vec<_> = graph
        .iter()
        .filter(|(_, targets)| targets.contains(COMPOSITION_ROOT))
        .map(|(module, _)| module.clone())
        .collect();
    assert!(
        importers.is_empty(),
        "{importers:?} import {COMPOSITION_ROOT}"
    );
    let root = &graph[COMPOSITION_ROOT];
    for layer in graph.keys().filter(|m| *m != COMPOSITION_ROOT) {
        let is_feature = !INFRASTRUCTURE.contains(&layer.as_str());
        assert!(
            !is_feature || root.contains(layer),
            "{COMPOSITION_ROOT} does not wire {layer}"
        );
    }
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph();
    print_graph(&graph);
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_checks_see_imports_in_every_form() {
    let source = r#"
        use crate::{billing::{self, Customer}, http::Problem};
        // use crate::admin;  (a comment is not an import)
        fn f() { crate::jobs::run(); let s = "crate::mail"; }
        /// [`crate::auth::AuthUser`] in a doc comment is not an import either
    "#;
    let found = imports(source);
    assert_eq!(
        found,
        BTreeSet::from(["billing", "http", "jobs"].map(String::from))
    );

    let cyclic: Graph = [("a", "b"), ("b", "c"), ("c", "a")]
        .into_iter()
        .map(|(from, to)| (from.to_owned(), BTreeSet::from([to.to_owned()])))
        .collect();
    assert_eq!(find_cycle(&cyclic).unwrap(), ["a", "b", "c", "a"]);
}

fn print_graph(graph: &Graph) {
    for (module, targets) in graph {
        let targets: Vec<_> = targets.iter().map(String::as_str).collect();
        println!("{module:>13} -> {}", targets.join(", "));
    }
}

/// Top-level module → the other top-level modules its files name through `crate::`.
fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        // The crate roots, and `cli/`: the binary's own code (`main.rs` declares it, the library
        // does not), which may use anything, as `main` does.
        if name == "main" || name == "lib" || name == "cli" {
            continue;
        }
        let mut found = BTreeSet::new();
        for file in rust_files(&path) {
            found.extend(imports(&fs::read_to_string(file).unwrap()));
        }
        found.remove(&name);
        graph.entry(name).or_default().extend(found);
    }
    graph
}

fn rust_files(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return if path.extension().is_some_and(|e| e == "rs") {
            vec![path.to_owned()]
        } else {
            vec![]
        };
    }
    fs::read_dir(path)
        .unwrap()
        .flat_map(|e| rust_files(&e.unwrap().path()))
        .collect()
}

/// The top-level modules `source` names as `crate::name` or inside `crate::{…}`, leaving out
/// comments and string literals.
fn imports(source: &str) -> BTreeSet<String> {
    let code = strip_comments_and_strings(source);
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // e.g. `mycrate::`
        }
        let trimmed = rest.trim_start();
        if let Some(group) = trimmed.strip_prefix('{') {
            found.extend(top_level_names(group));
        } else {
            found.insert(ident(trimmed));
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

/// The first path segment of each item of a `{…}` group (nested groups skipped).
fn top_level_names(group: &str) -> Vec<String> {
    let (mut names, mut depth, mut item_start) = (Vec::new(), 0, true);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && depth == 0 && !c.is_whitespace() => {
                names.push(ident(&group[i..]));
                item_start = false;
            }
            _ => {}
        }
    }
    names
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

fn strip_comments_and_strings(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
                out.push_str("\"\"");
            }
            c => out.push(c),
        }
    }
    out
}

/// A cycle in `graph` (as the path that closes it), if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}
