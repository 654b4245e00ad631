//! Versions, aliases and the Lambda control plane: `$LATEST` and its published snapshots,
//! aliases that route by weight between two versions, and the REST-JSON operations the
//! SDKs send for them (`PublishVersion`, `GetFunctionConfiguration`,
//! `UpdateFunctionConfiguration`, `ListVersionsByFunction`, `CreateAlias`, `GetAlias`,
//! `UpdateAlias`, `DeleteAlias`, `ListAliases`), served next to the Invoke API.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::function::{Function, LATEST};
use super::http_server::{self, Req, Resp};
use super::pool::FunctionPool;
use super::{InvokeError, LocalLambda};

/// A change to `$LATEST`'s configuration; `None` keeps what is there.
///
/// # Examples
///
/// ```
/// use lift_harness::lambda::FunctionUpdate;
///
/// let update = FunctionUpdate { memory_mb: Some(512), ..FunctionUpdate::default() };
/// assert!(update.env.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FunctionUpdate {
    /// The user environment variables: the whole set, as Lambda's `Environment` replaces it.
    pub env: Option<Vec<(String, String)>>,
    /// The memory size in MB (128 to 10,240).
    pub memory_mb: Option<u32>,
    /// The invocation timeout, in whole seconds (1 to 900).
    pub timeout: Option<Duration>,
}

/// One version's configuration, as `GetFunctionConfiguration` describes it.
#[derive(Debug, Clone)]
pub struct VersionInfo {
    /// The ARN as it was asked for: unqualified, or qualified by the version or an alias.
    pub arn: String,
    /// The configuration; [`Function::version`] is `$LATEST` or the version number.
    pub function: Function,
    /// The version's description.
    pub description: String,
    /// The base64 SHA-256 of the bootstrap binary.
    pub code_sha256: String,
    /// The bootstrap binary's size in bytes.
    pub code_size: u64,
    /// Changes with every change of the version (only `$LATEST` changes).
    pub revision_id: String,
    /// When the version was last changed, as Lambda spells it (`2024-05-01T12:00:00.000+0000`).
    pub last_modified: String,
}

impl VersionInfo {
    /// `$LATEST` or the version number.
    pub fn version(&self) -> &str {
        &self.function.version
    }

    /// The `FunctionConfiguration` document.
    pub fn to_json(&self) -> Value {
        let f = &self.function;
        let mut doc = json!({
            "FunctionName": f.name,
            "FunctionArn": self.arn,
            "Runtime": "provided.al2023",
            "Role": format!("arn:aws:iam::{}:role/lift-local-lambda", f.account),
            "Handler": "bootstrap",
            "CodeSize": self.code_size,
            "Description": self.description,
            "Timeout": f.timeout.as_secs(),
            "MemorySize": f.memory_mb,
            "LastModified": self.last_modified,
            "CodeSha256": self.code_sha256,
            "Version": f.version,
            "TracingConfig": {"Mode": if f.active_tracing { "Active" } else { "PassThrough" }},
            "RevisionId": self.revision_id,
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": ["x86_64"],
            "LoggingConfig": {"LogFormat": "Text", "LogGroup": format!("/aws/lambda/{}", f.name)},
        });
        if !f.env.is_empty() {
            let vars: Map<String, Value> = f.env.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            doc["Environment"] = json!({ "Variables": vars });
        }
        doc
    }
}

/// An alias: a name for a version, optionally sending a share of invocations to another.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasInfo {
    /// `arn:aws:lambda:region:account:function:name:alias`.
    pub arn: String,
    /// The alias name.
    pub name: String,
    /// The primary version.
    pub function_version: String,
    /// The additional version and the share of invocations (0.0 to 1.0) it gets.
    pub routing: Option<(String, f64)>,
    /// The description.
    pub description: String,
    /// Changes with every change of the alias.
    pub revision_id: String,
}

impl AliasInfo {
    /// The `AliasConfiguration` document.
    pub fn to_json(&self) -> Value {
        let mut doc = json!({
            "AliasArn": self.arn,
            "Name": self.name,
            "FunctionVersion": self.function_version,
            "Description": self.description,
            "RevisionId": self.revision_id,
        });
        if let Some((version, weight)) = &self.routing {
            doc["RoutingConfig"] = json!({"AdditionalVersionWeights": {version.as_str(): weight}});
        }
        doc
    }
}

/// A control-plane request Lambda refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// No such function, version or alias.
    #[error("resource not found: {0}")]
    ResourceNotFound(String),
    /// A value Lambda does not accept.
    #[error("invalid parameter value: {0}")]
    InvalidParameterValue(String),
    /// The `RevisionId` (or `CodeSha256`) given is not the current one.
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    /// The resource exists already.
    #[error("resource conflict: {0}")]
    ResourceConflict(String),
}

impl ControlError {
    /// The HTTP status the control plane answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::ResourceNotFound(_) => 404,
            Self::InvalidParameterValue(_) => 400,
            Self::PreconditionFailed(_) => 412,
            Self::ResourceConflict(_) => 409,
        }
    }

    /// The error code (`x-amzn-ErrorType`).
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::ResourceNotFound(_) => "ResourceNotFoundException",
            Self::InvalidParameterValue(_) => "InvalidParameterValueException",
            Self::PreconditionFailed(_) => "PreconditionFailedException",
            Self::ResourceConflict(_) => "ResourceConflictException",
        }
    }

    /// The body, as Lambda's REST-JSON protocol spells it.
    pub fn body(&self) -> Value {
        let message = match self {
            Self::ResourceNotFound(m)
            | Self::InvalidParameterValue(m)
            | Self::PreconditionFailed(m)
            | Self::ResourceConflict(m) => m,
        };
        json!({"Type": "User", "message": message})
    }
}

/// Where an invocation goes: the pool of the version that runs it, and the ARN the
/// function sees as invoked.
pub(super) struct Route {
    pub(super) pool: Arc<FunctionPool>,
    pub(super) invoked_arn: String,
}

/// A function's versions and aliases.
#[derive(Debug)]
pub(super) struct Versions {
    latest: Arc<FunctionPool>,
    latest_revision: Revision,
    published: BTreeMap<u64, Published>,
    /// Configurations `$LATEST` has left whose sandboxes are still running.
    retired: Vec<Arc<FunctionPool>>,
    aliases: BTreeMap<String, AliasInfo>,
    /// Shared by every pool of the function (reserved concurrency).
    busy: Arc<AtomicUsize>,
    /// The bootstrap's hash, kept while its size and mtime stay the same.
    code: Option<Code>,
}

#[derive(Debug, Clone)]
struct Revision {
    id: String,
    last_modified: String,
}

#[derive(Debug)]
struct Published {
    pool: Arc<FunctionPool>,
    info: VersionInfo,
    /// What makes two publications the same: code and configuration.
    fingerprint: String,
}

#[derive(Debug, Clone, PartialEq)]
struct Code {
    size: u64,
    modified: Option<SystemTime>,
    sha256: String,
}

impl Versions {
    pub(super) fn new(function: Function) -> Self {
        let busy = Arc::new(AtomicUsize::new(0));
        let latest = Arc::new(FunctionPool::new(function, Arc::new(AtomicU64::new(0)), busy.clone()));
        Self {
            latest,
            latest_revision: Revision::new(),
            published: BTreeMap::new(),
            retired: Vec::new(),
            aliases: BTreeMap::new(),
            busy,
            code: None,
        }
    }

    /// The pool of `$LATEST` as configured now.
    pub(super) fn latest(&self) -> &Arc<FunctionPool> {
        &self.latest
    }

    /// `$LATEST` and the published versions.
    pub(super) fn current_pools(&self) -> impl Iterator<Item = &Arc<FunctionPool>> {
        std::iter::once(&self.latest).chain(self.published.values().map(|p| &p.pool))
    }

    /// Every pool, retired configurations included.
    pub(super) fn pools(&self) -> Vec<Arc<FunctionPool>> {
        self.current_pools().chain(&self.retired).cloned().collect()
    }

    /// Drops retired configurations whose last sandbox is gone.
    pub(super) fn forget_retired(&mut self) {
        self.retired.retain(|p| !p.is_empty());
    }

    fn arn(&self, qualifier: Option<&str>) -> String {
        let f = &self.latest.function;
        qualifier.map_or_else(|| f.arn(), |q| f.qualified_arn(q))
    }

    fn not_found(&self, qualifier: Option<&str>) -> ControlError {
        ControlError::ResourceNotFound(format!("Function not found: {}", self.arn(qualifier)))
    }

    /// The published version `qualifier`, when it is one.
    fn published(&self, qualifier: &str) -> Option<&Published> {
        let n: u64 = qualifier.parse().ok()?;
        self.published.get(&n).filter(|_| n.to_string() == qualifier)
    }

    /// The pool a qualifier runs in: `$LATEST`, a version, or an alias (drawn by its weights).
    fn route(&self, qualifier: Option<&str>) -> Option<Arc<FunctionPool>> {
        let Some(qualifier) = qualifier else { return Some(self.latest.clone()) };
        if qualifier == LATEST {
            return Some(self.latest.clone());
        }
        if let Some(version) = self.published(qualifier) {
            return Some(version.pool.clone());
        }
        let alias = self.aliases.get(qualifier)?;
        let version = match &alias.routing {
            Some((additional, weight)) if rand::random::<f64>() < *weight => additional,
            _ => &alias.function_version,
        };
        if version == LATEST {
            return Some(self.latest.clone());
        }
        self.published(version).map(|v| v.pool.clone())
    }

    /// The configuration of a version, or of the version an alias names.
    fn info(&self, qualifier: Option<&str>, code: &Code) -> Result<VersionInfo, ControlError> {
        let version = match qualifier {
            None => LATEST,
            Some(q) if q == LATEST || self.published(q).is_some() => q,
            Some(q) => match self.aliases.get(q) {
                Some(alias) => alias.function_version.as_str(),
                None => return Err(self.not_found(qualifier)),
            },
        };
        let mut info = match self.published(version) {
            Some(published) => published.info.clone(),
            None => self.latest_info(code),
        };
        info.arn = self.arn(qualifier);
        Ok(info)
    }

    fn latest_info(&self, code: &Code) -> VersionInfo {
        VersionInfo {
            arn: self.arn(Some(LATEST)),
            function: self.latest.function.clone(),
            description: String::new(),
            code_sha256: code.sha256.clone(),
            code_size: code.size,
            revision_id: self.latest_revision.id.clone(),
            last_modified: self.latest_revision.last_modified.clone(),
        }
    }

    /// Checks that `version` names `$LATEST` or a published version.
    fn check_version(&self, version: &str) -> Result<(), ControlError> {
        if version == LATEST || self.published(version).is_some() {
            Ok(())
        } else {
            Err(self.not_found(Some(version)))
        }
    }
}

impl Revision {
    fn new() -> Self {
        Self { id: uuid::Uuid::new_v4().to_string(), last_modified: last_modified_now() }
    }
}

/// A change to an alias, as `CreateAlias` and `UpdateAlias` carry it.
#[derive(Debug, Default)]
struct AliasChange<'a> {
    version: Option<&'a str>,
    /// `Some(None)` removes the routing configuration.
    routing: Option<Option<(&'a str, f64)>>,
    description: Option<&'a str>,
    revision_id: Option<&'a str>,
}

impl LocalLambda {
    /// Changes `$LATEST`'s configuration, validated as the builder validates it; idle
    /// `$LATEST` sandboxes are killed so the next invocation runs the new configuration.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(lambda: lift_harness::lambda::LocalLambda) -> Result<(), Box<dyn std::error::Error>> {
    /// use lift_harness::lambda::FunctionUpdate;
    ///
    /// let env = vec![("MODE".to_owned(), "blue".to_owned())];
    /// let info = lambda.update_function_configuration("payments", FunctionUpdate { env: Some(env), ..Default::default() })?;
    /// assert_eq!(info.version(), "$LATEST");
    /// # Ok(()) }
    /// ```
    pub fn update_function_configuration(
        &self,
        name: &str,
        update: FunctionUpdate,
    ) -> Result<VersionInfo, ControlError> {
        self.update_latest(name, update, None)
    }

    fn update_latest(
        &self,
        name: &str,
        update: FunctionUpdate,
        revision_id: Option<&str>,
    ) -> Result<VersionInfo, ControlError> {
        let entry = self.entry(name)?;
        let code = self.code(entry);
        let (old, info) = {
            let mut versions = entry.write().expect("not poisoned");
            check_revision(revision_id, &versions.latest_revision.id)?;
            let mut function = versions.latest.function.clone();
            if let Some(env) = update.env {
                function.env = env;
            }
            if let Some(mb) = update.memory_mb {
                function.memory_mb = mb;
            }
            if let Some(timeout) = update.timeout {
                function.timeout = timeout;
            }
            function.validate().map_err(|e| ControlError::InvalidParameterValue(e.to_string()))?;
            let cold_starts = versions.latest.cold_starts.clone();
            let pool = Arc::new(FunctionPool::new(function, cold_starts, versions.busy.clone()));
            let old = std::mem::replace(&mut versions.latest, pool);
            versions.retired.push(old.clone());
            versions.latest_revision = Revision::new();
            let mut info = versions.latest_info(&code);
            info.arn = versions.arn(None);
            (old, info)
        };
        // Outside the lock: killing the idle sandboxes waits for their processes.
        old.retire();
        Ok(info)
    }

    /// Publishes `$LATEST` as the next version, a snapshot with sandboxes of its own; when
    /// neither code nor configuration changed since the last version, that version is the
    /// answer, as Lambda does.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(lambda: lift_harness::lambda::LocalLambda) -> Result<(), Box<dyn std::error::Error>> {
    /// let v1 = lambda.publish_version("payments", "first")?;
    /// assert_eq!(v1.version(), "1");
    /// assert_eq!(lambda.publish_version("payments", "again")?.version(), "1");
    /// # Ok(()) }
    /// ```
    pub fn publish_version(&self, name: &str, description: &str) -> Result<VersionInfo, ControlError> {
        self.publish(name, description, None, None)
    }

    fn publish(
        &self,
        name: &str,
        description: &str,
        revision_id: Option<&str>,
        code_sha256: Option<&str>,
    ) -> Result<VersionInfo, ControlError> {
        let entry = self.entry(name)?;
        let code = self.code(entry);
        let mut versions = entry.write().expect("not poisoned");
        check_revision(revision_id, &versions.latest_revision.id)?;
        if code_sha256.is_some_and(|sha| sha != code.sha256) {
            return Err(ControlError::PreconditionFailed(format!(
                "CodeSHA256 ({}) is different from current CodeSHA256 in $LATEST ({}). Please try again from GetFunction",
                code_sha256.unwrap_or_default(),
                code.sha256
            )));
        }
        let fingerprint = fingerprint(&versions.latest.function, &code);
        if let Some((_, last)) = versions.published.last_key_value() {
            if last.fingerprint == fingerprint {
                return Ok(last.info.clone());
            }
        }
        // Numbers are never reused: the next is one past the highest ever published.
        let number = versions.published.last_key_value().map_or(1, |(n, _)| n + 1);
        let mut function = versions.latest.function.clone();
        function.version = number.to_string();
        let info = VersionInfo {
            arn: function.qualified_arn(&function.version),
            function: function.clone(),
            description: description.to_owned(),
            code_sha256: code.sha256.clone(),
            code_size: code.size,
            revision_id: uuid::Uuid::new_v4().to_string(),
            last_modified: last_modified_now(),
        };
        let pool = Arc::new(FunctionPool::new(function, Arc::new(AtomicU64::new(0)), versions.busy.clone()));
        versions.published.insert(number, Published { pool, info: info.clone(), fingerprint });
        Ok(info)
    }

    /// The configuration of `target`: `name`, `name:$LATEST`, `name:3`, `name:live` or an ARN.
    pub fn function_configuration(&self, target: &str) -> Result<VersionInfo, ControlError> {
        let (name, qualifier) = parse_target(target);
        let entry = self.entry(name)?;
        let code = self.code(entry);
        let versions = entry.read().expect("not poisoned");
        versions.info(qualifier, &code)
    }

    /// `$LATEST` and every published version of `name`, oldest first.
    pub fn versions(&self, name: &str) -> Result<Vec<VersionInfo>, ControlError> {
        let entry = self.entry(name)?;
        let code = self.code(entry);
        let versions = entry.read().expect("not poisoned");
        let latest = versions.latest_info(&code);
        Ok(std::iter::once(latest).chain(versions.published.values().map(|p| p.info.clone())).collect())
    }

    /// Creates alias `alias` of `name` for `version`, with an optional additional version
    /// and the share of invocations (0.0 to 1.0) it gets.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run(lambda: lift_harness::lambda::LocalLambda) -> Result<(), Box<dyn std::error::Error>> {
    /// lambda.create_alias("payments", "live", "1", Some(("2", 0.1)))?;
    /// // 10 % of `payments:live` now runs version 2.
    /// # Ok(()) }
    /// ```
    pub fn create_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
        routing: Option<(&str, f64)>,
    ) -> Result<AliasInfo, ControlError> {
        let change = AliasChange { version: Some(version), routing: Some(routing), ..AliasChange::default() };
        self.put_alias(name, alias, change, true)
    }

    /// Changes alias `alias` of `name`: its version, its routing (`Some(None)` removes it),
    /// only if its revision is still `revision_id` when one is given.
    pub fn update_alias(
        &self,
        name: &str,
        alias: &str,
        version: Option<&str>,
        routing: Option<Option<(&str, f64)>>,
        revision_id: Option<&str>,
    ) -> Result<AliasInfo, ControlError> {
        let change = AliasChange { version, routing, description: None, revision_id };
        self.put_alias(name, alias, change, false)
    }

    /// Alias `alias` of `name`.
    pub fn get_alias(&self, name: &str, alias: &str) -> Result<AliasInfo, ControlError> {
        let entry = self.entry(name)?;
        let versions = entry.read().expect("not poisoned");
        versions.aliases.get(alias).cloned().ok_or_else(|| alias_not_found(&versions, alias))
    }

    /// Every alias of `name`, by name.
    pub fn aliases(&self, name: &str) -> Result<Vec<AliasInfo>, ControlError> {
        let entry = self.entry(name)?;
        let versions = entry.read().expect("not poisoned");
        Ok(versions.aliases.values().cloned().collect())
    }

    /// Deletes alias `alias` of `name`.
    pub fn delete_alias(&self, name: &str, alias: &str) -> Result<(), ControlError> {
        let entry = self.entry(name)?;
        let mut versions = entry.write().expect("not poisoned");
        match versions.aliases.remove(alias) {
            Some(_) => Ok(()),
            None => Err(alias_not_found(&versions, alias)),
        }
    }

    fn put_alias(
        &self,
        name: &str,
        alias: &str,
        change: AliasChange<'_>,
        create: bool,
    ) -> Result<AliasInfo, ControlError> {
        let entry = self.entry(name)?;
        check_alias_name(alias)?;
        let mut versions = entry.write().expect("not poisoned");
        let current = versions.aliases.get(alias).cloned();
        let mut next = match (current, create) {
            (Some(_), true) => {
                return Err(ControlError::ResourceConflict(format!(
                    "Alias already exists: {}",
                    versions.arn(Some(alias))
                )))
            }
            (None, false) => return Err(alias_not_found(&versions, alias)),
            (Some(current), false) => {
                check_revision(change.revision_id, &current.revision_id)?;
                current
            }
            (None, true) => AliasInfo {
                arn: versions.arn(Some(alias)),
                name: alias.to_owned(),
                function_version: String::new(),
                routing: None,
                description: String::new(),
                revision_id: String::new(),
            },
        };
        if let Some(version) = change.version {
            versions.check_version(version)?;
            next.function_version = version.to_owned();
        }
        if let Some(routing) = change.routing {
            next.routing = routing.map(|(v, w)| (v.to_owned(), w));
        }
        if let Some(description) = change.description {
            next.description = description.to_owned();
        }
        if let Some((additional, weight)) = &next.routing {
            check_routing(&versions, &next.function_version, additional, *weight)?;
        }
        next.revision_id = uuid::Uuid::new_v4().to_string();
        versions.aliases.insert(alias.to_owned(), next.clone());
        Ok(next)
    }

    /// Where an invocation of `target` goes (`name`, `name:qualifier` or an ARN).
    pub(super) fn route(&self, target: &str) -> Result<Route, InvokeError> {
        let (name, qualifier) = parse_target(target);
        let not_found = || {
            let region = self.region();
            let arn = format!("arn:aws:lambda:{region}:000000000000:function:{name}");
            InvokeError::ResourceNotFound(qualifier.map_or_else(|| arn.clone(), |q| format!("{arn}:{q}")))
        };
        let Some(entry) = self.inner.functions.get(name) else { return Err(not_found()) };
        let versions = entry.read().expect("not poisoned");
        let invoked_arn = versions.arn(qualifier);
        match versions.route(qualifier) {
            Some(pool) => Ok(Route { pool, invoked_arn }),
            None => Err(InvokeError::ResourceNotFound(invoked_arn)),
        }
    }

    fn entry(&self, name: &str) -> Result<&RwLock<Versions>, ControlError> {
        self.inner.functions.get(name).ok_or_else(|| {
            let region = self.region();
            ControlError::ResourceNotFound(format!(
                "Function not found: arn:aws:lambda:{region}:000000000000:function:{name}"
            ))
        })
    }

    /// The bootstrap's size and hash, hashed again only when the file changed.
    fn code(&self, entry: &RwLock<Versions>) -> Code {
        let (bin, cached) = {
            let versions = entry.read().expect("not poisoned");
            (versions.latest.function.bin.clone(), versions.code.clone())
        };
        let meta = std::fs::metadata(&bin).ok();
        let (size, modified) = (meta.as_ref().map_or(0, |m| m.len()), meta.and_then(|m| m.modified().ok()));
        if let Some(code) = cached.filter(|c| c.size == size && c.modified == modified) {
            return code;
        }
        let code = Code { size, modified, sha256: sha256_file(&bin) };
        entry.write().expect("not poisoned").code = Some(code.clone());
        code
    }
}

/// `name[:qualifier]` out of a name, `name:qualifier`, a partial ARN
/// (`123456789012:function:name`) or an ARN.
pub(crate) fn parse_target(target: &str) -> (&str, Option<&str>) {
    let rest = target.split_once("function:").map_or(target, |(_, rest)| rest);
    match rest.split_once(':') {
        Some((name, qualifier)) => (name, Some(qualifier)),
        None => (rest, None),
    }
}

fn check_revision(given: Option<&str>, current: &str) -> Result<(), ControlError> {
    match given {
        Some(given) if given != current => Err(ControlError::PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".to_owned(),
        )),
        _ => Ok(()),
    }
}

/// Alias names are 1 to 128 letters, digits, `-` and `_`, and not all digits (a version).
fn check_alias_name(alias: &str) -> Result<(), ControlError> {
    let chars_ok = alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let ok =
        !alias.is_empty() && alias.len() <= 128 && chars_ok && !alias.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(ControlError::InvalidParameterValue(format!(
            "1 validation error detected: Value '{alias}' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: (?!^[0-9]+$)([a-zA-Z0-9-_]+)"
        )))
    }
}

fn check_routing(
    versions: &Versions,
    primary: &str,
    additional: &str,
    weight: f64,
) -> Result<(), ControlError> {
    let invalid = |m: String| Err(ControlError::InvalidParameterValue(m));
    if !(0.0..=1.0).contains(&weight) {
        return invalid(format!(
            "1 validation error detected: Value '{{{additional}={weight}}}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0]"
        ));
    }
    if primary == LATEST || additional == LATEST {
        return invalid("$LATEST is not supported for an alias pointing to more than 1 version".to_owned());
    }
    if additional == primary {
        return invalid(format!(
            "Invalid function version {additional}. Function version {additional} is already included in routing configuration."
        ));
    }
    versions.check_version(additional)
}

fn alias_not_found(versions: &Versions, alias: &str) -> ControlError {
    ControlError::ResourceNotFound(format!("Alias not found: {}", versions.arn(Some(alias))))
}

/// What makes two publications the same: the code and every setting a version keeps.
fn fingerprint(f: &Function, code: &Code) -> String {
    let setting = format!(
        "{}|{}|{}|{:?}|{:?}|{}",
        code.sha256,
        f.memory_mb,
        f.timeout.as_millis(),
        f.env,
        f.reserved_concurrency,
        f.active_tracing
    );
    hex::encode(Sha256::digest(setting.as_bytes()))
}

/// The base64 SHA-256 of a file, as Lambda's `CodeSha256` (of an unreadable file: of nothing).
fn sha256_file(path: &Path) -> String {
    let mut hasher = Sha256::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    base64::engine::general_purpose::STANDARD.encode(hasher.finalize())
}

/// Now, as Lambda's `LastModified` (`2024-05-01T12:00:00.000+0000`).
fn last_modified_now() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

// --- The REST-JSON operations -------------------------------------------------------------

/// The control-plane operations, by method and path.
enum Operation {
    PublishVersion,
    ListVersions,
    GetConfiguration,
    UpdateConfiguration,
    CreateAlias,
    ListAliases,
    GetAlias(String),
    UpdateAlias(String),
    DeleteAlias(String),
}

/// Answers a control-plane request; anything else is `UnknownOperationException`.
pub(super) fn handle(lambda: &LocalLambda, req: &Req, path: &str) -> Resp {
    let segments: Vec<&str> =
        path.strip_prefix("/2015-03-31/functions/").map(|rest| rest.split('/').collect()).unwrap_or_default();
    let method = req.method();
    let operation = match segments.as_slice() {
        [_, "versions"] if method == http::Method::POST => Operation::PublishVersion,
        [_, "versions"] if method == http::Method::GET => Operation::ListVersions,
        [_, "configuration"] if method == http::Method::GET => Operation::GetConfiguration,
        [_, "configuration"] if method == http::Method::PUT => Operation::UpdateConfiguration,
        [_, "aliases"] if method == http::Method::POST => Operation::CreateAlias,
        [_, "aliases"] if method == http::Method::GET => Operation::ListAliases,
        [_, "aliases", a] if method == http::Method::GET => Operation::GetAlias((*a).to_owned()),
        [_, "aliases", a] if method == http::Method::PUT => Operation::UpdateAlias((*a).to_owned()),
        [_, "aliases", a] if method == http::Method::DELETE => Operation::DeleteAlias((*a).to_owned()),
        _ => return error(404, "UnknownOperationException", "Unknown operation"),
    };
    if let Some(refusal) = refuse_unsigned(req) {
        return refusal;
    }
    let (name, arn_qualifier) = parse_target(segments[0]);
    let query = query(req);
    let body = match body(req) {
        Ok(body) => body,
        Err(err) => return control_error(&err),
    };
    let s = |key: &str| body[key].as_str();
    let answer = match operation {
        Operation::PublishVersion => lambda
            .publish(name, s("Description").unwrap_or_default(), s("RevisionId"), s("CodeSha256"))
            .map(|info| (201, info.to_json())),
        Operation::ListVersions => lambda.versions(name).map(|all| {
            let versions: Vec<Value> = all.iter().map(VersionInfo::to_json).collect();
            (200, json!({ "Versions": versions }))
        }),
        Operation::GetConfiguration => qualifier(arn_qualifier, query.get("Qualifier").map(String::as_str))
            .and_then(|q| {
                let target = q.map_or_else(|| name.to_owned(), |q| format!("{name}:{q}"));
                lambda.function_configuration(&target)
            })
            .map(|info| (200, info.to_json())),
        Operation::UpdateConfiguration => function_update(&body)
            .and_then(|update| lambda.update_latest(name, update, s("RevisionId")))
            .map(|info| (200, info.to_json())),
        Operation::CreateAlias => routing(&body).and_then(|routing| {
            let alias = s("Name").ok_or_else(|| missing("Name"))?;
            let version = s("FunctionVersion").ok_or_else(|| missing("FunctionVersion"))?;
            let change = AliasChange {
                version: Some(version),
                routing: Some(routing.flatten()),
                description: s("Description"),
                revision_id: None,
            };
            lambda.put_alias(name, alias, change, true).map(|a| (201, a.to_json()))
        }),
        Operation::ListAliases => lambda.aliases(name).map(|all| {
            let wanted = query.get("FunctionVersion");
            let aliases: Vec<Value> = all
                .iter()
                .filter(|a| wanted.is_none_or(|v| *v == a.function_version))
                .map(AliasInfo::to_json)
                .collect();
            (200, json!({ "Aliases": aliases }))
        }),
        Operation::GetAlias(alias) => lambda.get_alias(name, &alias).map(|a| (200, a.to_json())),
        Operation::UpdateAlias(alias) => routing(&body).and_then(|routing| {
            let change = AliasChange {
                version: s("FunctionVersion"),
                routing,
                description: s("Description"),
                revision_id: s("RevisionId"),
            };
            lambda.put_alias(name, &alias, change, false).map(|a| (200, a.to_json()))
        }),
        Operation::DeleteAlias(alias) => lambda.delete_alias(name, &alias).map(|()| (204, Value::Null)),
    };
    match answer {
        Ok((204, _)) => http_server::bytes(204, "application/json", bytes::Bytes::new()),
        Ok((status, doc)) => http_server::json(status, &doc),
        Err(err) => control_error(&err),
    }
}

/// The qualifier of a function name that may carry one and of the `Qualifier` parameter;
/// when both are there they must agree.
pub(super) fn qualifier<'a>(
    from_name: Option<&'a str>,
    from_query: Option<&'a str>,
) -> Result<Option<&'a str>, ControlError> {
    match (from_name, from_query) {
        (Some(a), Some(b)) if a != b => Err(ControlError::InvalidParameterValue(
            "The derived qualifier from the function name does not match the specified qualifier.".to_owned(),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// The refusal of a request without a SigV4 `Authorization` header scoped to the `lambda`
/// service, as every SDK sends; the signature itself is not checked (the local endpoints
/// take any credentials).
fn refuse_unsigned(req: &Req) -> Option<Resp> {
    let Some(auth) = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Some(error(403, "MissingAuthenticationTokenException", "Missing Authentication Token"));
    };
    let scope = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .and_then(|rest| rest.split(',').map(str::trim).find_map(|p| p.strip_prefix("Credential=")));
    let Some(scope) = scope else {
        return Some(error(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
        ));
    };
    match scope.split('/').collect::<Vec<_>>().as_slice() {
        [_, _, _, "lambda", "aws4_request"] => None,
        [_, _, _, service, _] => Some(error(
            403,
            "InvalidSignatureException",
            &format!("Credential should be scoped to correct service: 'lambda'. (not '{service}')"),
        )),
        _ => Some(error(403, "InvalidSignatureException", "Credential should be scoped to a valid region.")),
    }
}

/// The query parameters, decoded.
pub(super) fn query(req: &Req) -> std::collections::HashMap<String, String> {
    let decode = |s: &str| super::invoke_api::percent_decode(&s.replace('+', " "));
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// The JSON body (an empty one is `{}`).
fn body(req: &Req) -> Result<Value, ControlError> {
    if req.body().iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(req.body()) {
        Ok(doc @ Value::Object(_)) => Ok(doc),
        Ok(_) => Err(ControlError::InvalidParameterValue("The request body must be a JSON object.".into())),
        Err(err) => Err(ControlError::InvalidParameterValue(format!("Could not parse request body: {err}"))),
    }
}

fn missing(field: &str) -> ControlError {
    ControlError::InvalidParameterValue(format!("{field} is required."))
}

/// `UpdateFunctionConfiguration`'s `Environment`, `MemorySize` and `Timeout`.
fn function_update(body: &Value) -> Result<FunctionUpdate, ControlError> {
    let invalid = |field: &str| ControlError::InvalidParameterValue(format!("Invalid value for {field}."));
    let mut update = FunctionUpdate::default();
    if let Some(environment) = body.get("Environment") {
        let mut env = Vec::new();
        for (k, v) in environment["Variables"].as_object().into_iter().flatten() {
            env.push((k.clone(), v.as_str().ok_or_else(|| invalid("Environment.Variables"))?.to_owned()));
        }
        update.env = Some(env);
    }
    if let Some(mb) = body.get("MemorySize") {
        let mb = mb.as_u64().and_then(|mb| u32::try_from(mb).ok()).ok_or_else(|| invalid("MemorySize"))?;
        update.memory_mb = Some(mb);
    }
    if let Some(secs) = body.get("Timeout") {
        update.timeout = Some(Duration::from_secs(secs.as_u64().ok_or_else(|| invalid("Timeout"))?));
    }
    Ok(update)
}

/// The `RoutingConfig` of an alias request: absent (`None`), empty (`Some(None)`: no
/// routing), or one additional version and its weight.
fn routing(body: &Value) -> Result<Option<Option<(&str, f64)>>, ControlError> {
    let Some(config) = body.get("RoutingConfig").filter(|c| !c.is_null()) else { return Ok(None) };
    let weights = config["AdditionalVersionWeights"].as_object();
    let mut entries = weights.into_iter().flatten();
    let Some((version, weight)) = entries.next() else { return Ok(Some(None)) };
    if entries.next().is_some() {
        return Err(ControlError::InvalidParameterValue(
            "Number of items in AdditionalVersionWeights cannot be greater than 1".to_owned(),
        ));
    }
    let weight = weight.as_f64().ok_or_else(|| {
        ControlError::InvalidParameterValue("AdditionalVersionWeights values must be numbers.".to_owned())
    })?;
    Ok(Some(Some((version.as_str(), weight))))
}

pub(super) fn control_error(err: &ControlError) -> Resp {
    let mut resp = http_server::json(err.status(), &err.body());
    resp.headers_mut().insert("x-amzn-errortype", http::HeaderValue::from_static(err.error_type()));
    resp
}

/// An error answer with Lambda's `x-amzn-ErrorType` header and `{"Type", "message"}` body.
pub(super) fn error(status: u16, kind: &'static str, message: &str) -> Resp {
    let mut resp = http_server::json(status, &json!({"Type": "User", "message": message}));
    resp.headers_mut().insert("x-amzn-errortype", http::HeaderValue::from_static(kind));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_split_into_name_and_qualifier() {
        assert_eq!(parse_target("payments"), ("payments", None));
        assert_eq!(parse_target("payments:live"), ("payments", Some("live")));
        assert_eq!(parse_target("payments:$LATEST"), ("payments", Some("$LATEST")));
        assert_eq!(
            parse_target("arn:aws:lambda:us-east-1:123456789012:function:payments"),
            ("payments", None)
        );
        assert_eq!(
            parse_target("arn:aws:lambda:us-east-1:123456789012:function:payments:3"),
            ("payments", Some("3"))
        );
        assert_eq!(parse_target("123456789012:function:payments:live"), ("payments", Some("live")));
    }

    #[test]
    fn alias_names_are_not_versions() {
        assert!(check_alias_name("live").is_ok());
        assert!(check_alias_name("blue-green_2").is_ok());
        assert!(check_alias_name("12").is_err());
        assert!(check_alias_name("$LATEST").is_err());
        assert!(check_alias_name("").is_err());
    }

    #[test]
    fn routing_configs_are_read_as_lambda_sends_them() {
        assert_eq!(routing(&json!({})).unwrap(), None);
        assert_eq!(routing(&json!({"RoutingConfig": {}})).unwrap(), Some(None));
        assert_eq!(routing(&json!({"RoutingConfig": {"AdditionalVersionWeights": {}}})).unwrap(), Some(None));
        let one = json!({"RoutingConfig": {"AdditionalVersionWeights": {"2": 0.25}}});
        assert_eq!(routing(&one).unwrap(), Some(Some(("2", 0.25))));
        let two = json!({"RoutingConfig": {"AdditionalVersionWeights": {"2": 0.25, "3": 0.1}}});
        assert!(matches!(routing(&two), Err(ControlError::InvalidParameterValue(_))));
    }

    #[test]
    fn qualifiers_from_name_and_parameter_must_agree() {
        assert_eq!(qualifier(Some("1"), None).unwrap(), Some("1"));
        assert_eq!(qualifier(None, Some("live")).unwrap(), Some("live"));
        assert_eq!(qualifier(Some("1"), Some("1")).unwrap(), Some("1"));
        assert!(qualifier(Some("1"), Some("2")).is_err());
    }

    #[test]
    fn last_modified_has_lambdas_shape() {
        let t = last_modified_now();
        assert_eq!(t.len(), "2024-05-01T12:00:00.000+0000".len(), "{t}");
        assert!(t.ends_with("+0000"));
    }
}
