//! The layers of docs/design.md, checked on the source: every module imports only from its own
//! layer or the ones before it, and the probe side (NVML, CUDA, programs) and the analysis side
//! never import each other. A `use` against the direction fails here with the line that does.

use std::path::{Path, PathBuf};

/// Modules in dependency order: a module may use its own layer and the ones before it.
const LAYERS: &[&[&str]] = &[
    &["units", "error"],
    &["report"],
    &["facts", "output", "examples"],
    &["isolate::protocol", "context"],
    &["probe", "program", "analyze"],
    &["render"],
    &["isolate"],
    &["scenarios"],
    &["runner"],
    &["suite", "compare", "fleet", "exporter"],
    &["cli"],
];

/// Pairs in one layer that must not import each other: gathering facts and judging them.
const APART: &[(&str, &str)] = &[
    ("probe", "analyze"),
    ("analyze", "probe"),
    ("program", "analyze"),
    ("analyze", "program"),
    ("suite", "compare"),
    ("compare", "suite"),
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module {module} is in no layer: add it to LAYERS"))
}

/// The module a file belongs to: its first path component under src/, except the isolation
/// protocol, which sits below the run context.
fn module_of(rel: &Path) -> String {
    let s = rel.to_string_lossy();
    if s.starts_with("isolate/protocol") {
        return "isolate::protocol".into();
    }
    s.split(['/', '.']).next().unwrap().to_string()
}

/// `crate::x` and `crate::isolate::protocol` references in the code (not comments) above a
/// file's tests.
fn references(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = code.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let tail = &rest[i + "crate::".len()..];
            let name: String = tail
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let target = if name == "isolate" && tail.starts_with("isolate::protocol") {
                "isolate::protocol".to_string()
            } else {
                name
            };
            out.push((n + 1, target));
            rest = tail;
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_import_only_downwards() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    let mut seen = 0;
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let module = module_of(rel);
        if ["lib", "main", "tests"].contains(&module.as_str()) {
            continue;
        }
        let here = layer_of(&module);
        for (line, target) in references(&std::fs::read_to_string(&f).unwrap()) {
            seen += 1;
            if target == module || target.is_empty() {
                continue;
            }
            let there = layer_of(&target);
            if there > here || APART.contains(&(module.as_str(), target.as_str())) {
                wrong.push(format!(
                    "src/{}:{line}: {module} uses {target}",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        seen > 200,
        "only {seen} references read: is the scan broken?"
    );
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scan_sees_a_use_against_the_layers() {
    let refs = references(
        "use crate::scenarios::x;\n// crate::cli in a comment\n#[cfg(test)]\nuse crate::cli;\n",
    );
    assert_eq!(refs, vec![(1, "scenarios".to_string())]);
    assert!(layer_of("scenarios") > layer_of("probe"));
    assert_eq!(
        module_of(Path::new("isolate/protocol.rs")),
        "isolate::protocol"
    );
    assert_eq!(module_of(Path::new("probe/faults/oom.rs")), "probe");
}
