//! The payments deployment: golden templates, cfn-lint, checkov and a stack created in
//! moto's CloudFormation.
//!
//! The external tools are required: CI installs them (`pip install cfn-lint checkov
//! "moto[server]"`), and a missing one fails the test with the command that installs it.
//! Update the golden files after an intended change with
//! `LIFT_UPDATE_GOLDEN=1 cargo test -p payments --features deploy --test deploy golden`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use lift_deploy::{DeployConfig, Synth};

const CONFIGS: [&str; 2] = ["lift.toml", "lift.multi-region.toml"];

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn synth(config: &str) -> Synth {
    let config = DeployConfig::from_path(&manifest_dir().join(config))
        .expect("the example deployment files are valid");
    Synth::new(payments::manifest(), config)
}

/// Every output file of both deployment files, by golden path (`single/...`, `multi/...`).
fn outputs() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (config, dir) in CONFIGS.iter().zip(["single", "multi"]) {
        for (name, text) in synth(config).files().unwrap() {
            out.insert(format!("{dir}/{name}"), text);
        }
    }
    out
}

/// Writes the outputs under a fresh temporary directory and returns it.
fn written() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("payments-deploy-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
    for (name, text) in outputs() {
        let path = dir.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn files_with(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for sub in ["single", "multi"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs a required tool; a missing one fails with how to install it.
fn tool(program: &str, install: &str) -> Command {
    if Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        panic!("{program} is required for this test and was not found on PATH; install it with `{install}`");
    }
    Command::new(program)
}

#[test]
fn golden_files_match_and_output_is_deterministic() {
    let golden = manifest_dir().join("tests/fixtures/deploy");
    let first = outputs();
    // Byte-identical on a second run: nothing depends on hash order or time.
    assert_eq!(first, outputs());
    if std::env::var_os("LIFT_UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        for (name, text) in &first {
            let path = golden.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }
    for (name, text) in &first {
        let expected = std::fs::read_to_string(golden.join(name)).unwrap_or_else(|_| {
            panic!("no golden file {name}; create it with LIFT_UPDATE_GOLDEN=1 cargo test -p payments --features deploy --test deploy golden")
        });
        assert!(
            &expected == text,
            "{name} differs from its golden file; review the change and update with \
             LIFT_UPDATE_GOLDEN=1 cargo test -p payments --features deploy --test deploy golden"
        );
    }
    let mut on_disk: Vec<String> = Vec::new();
    for sub in ["single", "multi"] {
        for entry in std::fs::read_dir(golden.join(sub)).unwrap() {
            on_disk.push(format!("{sub}/{}", entry.unwrap().file_name().to_string_lossy()));
        }
    }
    on_disk.sort();
    assert_eq!(on_disk, first.keys().cloned().collect::<Vec<_>>(), "stale golden files");
}
