//! The rules of `ARCHITECTURE.md`, checked on the source: each top-level module uses only
//! the layers below it, and no two files import each other, directly or around a loop.
//!
//! References are read from `use` trees (braces expanded) and from paths written inline
//! (`crate::store::open(…)`); comments and `#[cfg(test)] mod tests` blocks are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers from the bottom up; a module may use the ones on lower rows only.
const LAYERS: &[&[&str]] = &[
    &["exit", "state", "clock"],
    &["spec"],
    &["graph", "triggers", "step", "scheduler", "ui"],
    &["store"],
    &["blocks"],
    &["engine"],
    &["web"],
    &["daemon"],
    &["error"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// Every source file as its module path (`engine/run`, `store`, `lib`).
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap().with_extension("");
                let mut name = rel.to_string_lossy().into_owned();
                if let Some(parent) = name.strip_suffix("/mod") {
                    name = parent.to_owned();
                }
                out.insert(name, path);
            }
        }
    }
    out
}

/// The text without comments and without the unit tests at the end of a file.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.split(" as ").next().unwrap_or(tree).trim().to_owned()];
    };
    let prefix = &tree[..open];
    let close = tree.rfind('}').filter(|&c| c > open).unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| {
            if p == "self" {
                prefix.trim_end_matches("::").to_owned()
            } else {
                format!("{prefix}{p}")
            }
        })
        .collect()
}

/// The paths a file refers to, absolute from the crate root (`engine::run::execute`).
fn references(module: &str, is_mod_file: bool, text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let item = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|start| trimmed.strip_prefix(start));
        if item.is_some() {
            let from = offset + line.len() - trimmed.len();
            let from = from + trimmed.find("use ").unwrap_or(0) + 4;
            let end = text[from..].find(';').map_or(text.len(), |e| from + e);
            paths.extend(expand(&text[from..end]));
        }
        offset += line.len();
    }
    for (at, _) in text.match_indices("crate::") {
        let tail: String = text[at..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(tail);
    }
    let own: Vec<&str> = module.split('/').collect();
    paths
        .into_iter()
        .filter_map(|path| {
            let parts: Vec<String> = path
                .split("::")
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect();
            match parts.first().map(String::as_str) {
                Some("crate") => Some(parts[1..].to_vec()),
                Some("super") => {
                    // `super` of `a/b.rs` is `a`; of `a/b/mod.rs` (module `a/b`) also `a`.
                    let _ = is_mod_file;
                    let mut base: Vec<String> = own[..own.len().saturating_sub(1)]
                        .iter()
                        .map(|s| (*s).to_owned())
                        .collect();
                    let mut parts = &parts[..];
                    while parts.first().is_some_and(|p| p == "super") {
                        parts = &parts[1..];
                        if parts.first().is_some_and(|p| p == "super") {
                            base.pop();
                        }
                    }
                    base.extend(parts.iter().cloned());
                    Some(base)
                }
                _ => None,
            }
        })
        .collect()
}

/// The file a path names: its longest prefix that is a module.
fn target(modules: &BTreeMap<String, PathBuf>, parts: &[String]) -> Option<String> {
    (1..=parts.len())
        .rev()
        .map(|n| parts[..n].join("/"))
        .find(|candidate| modules.contains_key(candidate))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let modules = modules(&src);
    let mut edges = BTreeMap::new();
    for (module, path) in &modules {
        let text = code(&std::fs::read_to_string(path).unwrap());
        let is_mod = path.ends_with("mod.rs");
        let mut out = BTreeSet::new();
        for parts in references(module, is_mod, &text) {
            if let Some(to) = target(&modules, &parts)
                // A folder's `mod.rs` declares and re-exports its files: not a use of them.
                && to != *module
                && !module.starts_with(&format!("{to}/"))
                && !(to.starts_with(&format!("{module}/")))
            {
                out.insert(to);
            }
        }
        edges.insert(module.clone(), out);
    }
    edges
}

#[test]
fn each_module_uses_only_the_layers_below_it() {
    let mut wrong = Vec::new();
    for (from, targets) in graph() {
        let from_top = from.split('/').next().unwrap();
        let Some(from_layer) = layer_of(from_top) else {
            continue; // lib.rs and main.rs tie everything together
        };
        for to in targets {
            let to_top = to.split('/').next().unwrap();
            if to_top == from_top {
                continue;
            }
            match layer_of(to_top) {
                Some(to_layer) if to_layer < from_layer => {}
                _ => wrong.push(format!("{from} uses {to}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "uses that run up or across the layers of ARCHITECTURE.md:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_files_import_each_other() {
    let edges = graph();
    // Tarjan's strongly connected components: any with two files or more is a loop.
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        loops: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let low = s.low[v].min(s.low[w.as_str()]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w.as_str()) {
                let low = s.low[v].min(s.index[w.as_str()]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort_unstable();
                s.loops.push(component);
            }
        }
    }
    let mut state = State {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        loops: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    assert!(
        state.loops.is_empty(),
        "files that import each other: {:?}",
        state.loops
    );
}

#[test]
fn the_checker_sees_what_it_must() {
    // The parser itself: braces expanded, `self` kept, `super` resolved.
    assert_eq!(
        expand("crate::store::{self, Env, sqlite::{A, B}}"),
        [
            "crate::store",
            "crate::store::Env",
            "crate::store::sqlite::A",
            "crate::store::sqlite::B"
        ]
    );
    let refs = references("engine/run", false, "use super::job::run_attempt;");
    assert_eq!(
        refs,
        [vec![
            "engine".to_owned(),
            "job".into(),
            "run_attempt".into()
        ]]
    );
    // And the graph finds known uses.
    let edges = graph();
    assert!(
        edges["engine/run"].contains("engine/job"),
        "{:?}",
        edges["engine/run"]
    );
    assert!(
        edges["cli/run"].contains("engine/setup"),
        "{:?}",
        edges["cli/run"]
    );
}
