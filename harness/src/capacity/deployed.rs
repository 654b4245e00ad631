//! The deployment a harness file names with `deploy`: the service's `lift.toml`, whose
//! values the file's run takes, so that what the harness measures or plans is the function
//! lift-deploy deploys. The capacity profile and the cost plan and traffic profile share it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Serialize;

/// A `lift.toml` read for a harness file, with that file as written: a value the file
/// sets must be the deployed one, a value it leaves out is taken from the deployment.
#[derive(Debug, Clone)]
pub(crate) struct Deployed {
    /// The deployment.
    pub(crate) config: lift_deploy::DeployConfig,
    file: PathBuf,
    written: toml::Table,
}

impl Deployed {
    /// Reads `deploy` (relative to `dir`, the directory of the file that names it) for the
    /// file whose text is `written`.
    pub(crate) fn load(dir: &Path, deploy: &Path, written: &str) -> anyhow::Result<Self> {
        let file = dir.join(deploy);
        let config = std::fs::read_to_string(&file)
            .map_err(anyhow::Error::from)
            .and_then(|t| Ok(lift_deploy::DeployConfig::from_toml(&t)?))
            .with_context(|| format!("deploy: {}", file.display()))?;
        Ok(Self { config, file, written: toml::from_str(written)? })
    }

    /// The deployment file, joined to the directory it was named from.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// Takes the deployed memory and timeout into `[function]`'s `memory_mb` and
    /// `timeout_secs` (the keys capacity profiles and cost plans share).
    pub(crate) fn take_function(&self, memory_mb: &mut u32, timeout_secs: &mut u64) -> anyhow::Result<()> {
        let f = &self.config.function;
        self.take("function.memory_mb", memory_mb, f.memory_mb)?;
        self.take("function.timeout_secs", timeout_secs, u64::from(f.timeout_seconds))
    }

    /// Sets `value` to `deployed`; when the file sets `key` (dotted, e.g.
    /// `function.memory_mb`) to something else, refuses naming both.
    pub(crate) fn take<T: PartialEq + Serialize>(
        &self,
        key: &str,
        value: &mut T,
        deployed: T,
    ) -> anyhow::Result<()> {
        let mut at = Some(&self.written);
        let mut parts = key.split('.').peekable();
        let mut written = false;
        while let (Some(table), Some(part)) = (at, parts.next()) {
            let entry = table.get(part);
            written = parts.peek().is_none() && entry.is_some();
            at = entry.and_then(toml::Value::as_table);
        }
        if written && *value != deployed {
            let show = |v: &T| serde_json::to_string(v).unwrap_or_default();
            bail!(
                "{key}: {} here, but {} deploys {}; leave it out to take the deployed one",
                show(value),
                self.file.display(),
                show(&deployed)
            );
        }
        *value = deployed;
        Ok(())
    }
}

/// The smallest valid `lift.toml`, its `[function]` section last so a test can add keys.
#[cfg(test)]
pub(crate) const SMALLEST_LIFT_TOML: &str =
    "[service]\nname = \"x\"\nregions = [\"us-east-1\"]\n[function]\ncode = \"s3://b/x.zip\"\n";

/// A fresh directory `<name>-<pid>` under the temporary one, holding `lift.toml` with
/// [`SMALLEST_LIFT_TOML`] and `function_keys` added, for tests of files that name it.
#[cfg(test)]
pub(crate) fn test_dir(name: &str, function_keys: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lift.toml"), format!("{SMALLEST_LIFT_TOML}{function_keys}")).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployed(written: &str) -> Deployed {
        let config = lift_deploy::DeployConfig::from_toml(SMALLEST_LIFT_TOML).unwrap();
        Deployed { config, file: "lift.toml".into(), written: toml::from_str(written).unwrap() }
    }

    #[test]
    fn a_value_left_out_is_taken_and_a_different_one_refused_naming_both() {
        let mut memory = 128u32;
        deployed("[function]\nbin = \"b\"").take("function.memory_mb", &mut memory, 512).unwrap();
        assert_eq!(memory, 512);
        let mut memory = 256u32;
        let err = deployed("[function]\nmemory_mb = 256")
            .take("function.memory_mb", &mut memory, 512)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "function.memory_mb: 256 here, but lift.toml deploys 512; leave it out to take the deployed one"
        );
        let mut arch = Some("x86_64".to_owned());
        let err = deployed("arch = \"x86_64\"").take("arch", &mut arch, Some("arm64".into())).unwrap_err();
        assert!(err.to_string().starts_with("arch: \"x86_64\" here, but lift.toml deploys \"arm64\""));
        // The same value written is accepted; a key of another section is not this one.
        let mut same = 512u32;
        deployed("[function]\nmemory_mb = 512").take("function.memory_mb", &mut same, 512).unwrap();
        let mut other = 1u32;
        deployed("memory_mb = 3").take("function.memory_mb", &mut other, 2).unwrap();
        assert_eq!(other, 2);
    }
}
