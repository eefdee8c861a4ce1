//! The layering, checked: no import loop between files anywhere in the
//! workspace, and in `kelp/src` no file imports from a layer above its own.
//!
//! The layers, bottom to top: `content` → `error`, `event` → `url` →
//! `codec` → `transport` → `recovery` → `model` → `patterns` → `blocking`
//! → `lib.rs`. A file may use its own layer and the ones below.
//!
//! What counts as an import: `use` declarations and paths written out in
//! code (`crate::a::b`, `super::c`), each resolved to the file that defines
//! the item, through re-exports. Comments, strings and `#[cfg(test)]`
//! modules are left out; method calls are not imports.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The crates whose source is checked, relative to the workspace root.
const CRATES: &[&str] = &["kelp/src", "kelp-cli/src", "kelp-test-support/src", "benches/src"];

/// `kelp/src`'s layers by top-level module, bottom first.
const LAYERS: &[(&str, u8)] = &[
    ("content", 0),
    ("error", 1),
    ("event", 1),
    ("url", 2),
    ("codec", 3),
    ("transport", 4),
    ("recovery", 5),
    ("model", 6),
    ("patterns", 7),
    ("blocking", 8),
];

type ModPath = Vec<String>;

/// One crate: its files by module path.
struct Crate {
    files: BTreeMap<ModPath, PathBuf>,
    /// Per module: item name → the full path it re-exports.
    reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("kelp/ has a parent").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_path(src: &Path, file: &Path) -> ModPath {
    let relative = file.strip_prefix(src).expect("a file under src");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "lib" | "main" | "mod") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The source without comments, string and char literals (replaced by
/// spaces, so that line structure stays), and without `#[cfg(test)]` items.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').map_or(text.len(), |n| i + n);
            i = end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(text.len(), |n| i + n + 2);
            i = end;
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|&c| c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = i + 2 + hashes;
            let end = text[body..].find(&close).map_or(text.len(), |n| body + n + close.len());
            out.push(' ');
            i = end;
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            out.push(' ');
            i = j + 1;
        } else if bytes[i] == b'\'' && is_char_literal(&bytes[i..]) {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'\'' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            out.push(' ');
            i = j + 1;
        } else {
            let c = rest.chars().next().expect("a char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    remove_test_modules(&out)
}

/// `'a'`, `'\n'`, `'\''`: a char literal, not a lifetime.
fn is_char_literal(bytes: &[u8]) -> bool {
    match bytes.get(1) {
        Some(b'\\') => true,
        Some(_) => {
            // One (possibly multi-byte) char, then a quote.
            let text = String::from_utf8_lossy(&bytes[1..bytes.len().min(6)]).into_owned();
            let mut chars = text.chars();
            chars.next();
            chars.next() == Some('\'')
        }
        None => false,
    }
}

fn remove_test_modules(code: &str) -> String {
    let mut out = code.to_owned();
    while let Some(at) = out.find("#[cfg(test)]") {
        let after = at + "#[cfg(test)]".len();
        let item_end = match (out[after..].find('{'), out[after..].find(';')) {
            (Some(brace), Some(semi)) if semi < brace => after + semi + 1,
            (Some(brace), _) => matching_brace(&out, after + brace) + 1,
            (None, Some(semi)) => after + semi + 1,
            (None, None) => out.len(),
        };
        out.replace_range(at..item_end, "");
    }
    out
}

fn matching_brace(text: &str, open: usize) -> usize {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + i;
                }
            }
            _ => {}
        }
    }
    text.len() - 1
}

/// A path written in the code, with the module it was written in.
struct Written {
    path: Vec<String>,
    in_module: ModPath,
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Every `use` tree and every `crate::`/`super::`/`self::` path in `code`,
/// with the (file or inline) module it appears in.
fn written_paths(code: &str, file_module: &ModPath) -> Vec<Written> {
    let mut out = Vec::new();
    // Inline modules: (name, brace depth at which they close).
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    let module_here = |stack: &Vec<(String, usize)>| {
        let mut m = file_module.clone();
        m.extend(stack.iter().map(|(n, _)| n.clone()));
        m
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            depth += 1;
            i += 1;
            continue;
        }
        if c == '}' {
            depth = depth.saturating_sub(1);
            if stack.last().is_some_and(|(_, d)| *d == depth) {
                stack.pop();
            }
            i += 1;
            continue;
        }
        let at_word_start = i == 0 || !is_ident_char(chars[i - 1]) && chars[i - 1] != ':';
        if !at_word_start || !is_ident_char(c) {
            i += 1;
            continue;
        }
        let word_end = (i..chars.len()).find(|&j| !is_ident_char(chars[j])).unwrap_or(chars.len());
        let word: String = chars[i..word_end].iter().collect();
        if word == "mod" {
            // `mod name {` opens an inline module; `mod name;` a file.
            let rest: String = chars[word_end..chars.len().min(word_end + 80)].iter().collect();
            let name: String = rest.trim_start().chars().take_while(|&c| is_ident_char(c)).collect();
            let after = rest.trim_start()[name.len()..].trim_start();
            if after.starts_with('{') {
                stack.push((name, depth));
            }
            i = word_end;
        } else if word == "use" {
            let end = (word_end..chars.len()).find(|&j| chars[j] == ';').unwrap_or(chars.len());
            let tree: String = chars[word_end..end].iter().collect();
            let module = module_here(&stack);
            for path in expand_use_tree(&tree) {
                out.push(Written { path, in_module: module.clone() });
            }
            i = end;
        } else if word == "in" && i >= 4 && chars[..i].iter().rev().find(|c| !c.is_whitespace()) == Some(&'(') {
            // `pub(in super::super)`: a visibility, not an import.
            let end = (word_end..chars.len()).find(|&j| chars[j] == ')').unwrap_or(chars.len());
            i = end;
        } else if matches!(word.as_str(), "crate" | "super" | "self")
            && chars.get(word_end) == Some(&':')
            && chars.get(word_end + 1) == Some(&':')
        {
            let mut j = word_end;
            let mut path = vec![word];
            while chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&':') {
                j += 2;
                let seg_end = (j..chars.len()).find(|&k| !is_ident_char(chars[k])).unwrap_or(chars.len());
                if seg_end == j {
                    break;
                }
                path.push(chars[j..seg_end].iter().collect());
                j = seg_end;
            }
            // `crate::$name` in a macro names nothing here.
            if path.len() > 1 {
                out.push(Written { path, in_module: module_here(&stack) });
            }
            i = j;
        } else {
            i = word_end;
        }
    }
    out
}

/// `a::{b, c::{d, e as f}}` → `[a, b]`, `[a, c, d]`, `[a, c, e]`.
fn expand_use_tree(tree: &str) -> Vec<Vec<String>> {
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    expand_into(&[], tree.trim(), &mut out);
    out
}

fn expand_into(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim().trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let close = matching_brace(tree, open);
        let mut base = prefix.to_vec();
        base.extend(head);
        for part in split_top_level(&tree[open + 1..close]) {
            expand_into(&base, &part, out);
        }
        return;
    }
    let tree = tree.split(" as ").next().unwrap_or(tree);
    let mut path = prefix.to_vec();
    path.extend(tree.split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
    if path.last().is_some_and(|l| l == "self") {
        path.pop();
    }
    if !path.is_empty() {
        out.push(path);
    }
}

fn split_top_level(list: &str) -> Vec<String> {
    let (mut parts, mut depth, mut current) = (Vec::new(), 0usize, String::new());
    for c in list.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

impl Crate {
    fn load(root: &Path, src: &str) -> (Crate, BTreeMap<ModPath, Vec<Written>>) {
        let src = root.join(src);
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut krate = Crate { files: BTreeMap::new(), reexports: BTreeMap::new() };
        let mut written = BTreeMap::new();
        for file in files {
            let module = module_path(&src, &file);
            let text = fs::read_to_string(&file).expect("a readable source file");
            let code = code_only(&text);
            let paths = written_paths(&code, &module);
            krate.reexports.insert(module.clone(), reexports_of(&code, &module, &paths));
            krate.files.insert(module.clone(), file);
            written.insert(module, paths);
        }
        (krate, written)
    }

    /// The absolute module path of `path` written in module `at`, or `None`
    /// for another crate's path.
    fn absolute(&self, path: &[String], at: &ModPath) -> Option<Vec<String>> {
        let mut base = at.clone();
        let mut rest = path;
        match rest.first().map(String::as_str) {
            Some("crate") => {
                base.clear();
                rest = &rest[1..];
            }
            Some("super") => {
                while rest.first().is_some_and(|s| s == "super") {
                    base.pop();
                    rest = &rest[1..];
                }
            }
            Some("self") => rest = &rest[1..],
            Some(first) => {
                // A child module of the current one (`use child::Item`).
                let mut child = at.clone();
                child.push(first.to_owned());
                if !self.files.contains_key(&child) {
                    return None;
                }
            }
            None => return None,
        }
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The file that defines what `path` names (through re-exports).
    fn defining_file(&self, path: &[String], hops: usize) -> Option<ModPath> {
        let module = (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|m| self.files.contains_key(m))?;
        if hops < 8
            && let Some(item) = path.get(module.len())
            && let Some(target) = self.reexports.get(&module).and_then(|r| r.get(item))
        {
            let mut next = target.clone();
            next.extend(path[module.len() + 1..].iter().cloned());
            if let Some(found) = self.defining_file(&next, hops + 1) {
                return Some(found);
            }
        }
        Some(module)
    }
}

/// `pub use` / `pub(crate) use` declarations of a module: item → full path.
fn reexports_of(code: &str, module: &ModPath, paths: &[Written]) -> BTreeMap<String, ModPath> {
    let mut out = BTreeMap::new();
    for line in code.split(';') {
        let trimmed = line.trim_start();
        let Some(after_pub) = trimmed.strip_prefix("pub") else { continue };
        let after_vis = after_pub.trim_start();
        let after_vis = if after_vis.starts_with('(') {
            after_vis.find(')').map_or(after_vis, |n| &after_vis[n + 1..]).trim_start()
        } else {
            after_vis
        };
        let Some(tree) = after_vis.strip_prefix("use ") else { continue };
        for path in expand_use_tree(tree) {
            let Some(name) = path.last() else { continue };
            let mut full = match path.first().map(String::as_str) {
                Some("crate") => path[1..].to_vec(),
                Some("super") => {
                    let mut base = module.clone();
                    let supers = path.iter().take_while(|s| *s == "super").count();
                    for _ in 0..supers {
                        base.pop();
                    }
                    base.extend(path[supers..].iter().cloned());
                    base
                }
                Some("self") => {
                    let mut base = module.clone();
                    base.extend(path[1..].iter().cloned());
                    base
                }
                _ => {
                    let mut base = module.clone();
                    base.extend(path.iter().cloned());
                    base
                }
            };
            if full.first().is_some_and(|f| f == "crate") {
                full.remove(0);
            }
            out.insert(name.clone(), full);
        }
    }
    let _ = paths;
    out
}

/// The file-to-file imports of one crate.
fn import_graph(krate: &Crate, written: &BTreeMap<ModPath, Vec<Written>>) -> BTreeMap<ModPath, BTreeMap<ModPath, String>> {
    let mut graph: BTreeMap<ModPath, BTreeMap<ModPath, String>> = BTreeMap::new();
    for (module, paths) in written {
        let edges = graph.entry(module.clone()).or_default();
        for w in paths {
            let Some(absolute) = krate.absolute(&w.path, &w.in_module) else { continue };
            let Some(target) = krate.defining_file(&absolute, 0) else { continue };
            if &target != module {
                edges.entry(target).or_insert_with(|| w.path.join("::"));
            }
        }
    }
    graph
}

/// Groups of files that import each other in a loop (Tarjan's SCCs).
fn loops(graph: &BTreeMap<ModPath, BTreeMap<ModPath, String>>) -> Vec<Vec<ModPath>> {
    struct State<'g> {
        graph: &'g BTreeMap<ModPath, BTreeMap<ModPath, String>>,
        index: BTreeMap<&'g ModPath, usize>,
        low: BTreeMap<&'g ModPath, usize>,
        on_stack: BTreeSet<&'g ModPath>,
        stack: Vec<&'g ModPath>,
        next: usize,
        found: Vec<Vec<ModPath>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g ModPath) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|e| e.keys()) {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w.clone());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                s.found.push(group);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        on_stack: BTreeSet::new(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.found
}

fn show(krate: &Crate, module: &ModPath) -> String {
    let root = workspace_root();
    krate.files[module].strip_prefix(&root).unwrap_or(&krate.files[module]).display().to_string()
}

fn layer(module: &ModPath) -> u8 {
    match module.first() {
        None => u8::MAX, // lib.rs: the top, which re-exports everything
        Some(top) => LAYERS
            .iter()
            .find(|(name, _)| name == top)
            .map(|(_, rank)| *rank)
            .unwrap_or_else(|| panic!("kelp/src/{top} belongs to no layer: add it to LAYERS")),
    }
}

#[test]
fn no_file_imports_another_that_imports_it_back() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for src in CRATES {
        let (krate, written) = Crate::load(&root, src);
        let graph = import_graph(&krate, &written);
        for group in loops(&graph) {
            let mut lines = Vec::new();
            for from in &group {
                for (to, via) in &graph[from] {
                    if group.contains(to) {
                        lines.push(format!("  {} -> {} ({via})", show(&krate, from), show(&krate, to)));
                    }
                }
            }
            problems.push(format!("an import loop in {src}:\n{}", lines.join("\n")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn no_file_of_kelp_imports_from_a_layer_above_its_own() {
    let root = workspace_root();
    let (krate, written) = Crate::load(&root, "kelp/src");
    let graph = import_graph(&krate, &written);
    let mut upward = Vec::new();
    for (from, edges) in &graph {
        for (to, via) in edges {
            if layer(to) > layer(from) {
                upward.push(format!("  {} -> {} ({via})", show(&krate, from), show(&krate, to)));
            }
        }
    }
    assert!(upward.is_empty(), "imports from a higher layer:\n{}", upward.join("\n"));
}

/// The checker itself: it sees a loop and an upward import when there is
/// one (so a passing run means something).
#[test]
fn the_checker_finds_what_it_looks_for() {
    let code = code_only(
        "use crate::b::{X, y::{Z as W}};\n// use crate::c::Hidden;\nlet s = \"crate::d::InString\";\n\
         fn f() { super::e::g(); }\n#[cfg(test)]\nmod tests { use crate::f::Test; }\n",
    );
    let paths: Vec<String> = written_paths(&code, &vec!["a".to_owned()]).iter().map(|w| w.path.join("::")).collect();
    assert_eq!(paths, ["crate::b::X", "crate::b::y::Z", "super::e::g"]);

    let mut graph: BTreeMap<ModPath, BTreeMap<ModPath, String>> = BTreeMap::new();
    let (a, b, c) = (vec!["a".to_owned()], vec!["b".to_owned()], vec!["c".to_owned()]);
    graph.entry(a.clone()).or_default().insert(b.clone(), "a->b".into());
    graph.entry(b.clone()).or_default().insert(a.clone(), "b->a".into());
    graph.entry(c.clone()).or_default().insert(a.clone(), "c->a".into());
    let found = loops(&graph);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].iter().collect::<BTreeSet<_>>(), [&a, &b].into_iter().collect());
    assert!(layer(&vec!["model".to_owned()]) > layer(&vec!["transport".to_owned()]));
}
