//! The map in docs/architecture.md matches the code: every workspace crate is placed in a
//! layer, appears in the map, and depends only on what its layer allows. A door never
//! depends on another door, nothing below the binary depends on a door, the data path
//! never depends on the metadata service, ingest and reader never on each other, and the
//! metadata API and the segment format on nothing of Silt's.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Foundation crates: they depend on nothing of Silt's.
const NOTHING: &[&str] = &[];
/// What the data path (ingest, reader, compactor) may use.
const DATA_PATH: &[&str] = &["silt-metadata", "silt-segment", "silt-storage"];
/// What a front door may use: the data path and the libraries, never another door or
/// the metadata service's network client (doors do not know where metadata lives).
const DOOR: &[&str] = &[
    "silt-metadata",
    "silt-segment",
    "silt-storage",
    "silt-tls",
    "silt-auth",
    "silt-groups",
    "silt-ingest",
    "silt-reader",
];

/// The binary and the tools may use anything.
const ANYTHING: Option<&[&str]> = None;

/// Every workspace crate: its folder and what it may depend on (normal dependencies).
const MAP: &[(&str, &str, Option<&[&str]>)] = &[
    ("silt-metadata", "services/metadata", Some(NOTHING)),
    ("silt-segment", "segment", Some(NOTHING)),
    ("silt-storage", "storage", Some(NOTHING)),
    ("silt-tls", "services/tls", Some(NOTHING)),
    ("silt-auth", "services/auth", Some(&["silt-metadata"])),
    ("silt-groups", "groups", Some(&["silt-metadata"])),
    ("silt-ingest", "ingest", Some(DATA_PATH)),
    ("silt-reader", "reader", Some(DATA_PATH)),
    ("silt-compactor", "compactor", Some(DATA_PATH)),
    (
        "silt-metadata-service",
        "services/metadata-service",
        Some(&["silt-metadata", "silt-groups", "silt-tls"]),
    ),
    ("silt-http", "services/http", Some(DOOR)),
    ("silt-kafka", "services/kafka", Some(DOOR)),
    ("silt", "services/silt", ANYTHING),
    ("silt-bench", "benches", ANYTHING),
    ("silt-e2e", "tests", ANYTHING),
    ("silt-fuzz", "fuzz", ANYTHING),
];

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
}

/// Each workspace crate's folder and normal dependencies on other workspace crates.
fn workspace_graph() -> BTreeMap<String, (String, Vec<String>)> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let names: Vec<String> = packages
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_string())
        .collect();
    let root = workspace_root().to_str().expect("a UTF-8 path").to_string();
    packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().expect("name").to_string();
            let manifest = p["manifest_path"].as_str().expect("manifest path");
            let folder = Path::new(manifest)
                .parent()
                .expect("a manifest's folder")
                .to_str()
                .expect("a UTF-8 path")
                .trim_start_matches(&root)
                .trim_start_matches('/')
                .to_string();
            let deps = p["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.iter().any(|n| n == d))
                .map(str::to_string)
                .collect();
            (name, (folder, deps))
        })
        .collect()
}

#[test]
fn every_crate_is_on_the_map_and_depends_only_on_what_its_layer_allows() {
    let graph = workspace_graph();
    let mut wrong = Vec::new();
    for (name, (folder, deps)) in &graph {
        let Some((_, mapped, allowed)) = MAP.iter().find(|(n, _, _)| n == name) else {
            wrong.push(format!(
                "{name} ({folder}) is not on the map: place it in a layer here and draw it in docs/architecture.md"
            ));
            continue;
        };
        if mapped != folder {
            wrong.push(format!("{name} lives in {folder}, the map says {mapped}"));
        }
        if let Some(allowed) = allowed {
            for dep in deps {
                if !allowed.contains(&dep.as_str()) {
                    wrong.push(format!(
                        "{name} depends on {dep}, an arrow the map forbids (allowed: {allowed:?})"
                    ));
                }
            }
        }
    }
    for (name, _, _) in MAP {
        if !graph.contains_key(*name) {
            wrong.push(format!(
                "the map names {name}, which is not in the workspace"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_architecture_page_draws_every_crate() {
    let page = std::fs::read_to_string(workspace_root().join("docs/architecture.md"))
        .expect("docs/architecture.md");
    let map = page
        .split("## Crates and dependencies")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("docs/architecture.md has a 'Crates and dependencies' section");
    let missing: Vec<&str> = MAP
        .iter()
        .map(|(_, folder, _)| *folder)
        .filter(|folder| !map.contains(folder))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/architecture.md's map does not draw {missing:?}"
    );
}

#[test]
fn the_map_forbids_what_it_says() {
    let allowed = |name: &str| {
        MAP.iter()
            .find(|(n, _, _)| *n == name)
            .and_then(|(_, _, a)| *a)
            .expect("a layered crate")
    };
    for door in ["silt-http", "silt-kafka"] {
        for other in ["silt-http", "silt-kafka", "silt-metadata-service"] {
            assert!(!allowed(door).contains(&other), "{door} may use {other}");
        }
    }
    for data in ["silt-ingest", "silt-reader", "silt-compactor"] {
        for above in [
            "silt-http",
            "silt-kafka",
            "silt-metadata-service",
            "silt-ingest",
            "silt-reader",
        ] {
            assert!(!allowed(data).contains(&above), "{data} may use {above}");
        }
    }
    assert!(allowed("silt-metadata").is_empty());
    assert!(allowed("silt-segment").is_empty());
}

#[test]
fn every_library_names_its_silt_dependencies_in_its_opening_paragraph() {
    let graph = workspace_graph();
    let mut wrong = Vec::new();
    for (name, folder, allowed) in MAP {
        if allowed.is_none() {
            continue; // the binary and the tools
        }
        let lib = workspace_root().join(folder).join("src/lib.rs");
        let text = std::fs::read_to_string(&lib).expect("a library crate has src/lib.rs");
        let opening: String = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let (_, deps) = &graph[*name];
        for dep in deps {
            if !opening.contains(&format!("`{dep}`")) {
                wrong.push(format!("{} does not name `{dep}`", lib.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
