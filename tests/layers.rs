//! The architecture, checked: every `crate::…` path in `src/` points down the layers, never up,
//! and the modules of one layer form no cycle.
//!
//! ```text
//! cli, startup          the front doors and the wiring
//!   http                HTTP only: parses, calls one service function, maps the result
//!     service           what the issuer does
//!       config          the resolved settings
//!         db, crypto    storage (SQL, rows) and keys/tokens
//!           domain, files, logs   values parsed at the edge; private files; log output
//! ```
//!
//! `http` may not use `db` (no SQL or rows above `service`), and `cli` may not use `http`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layer of each top-level module; higher numbers may use lower ones.
fn layer(module: &str) -> Option<u8> {
    Some(match module {
        "domain" | "files" | "clock" | "logs" => 0,
        "crypto" | "db" => 1,
        "config" => 2,
        "service" => 3,
        "http" => 4,
        "startup" | "cli" => 5,
        _ => return None,
    })
}

/// Arrows that point down but are still not allowed.
const FORBIDDEN: &[(&str, &str)] = &[
    ("http", "db"),
    ("cli", "http"),
    ("crypto", "db"),
    ("db", "crypto"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a source file: `src/service/keys.rs` → `["service", "keys"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// Every `crate::a::b` path a file's code (not its comments) names, as `["a", "b"]`; a braced
/// group (`crate::{x, y}`, `crate::a::{b, c}`) names each member.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        let mut path = Vec::new();
        let mut tail = rest;
        loop {
            let ident: String = tail
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if ident.is_empty() {
                break;
            }
            path.push(ident.clone());
            tail = &tail[ident.len()..];
            if let Some(next) = tail.strip_prefix("::") {
                tail = next;
            } else {
                break;
            }
        }
        if tail.starts_with('{') {
            let group = &tail[1..tail.find('}').unwrap_or(tail.len())];
            for member in group.split(',') {
                let member: Vec<String> = member
                    .trim()
                    .split("::")
                    .map(|s| s.split_whitespace().next().unwrap_or("").to_owned())
                    .filter(|s| !s.is_empty() && s != "self")
                    .collect();
                let mut full = path.clone();
                full.extend(member);
                if !full.is_empty() {
                    found.push(full);
                }
            }
        } else if !path.is_empty() {
            found.push(path);
        }
    }
    found
}

#[test]
fn arrows_point_down_and_layers_have_no_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    // (layer, module) -> modules of the same layer it uses, for the cycle check.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(&src, file);
        let Some(from_top) = from.first().cloned() else {
            continue;
        };
        let Some(from_layer) = layer(&from_top) else {
            continue; // lib.rs, main.rs
        };
        let text = std::fs::read_to_string(file).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        if from_top == "http" && code.contains("diesel") {
            problems.push(format!(
                "SQL above the service layer: {} uses diesel",
                file.display()
            ));
        }
        for path in crate_paths(&text) {
            let to_top = &path[0];
            let Some(to_layer) = layer(to_top) else {
                continue;
            };
            let shown = format!("{} → crate::{}", file.display(), path.join("::"));
            if to_layer > from_layer {
                problems.push(format!("upward arrow: {shown}"));
            }
            if FORBIDDEN.contains(&(from_top.as_str(), to_top.as_str())) {
                problems.push(format!("forbidden arrow: {shown}"));
            }
            // Within one top-level module, record file-to-file use for the cycle check.
            if *to_top == from_top && path.len() > 1 && from.len() > 1 && path[1] != from[1] {
                edges
                    .entry(format!("{}::{}", from[0], from[1]))
                    .or_default()
                    .insert(format!("{}::{}", path[0], path[1]));
            }
        }
    }
    // Cycles among the modules of one top-level module (depth-first search).
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        problems: &mut Vec<String>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            problems.push(format!("cycle: {} → {node}", stack[at..].join(" → ")));
            return;
        }
        if !done.insert(node.to_owned()) {
            return;
        }
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            visit(next, edges, stack, done, problems);
        }
        stack.pop();
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        visit(node, &edges, &mut Vec::new(), &mut done, &mut problems);
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_path_reader_sees_groups_and_skips_comments() {
    let paths = crate_paths(
        "use crate::db::{self, users::UserRow, Db};\n// crate::http::x\nlet x = crate::service::keys::rotate();",
    );
    let shown: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        shown,
        [
            "db",
            "db::users::UserRow",
            "db::Db",
            "service::keys::rotate"
        ]
    );
}
