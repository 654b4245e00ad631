//! Infrastructure as code from a Lift [`App`](lift::App): CloudFormation (YAML and JSON) and
//! Terraform JSON, synthesized from the App's routes, the tables it uses and a small
//! deployment file (`lift.toml`); and progressive delivery of new versions with health gates
//! and automatic rollback ([`rollout`]).
//!
//! # Quick start
//!
//! ```
//! use lift_deploy::{DeployConfig, Manifest, Synth, TableAccess};
//! async fn get(_: lift::Request) -> lift::Response { lift::Response::default() }
//!
//! let app = lift::App::new().get("/orders/:id", get);
//! let manifest = Manifest::from_app(&app)
//!     .table(lift::store::tables::idempotency(), TableAccess::idempotency());
//! let config = DeployConfig::from_toml(r#"
//!     [service]
//!     name = "orders"
//!     regions = ["eu-west-1"]
//!     [function]
//!     code = "s3://artifacts/orders.zip"
//! "#)?;
//! let files = Synth::new(manifest, config).files()?;
//! assert!(files.contains_key("orders-eu-west-1.cfn.yaml"));
//! assert!(files.contains_key("orders-eu-west-1.tf.json"));
//! # Ok::<(), lift_deploy::Error>(())
//! ```
//!
//! # How a service is synthesized
//!
//! `lift-deploy` never links a service. The service prints its [`Manifest`] (a few lines:
//! [`Manifest::from_app`] plus its tables, see `examples/payments/src/bin/payments-manifest.rs`),
//! and `lift-deploy synth --manifest manifest.json --config lift.toml --out infra/` writes
//! the templates. Tests use the library directly ([`Synth`]).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod cfn;
pub mod config;
pub mod manifest;
mod plan;
pub mod rollout;
mod terraform;
mod yaml;

use std::collections::BTreeMap;

pub use config::DeployConfig;
pub use manifest::{Manifest, TableAccess};

/// Why synthesis failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The deployment file is bad or contradictory.
    #[error("invalid deployment file: {key}: {reason}")]
    Config {
        /// The key, e.g. `function.memory_mb`.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The manifest is bad.
    #[error("invalid manifest: {path}: {reason}")]
    Manifest {
        /// Where.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An extra resource or parameter has the name of a synthesized one, or a fragment has
    /// a section that is not merged or defines a parameter or condition twice differently.
    #[error("extra {0} has the name of a synthesized one or cannot be merged")]
    Extra(String),
    /// Two parts of the service would make resources of the same name, and one would be
    /// silently dropped: two routes whose paths differ only in punctuation, say.
    #[error("two resources would be named {name}: {first} and {second}; rename one")]
    SameName {
        /// The logical id (CloudFormation) or `<type>.<name>` (Terraform).
        name: String,
        /// What made the name first, e.g. `route GET /orders/:id`.
        first: String,
        /// What made it again.
        second: String,
    },
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Synthesis of one service: a manifest, a deployment file and optional extra resources.
#[derive(Debug, Clone)]
pub struct Synth {
    manifest: Manifest,
    config: DeployConfig,
    extra_cfn: cfn::Extra,
    extra_tf: serde_json::Map<String, serde_json::Value>,
}

impl Synth {
    /// Synthesis of `manifest` as `config` deploys it.
    pub fn new(manifest: Manifest, config: DeployConfig) -> Self {
        Self { manifest, config, extra_cfn: Default::default(), extra_tf: Default::default() }
    }

    /// The hook for resources synthesis does not make itself: CloudFormation resources by
    /// logical id, added to every region's template. A name that collides with a
    /// synthesized resource is an error.
    pub fn extra_cloudformation(mut self, resources: serde_json::Map<String, serde_json::Value>) -> Self {
        self.extra_cfn.resources.extend(resources);
        self
    }

    /// A template fragment with `Parameters`, `Conditions` and `Resources`, such as the SLO
    /// alarms of `lift-monitoring` (`lift_monitoring::alarms::fragment`), whose resources
    /// refer to its own parameters and conditions: all three are added to every region's
    /// template. A name that collides with a synthesized one, or a parameter or condition
    /// defined twice differently, is an error; the fragment's other sections are too, as
    /// they would be dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # use lift_deploy::{DeployConfig, Manifest, Synth};
    /// # async fn get(_: lift::Request) -> lift::Response { lift::Response::default() }
    /// # let manifest = Manifest::from_app(&lift::App::new().get("/orders/:id", get));
    /// # let config = DeployConfig::from_toml("[service]\nname = \"orders\"\nregions = [\"eu-west-1\"]\n[function]\ncode = \"s3://a/o.zip\"\n")?;
    /// let fragment = serde_json::json!({
    ///     "Parameters": {"PageTopicArn": {"Type": "String", "Default": ""}},
    ///     "Conditions": {"HasPageTopic": {"Fn::Not": [{"Fn::Equals": [{"Ref": "PageTopicArn"}, ""]}]}},
    ///     "Resources": {"PageTopicAlarm": {"Type": "AWS::CloudWatch::Alarm", "Condition": "HasPageTopic", "Properties": {}}},
    /// });
    /// let synth = Synth::new(manifest, config).extra_cloudformation_fragment(&fragment);
    /// let template = synth.cloudformation("eu-west-1")?;
    /// assert_eq!(template["Conditions"]["HasPageTopic"], fragment["Conditions"]["HasPageTopic"]);
    /// # Ok::<(), lift_deploy::Error>(())
    /// ```
    pub fn extra_cloudformation_fragment(mut self, fragment: &serde_json::Value) -> Self {
        self.extra_cfn.add_fragment(fragment);
        self
    }

    /// The same hook for Terraform: `{"<type>": {"<name>": {...}}}`, merged into every
    /// region's `resource` block.
    pub fn extra_terraform(mut self, resources: serde_json::Map<String, serde_json::Value>) -> Self {
        self.extra_tf.extend(resources);
        self
    }

    /// The CloudFormation template of one region, as JSON.
    ///
    /// # Errors
    /// [`Error`] when the file and the manifest disagree, or an extra resource collides.
    pub fn cloudformation(&self, region: &str) -> Result<serde_json::Value, Error> {
        self.manifest.check()?;
        self.config.check_against(&self.manifest)?;
        cfn::template(&self.manifest, &self.config, region, &self.extra_cfn)
    }

    /// The Terraform configuration of one region.
    ///
    /// # Errors
    /// As [`Synth::cloudformation`].
    pub fn terraform(&self, region: &str) -> Result<serde_json::Value, Error> {
        self.manifest.check()?;
        self.config.check_against(&self.manifest)?;
        terraform::config(&self.manifest, &self.config, region, &self.extra_tf)
    }

    /// Every output file by name: `<service>-<region>.cfn.yaml`, `.cfn.json` and `.tf.json`
    /// for each region. The same input always gives byte-identical files.
    ///
    /// # Errors
    /// As [`Synth::cloudformation`].
    pub fn files(&self) -> Result<BTreeMap<String, String>, Error> {
        let mut out = BTreeMap::new();
        for region in &self.config.service.regions {
            let stem = format!("{}-{region}", self.config.service.name);
            let cfn = self.cloudformation(region)?;
            out.insert(format!("{stem}.cfn.yaml"), yaml::to_yaml(&cfn));
            out.insert(format!("{stem}.cfn.json"), pretty(&cfn));
            out.insert(format!("{stem}.tf.json"), pretty(&self.terraform(region)?));
        }
        Ok(out)
    }

    /// Writes [`Synth::files`] into `dir` (created if missing); returns the paths written.
    ///
    /// # Errors
    /// As [`Synth::files`], or [`Error::Io`].
    pub fn write(&self, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, Error> {
        let io = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut written = Vec::new();
        for (name, text) in self.files()? {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(io(&path))?;
            written.push(path);
        }
        Ok(written)
    }
}

fn pretty(value: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("a template always serializes");
    s.push('\n');
    s
}
