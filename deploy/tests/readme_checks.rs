//! The alarm check the READMEs show for `lift-deploy rollout --check`: it passes only when
//! `aws` answered, named at least one alarm, and every one is `OK`. A check written as
//! `test -z "$(aws ...)"` passes when `aws` is missing, unauthenticated or failing, since its
//! output is then empty; one that looks only for `ALARM` passes with no alarm found (a
//! misspelled prefix) and on `INSUFFICIENT_DATA`, the state of an alarm with no data yet.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `--check alarms='...'` command of a README.
fn alarm_check(readme: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(readme);
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("--check alarms='").unwrap_or_else(|| panic!("no alarm check in {readme}"))
        + "--check alarms='".len();
    let end = start + text[start..].find('\'').expect("a closing quote");
    text[start..end].to_owned()
}

/// A directory holding an `aws` that prints `output` and exits with `status`.
fn fake_aws(output: &str, status: i32) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("lift-fake-aws-{}-{}", std::process::id(), rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("aws");
    std::fs::write(&script, format!("#!/bin/sh\nprintf '%s' '{output}'\nexit {status}\n")).unwrap();
    Command::new("chmod").arg("+x").arg(&script).status().unwrap();
    dir
}

/// Whether the check passes (exit status 0) with only `path` to find commands in.
fn passes(check: &str, path: &Path) -> bool {
    Command::new("/bin/sh").arg("-c").arg(check).env("PATH", path).status().unwrap().success()
}

#[test]
fn the_readme_alarm_check_passes_only_on_alarms_that_are_all_ok() {
    for readme in ["../README.md", "README.md"] {
        let check = alarm_check(readme);
        let ok = fake_aws("OK OK OK", 0);
        assert!(passes(&check, &ok), "{readme}: every alarm OK passes");
        let firing = fake_aws("OK ALARM OK", 0);
        assert!(!passes(&check, &firing), "{readme}: an alarm in ALARM fails");
        let no_data = fake_aws("OK INSUFFICIENT_DATA", 0);
        assert!(!passes(&check, &no_data), "{readme}: an alarm with no data is no evidence");
        let none = fake_aws("", 0);
        assert!(!passes(&check, &none), "{readme}: no alarm found (a wrong prefix) fails");
        let unauthenticated = fake_aws("", 255);
        assert!(!passes(&check, &unauthenticated), "{readme}: an aws that failed fails the check");
        assert!(!passes(&check, Path::new("/nonexistent")), "{readme}: no aws at all fails the check");
        for dir in [ok, firing, no_data, none, unauthenticated] {
            std::fs::remove_dir_all(dir).unwrap();
        }
    }
}
