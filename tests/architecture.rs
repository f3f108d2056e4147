//! The module graph, read from `src/`: infrastructure names no feature layer, nothing names the
//! composition root, and the top-level modules import each other without a cycle (of any length).
//! Inside billing, its rooms (sub-folders) meet only at front doors and the layer's kernel.
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

/// What every room of billing may import from the layer's top level. Anything else there (the
/// routes that mount the rooms, the operator routes, the demo seed) sits above the rooms; and
/// `billing/mod.rs` itself is the composition root's door, never a room's.
const BILLING_KERNEL: &[&str] = &[
    "app", "config", "contact", "customer", "error", "metrics", "money",
];

type Graph = BTreeMap<String, BTreeSet<String>>;
/// A layer's rooms (its sub-folders), each with the modules behind its front door.
type Rooms = BTreeMap<String, BTreeSet<String>>;

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

#[test]
fn billing_rooms_meet_only_at_front_doors() {
    let billing = src().join("billing");
    let rooms = rooms(&billing);
    for kernel in BILLING_KERNEL {
        assert!(
            billing.join(format!("{kernel}.rs")).is_file(),
            "billing's kernel names {kernel}.rs, which is not there"
        );
    }
    let mut violations = Vec::new();
    for room in rooms.keys() {
        assert!(
            billing.join(room).join("mod.rs").is_file(),
            "billing/{room}/ has no front door (mod.rs)"
        );
        for file in rust_files(&billing.join(room)) {
            let source = fs::read_to_string(&file).unwrap();
            for (path, why) in room_violations(&source, &module_of(&file), &rooms) {
                let file = file.strip_prefix(src()).unwrap().display();
                violations.push(format!("{file}: {path} ({why})"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "billing's rooms import past a front door:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_room_check_sees_every_way_past_a_front_door() {
    let source = r#"
        use super::{event::Envelope, inbox};
        use crate::billing::{app::BillingState, orders::{self, OrderStatus, state::OrderEvent}};
        use super::super::BillingState;
        pub(in crate::billing) fn f() { orders::rows::find(); crate::billing::stripe::inbox::x(); }
        // use crate::billing::orders::rows;  (a comment is not an import)
        mod tests { use super::super::inbox::Inbox; use super::super::super::orders::*; }
    "#;
    let rooms: Rooms = [
        ("orders", ["rows", "state"]),
        ("stripe", ["event", "inbox"]),
    ]
    .into_iter()
    .map(|(room, modules)| (room.to_owned(), modules.map(String::from).into()))
    .collect();
    let module = ["billing", "stripe", "trigger"].map(String::from);
    let found: Vec<_> = room_violations(source, &module, &rooms)
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    assert_eq!(
        found,
        [
            "billing::orders::state::OrderEvent",
            "billing::BillingState",
            "billing::orders::*",
            "orders::rows::find",
        ]
    );
}

fn print_graph(graph: &Graph) {
    for (module, targets) in graph {
        let targets: Vec<_> = targets.iter().map(String::as_str).collect();
        println!("{module:>13} -> {}", targets.join(", "));
    }
}

/// Top-level module → the other top-level modules its files name through `crate::`.
fn module_graph() -> Graph {
    let mut graph = Graph::new();
    for entry in fs::read_dir(src()).unwrap() {
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

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The rooms of the layer at `layer`: its sub-folders, each with its modules (files and folders).
fn rooms(layer: &Path) -> Rooms {
    let names = |dir: &Path| -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .filter(|name| name != "mod")
            .collect()
    };
    fs::read_dir(layer)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|room| {
            (
                room.file_name().unwrap().to_string_lossy().into_owned(),
                names(&room),
            )
        })
        .collect()
}

/// A file's module path below the crate root (`src/billing/stripe/inbox.rs` → billing, stripe,
/// inbox; a `mod.rs` is its folder).
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).unwrap().with_extension("");
    let mut module: Vec<String> = relative
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if module.last().is_some_and(|m| m == "mod") {
        module.pop();
    }
    module
}

/// The paths a file of a room (at `module`) names past another room's front door, or back
/// through the layer's `mod.rs` to anything but the kernel, each with why it is refused.
fn room_violations(source: &str, module: &[String], rooms: &Rooms) -> Vec<(String, &'static str)> {
    let (layer, room) = (&module[0], &module[1]);
    let (paths, rest) = absolute_paths(source, module);
    let mut refused = Vec::new();
    let mut doors = BTreeSet::new(); // other rooms imported by name: `orders::…` is checked too
    for path in &paths {
        if path.first() != Some(layer) {
            continue;
        }
        let (Some(first), rest) = (path.get(1), path.get(2..).unwrap_or_default()) else {
            refused.push((path.join("::"), "names the layer's mod.rs"));
            continue;
        };
        if first == room || BILLING_KERNEL.contains(&first.as_str()) {
            continue;
        }
        match rooms.get(first) {
            None => refused.push((path.join("::"), "climbs back to the layer's mod.rs")),
            Some(_) if rest.is_empty() => {
                doors.insert(first.clone());
            }
            Some(inside) if rest[0] == "*" || inside.contains(&rest[0]) => {
                refused.push((path.join("::"), "reaches past another room's front door"));
            }
            Some(_) => {}
        }
    }
    for door in doors {
        for path in paths_after(&rest, &format!("{door}::")) {
            let inside = &rooms[&door];
            if path.first().is_some_and(|m| m == "*" || inside.contains(m)) {
                let path = format!("{door}::{}", path.join("::"));
                refused.push((path, "reaches past another room's front door"));
            }
        }
    }
    refused
}

/// Every path `source` names from the crate root (`crate::…`) or relative to its module
/// (`super::…`, also inside inline `mod name { … }`), made absolute: `crate::` left off, each
/// `use` group expanded, a trailing `self` dropped. `pub(in crate::…)` is visibility, not an import.
/// Also the code left (comments, strings and those paths blanked), where other paths are sought.
fn absolute_paths(source: &str, module: &[String]) -> (Vec<Vec<String>>, String) {
    let code = strip_comments_and_strings(source);
    let mut left = code.clone();
    let (mut found, mut inline, mut depth) = (Vec::new(), Vec::<(String, usize)>::new(), 0);
    let mut i = 0;
    while let Some(c) = code[i..].chars().next() {
        let rest = &code[i..];
        let before = code[..i].chars().next_back();
        let joined = before.is_some_and(|c| c.is_alphanumeric() || "_:$".contains(c));
        if c == '{' {
            depth += 1;
            if let Some(name) = inline_module(&code[..i]) {
                inline.push((name, depth));
            }
        } else if c == '}' {
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            depth -= 1;
        } else if !joined && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let (paths, len) = use_tree(rest);
            let visibility = code[..i].trim_end().ends_with("(in");
            let mut here = module.to_vec();
            here.extend(inline.iter().map(|(name, _)| name.clone()));
            if !visibility {
                found.extend(paths.into_iter().map(|p| absolute(p, &here)));
            }
            left.replace_range(i..i + len, &" ".repeat(len));
            i += len;
            continue;
        }
        i += c.len_utf8();
    }
    (found, left)
}

/// The paths that follow each `prefix` (not itself the end of a longer path) in `code`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if !before.is_some_and(|c| c.is_alphanumeric() || "_:$".contains(c)) {
            found.extend(use_tree(&code[at + prefix.len()..]).0);
        }
    }
    found
}

/// The name of the inline module a `{` opens, if the code before it ends with `mod name`.
fn inline_module(before: &str) -> Option<String> {
    let before = before.trim_end();
    let name: String = before
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let keyword = before[..before.len() - name.len()].trim_end();
    let is_mod = keyword.ends_with("mod")
        && !keyword[..keyword.len() - 3]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
    (!name.is_empty() && is_mod).then_some(name)
}

fn absolute(path: Vec<String>, here: &[String]) -> Vec<String> {
    let mut absolute = here.to_vec();
    let mut segments = path.into_iter().peekable();
    if segments.peek().is_some_and(|s| s == "crate") {
        absolute.clear();
        segments.next();
    }
    while segments.peek().is_some_and(|s| s == "super") {
        absolute.pop();
        segments.next();
    }
    absolute.extend(segments);
    if absolute.last().is_some_and(|s| s == "self") {
        absolute.pop();
    }
    absolute
}

/// The paths of the use tree (or expression path) at the start of `s`, and the bytes it takes:
/// `a::{b, c::{self, d as e}}` → a::b, a::c::self, a::c::d.
fn use_tree(s: &str) -> (Vec<Vec<String>>, usize) {
    let skip = |at: usize| at + s[at..].len() - s[at..].trim_start().len();
    let (mut prefix, mut at) = (Vec::new(), 0);
    loop {
        at = skip(at);
        if s[at..].starts_with('{') {
            at += 1;
            let mut paths = Vec::new();
            loop {
                at = skip(at);
                match s[at..].chars().next() {
                    None => break,
                    Some('}') => {
                        at += 1;
                        break;
                    }
                    Some(',') => at += 1,
                    Some(_) => {
                        let (inner, len) = use_tree(&s[at..]);
                        paths.extend(inner.into_iter().map(|p| [prefix.clone(), p].concat()));
                        at += len.max(1);
                    }
                }
            }
            return (paths, at);
        }
        let name: String = s[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '*')
            .collect();
        if name.is_empty() {
            break;
        }
        at += name.len();
        prefix.push(name);
        let next = skip(at);
        if s[next..].starts_with("::") {
            at = next + 2;
        } else {
            break;
        }
    }
    // `name as alias`: the alias is no path.
    let next = skip(at);
    if let Some(alias) = s[next..].strip_prefix("as")
        && alias.starts_with(char::is_whitespace)
    {
        let after = skip(next + 2);
        let alias = s[after..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_');
        at = after + alias.map(char::len_utf8).sum::<usize>();
    }
    (vec![prefix], at)
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
