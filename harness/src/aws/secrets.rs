//! Secrets Manager mock: `GetSecretValue` over AWS JSON 1.1.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rand::Rng as _;
use serde_json::{json, Value};
use wiremock::{Request, ResponseTemplate};

use super::endpoint::{endpoint_methods, signed_endpoint_methods, Endpoint, Service};
use super::fault::{lock, AwsError};
use super::{wire, MockError, ACCOUNT_ID};

/// Staging label of the current version of a secret.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// Staging label of the version a rotation replaced.
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// A mocked Secrets Manager endpoint.
#[derive(Debug)]
pub struct SecretsManagerMock {
    endpoint: Endpoint,
    store: Arc<SecretStore>,
}

endpoint_methods!(SecretsManagerMock);
signed_endpoint_methods!(SecretsManagerMock);

/// The version of a secret that a put or rotation created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretVersion {
    /// Full ARN of the secret, with AWS's random six-character suffix.
    pub arn: String,
    /// Name of the secret.
    pub name: String,
    /// Id of the new version.
    pub version_id: String,
}

#[derive(Debug, Clone)]
enum SecretValue {
    Text(String),
    Binary(Vec<u8>),
}

#[derive(Debug)]
struct Version {
    id: String,
    value: SecretValue,
    stages: Vec<String>,
    created: f64,
}

#[derive(Debug)]
struct Secret {
    name: String,
    arn: String,
    versions: Vec<Version>,
}

#[derive(Debug)]
struct SecretStore {
    region: String,
    secrets: Mutex<Vec<Secret>>,
}

impl SecretsManagerMock {
    /// Starts a Secrets Manager mock whose ARNs name `region`.
    pub async fn start(region: &str) -> Self {
        let store = Arc::new(SecretStore { region: region.to_owned(), secrets: Mutex::default() });
        let endpoint = Endpoint::start(store.clone()).await;
        Self { endpoint, store }
    }

    /// Stores a string secret, creating it or adding a new current version.
    pub fn put_secret(&self, name: &str, value: &str) -> SecretVersion {
        self.store.put(name, SecretValue::Text(value.to_owned()))
    }

    /// Stores a binary secret (`SecretBinary`), creating it or adding a new current version.
    pub fn put_secret_binary(&self, name: &str, value: &[u8]) -> SecretVersion {
        self.store.put(name, SecretValue::Binary(value.to_vec()))
    }

    /// Rotates an existing secret to `value`: a new `AWSCURRENT` version, the old one
    /// becomes `AWSPREVIOUS`.
    pub fn rotate_secret(&self, name: &str, value: &str) -> Result<SecretVersion, MockError> {
        if self.arn(name).is_none() {
            return Err(MockError::UnknownSecret(name.to_owned()));
        }
        Ok(self.put_secret(name, value))
    }

    /// The full ARN of secret `name`, if it exists.
    pub fn arn(&self, name: &str) -> Option<String> {
        let secrets = lock(&self.store.secrets);
        secrets.iter().find(|s| s.name == name).map(|s| s.arn.clone())
    }
}

impl SecretStore {
    fn put(&self, name: &str, value: SecretValue) -> SecretVersion {
        let mut secrets = lock(&self.secrets);
        let index = match secrets.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                secrets.push(Secret { name: name.to_owned(), arn: self.new_arn(name), versions: Vec::new() });
                secrets.len() - 1
            }
        };
        let secret = &mut secrets[index];
        for version in &mut secret.versions {
            version.stages.retain(|s| s != AWSPREVIOUS);
            for stage in &mut version.stages {
                if stage == AWSCURRENT {
                    AWSPREVIOUS.clone_into(stage);
                }
            }
        }
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as f64 / 1000.0)
            .unwrap_or_default();
        let version_id = uuid::Uuid::new_v4().to_string();
        secret.versions.push(Version {
            id: version_id.clone(),
            value,
            stages: vec![AWSCURRENT.to_owned()],
            created,
        });
        SecretVersion { arn: secret.arn.clone(), name: secret.name.clone(), version_id }
    }

    fn new_arn(&self, name: &str) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut rng = rand::thread_rng();
        let suffix: String = (0..6).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
        format!("arn:aws:secretsmanager:{}:{ACCOUNT_ID}:secret:{name}-{suffix}", self.region)
    }

    fn get_secret_value(&self, body: &Value) -> Result<Value, AwsError> {
        let text = |key: &str| body.get(key).and_then(Value::as_str);
        let id = text("SecretId").ok_or_else(|| {
            wire::validation(
                "1 validation error detected: Value null at 'secretId' failed to satisfy \
                 constraint: Member must not be null",
            )
        })?;
        let secrets = lock(&self.secrets);
        let secret = secrets
            .iter()
            .find(|s| matches_id(s, id))
            .ok_or_else(|| not_found("Secrets Manager can't find the specified secret."))?;
        let version = match (text("VersionId"), text("VersionStage")) {
            (Some(version_id), stage) => secret
                .versions
                .iter()
                .find(|v| v.id == version_id)
                .filter(|v| stage.is_none_or(|s| v.stages.iter().any(|x| x == s)))
                .ok_or_else(|| {
                    not_found(format!(
                        "Secrets Manager can't find the specified secret value for VersionId: \
                         {version_id}"
                    ))
                })?,
            (None, stage) => {
                let stage = stage.unwrap_or(AWSCURRENT);
                secret.versions.iter().find(|v| v.stages.iter().any(|s| s == stage)).ok_or_else(|| {
                    not_found(format!(
                        "Secrets Manager can't find the specified secret value for staging \
                             label: {stage}"
                    ))
                })?
            }
        };
        let mut answer = json!({
            "ARN": secret.arn,
            "Name": secret.name,
            "VersionId": version.id,
            "VersionStages": version.stages,
            "CreatedDate": version.created,
        });
        match &version.value {
            SecretValue::Text(text) => answer["SecretString"] = json!(text),
            SecretValue::Binary(bytes) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
                answer["SecretBinary"] = json!(encoded);
            }
        }
        Ok(answer)
    }
}

/// Whether `id` names the secret: its name, its full ARN, or its ARN without the suffix.
fn matches_id(secret: &Secret, id: &str) -> bool {
    let partial_arn = secret.arn.rsplit_once('-').map(|(head, _)| head);
    secret.name == id || secret.arn == id || partial_arn == Some(id)
}

fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ResourceNotFoundException", message)
}

impl Service for SecretStore {
    fn signing_name(&self) -> &'static str {
        "secretsmanager"
    }

    fn handle(&self, operation: &str, request: &Request) -> ResponseTemplate {
        let result = match (wire::target(request), operation) {
            (Some(("secretsmanager", _)), "GetSecretValue") => {
                match serde_json::from_slice::<Value>(&request.body) {
                    Ok(body) => self.get_secret_value(&body),
                    Err(_) => Err(wire::serialization("the request body is not valid JSON")),
                }
            }
            _ => Err(wire::unknown_operation()),
        };
        match result {
            Ok(body) => wire::json_ok(wire::JSON_1_1, &body),
            Err(error) => self.error(request, &error),
        }
    }

    fn error(&self, _request: &Request, error: &AwsError) -> ResponseTemplate {
        wire::json_error(wire::JSON_1_1, "Message", error)
    }
}
