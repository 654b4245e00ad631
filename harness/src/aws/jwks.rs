//! JWKS issuer mock: OpenID discovery, a JWK set, and tokens signed with its keys.
//!
//! The key pairs are test-only keys shipped under `harness/tests/fixtures/keys/`, because
//! generating RSA keys at run time is too slow in debug builds.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use wiremock::{Request, ResponseTemplate};

use super::endpoint::{endpoint_methods, Endpoint, Service};
use super::fault::{lock, AwsError};
use super::MockError;

/// Path of the OpenID discovery document.
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// Path of the JWK set.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Operation name recorded for, and faultable on, the discovery document.
pub const GET_OPENID_CONFIGURATION: &str = "GetOpenIdConfiguration";
/// Operation name recorded for, and faultable on, the JWK set.
pub const GET_JWKS: &str = "GetJwks";

/// A signing algorithm the issuer holds keys for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
}

impl Alg {
    /// The JOSE name, `RS256` or `ES256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }

    fn algorithm(self) -> Algorithm {
        match self {
            Alg::Rs256 => Algorithm::RS256,
            Alg::Es256 => Algorithm::ES256,
        }
    }

    fn kid_prefix(self) -> &'static str {
        match self {
            Alg::Rs256 => "lift-test-rs256",
            Alg::Es256 => "lift-test-es256",
        }
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One shipped test key pair: private PEM and public JWK parameters.
struct Material {
    pem: &'static str,
    public_jwk: &'static str,
}

const RS256_KEYS: [Material; 2] = [
    Material {
        pem: include_str!("../../tests/fixtures/keys/test-only-rs256-1.pem"),
        public_jwk: include_str!("../../tests/fixtures/keys/test-only-rs256-1.jwk.json"),
    },
    Material {
        pem: include_str!("../../tests/fixtures/keys/test-only-rs256-2.pem"),
        public_jwk: include_str!("../../tests/fixtures/keys/test-only-rs256-2.jwk.json"),
    },
];

const ES256_KEYS: [Material; 2] = [
    Material {
        pem: include_str!("../../tests/fixtures/keys/test-only-es256-1.pem"),
        public_jwk: include_str!("../../tests/fixtures/keys/test-only-es256-1.jwk.json"),
    },
    Material {
        pem: include_str!("../../tests/fixtures/keys/test-only-es256-2.pem"),
        public_jwk: include_str!("../../tests/fixtures/keys/test-only-es256-2.jwk.json"),
    },
];

struct SigningKey {
    kid: String,
    alg: Alg,
    encoding: EncodingKey,
    jwk: Value,
    published: bool,
}

impl SigningKey {
    fn load(alg: Alg, generation: u32) -> Result<Self, MockError> {
        let shipped = match alg {
            Alg::Rs256 => &RS256_KEYS,
            Alg::Es256 => &ES256_KEYS,
        };
        let material = &shipped[(generation as usize - 1) % shipped.len()];
        let encoding = match alg {
            Alg::Rs256 => EncodingKey::from_rsa_pem(material.pem.as_bytes()),
            Alg::Es256 => EncodingKey::from_ec_pem(material.pem.as_bytes()),
        }
        .map_err(MockError::KeyMaterial)?;
        let kid = format!("{}-{generation}", alg.kid_prefix());
        let mut jwk: Value = serde_json::from_str(material.public_jwk)
            .map_err(|e| MockError::KeyMaterial(jsonwebtoken::errors::Error::from(e)))?;
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(alg.as_str());
        Ok(Self { kid, alg, encoding, jwk, published: true })
    }
}

#[derive(Default)]
struct KeySet {
    issuer: OnceLock<String>,
    keys: Mutex<Vec<SigningKey>>,
    generation: Mutex<u32>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<String> = lock(&self.keys).iter().map(|k| k.kid.clone()).collect();
        f.debug_struct("KeySet").field("issuer", &self.issuer).field("kids", &kids).finish()
    }
}

/// A mocked OpenID issuer serving a JWK set with RS256 and ES256 keys.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), lift_harness::aws::MockError> {
/// use lift_harness::aws::{Alg, JwksIssuer};
///
/// let issuer = JwksIssuer::start().await?;
/// let claims = issuer.claims("user-1", "payments");
/// let token = issuer.sign(&claims, Alg::Rs256, None)?;
/// println!("{token} verifies with {}", issuer.jwks_url());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct JwksIssuer {
    endpoint: Endpoint,
    keys: Arc<KeySet>,
}

endpoint_methods!(JwksIssuer);

impl JwksIssuer {
    /// Starts an issuer holding one RS256 and one ES256 key, both published.
    pub async fn start() -> Result<Self, MockError> {
        let keys = Arc::new(KeySet::default());
        let endpoint = Endpoint::start(keys.clone()).await;
        let _ = keys.issuer.set(endpoint.uri());
        let issuer = Self { endpoint, keys };
        issuer.rotate()?;
        Ok(issuer)
    }

    /// The issuer (`iss`) URL, `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> String {
        self.endpoint.uri()
    }

    /// URL of the JWK set.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.endpoint.uri())
    }

    /// URL of the OpenID discovery document.
    pub fn openid_configuration_url(&self) -> String {
        format!("{}{OPENID_CONFIGURATION_PATH}", self.endpoint.uri())
    }

    /// Standard claims for `subject`: `iss`, `sub`, `aud`, `iat` now, `exp` in one hour.
    pub fn claims(&self, subject: &str, audience: &str) -> Value {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        json!({
            "iss": self.issuer(),
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": now + 3600,
        })
    }

    /// Signs `claims` with key `kid`, or with the newest key for `alg` when `kid` is
    /// `None`; unpublished keys sign too, for unknown-kid tests.
    pub fn sign(&self, claims: &Value, alg: Alg, kid: Option<&str>) -> Result<String, MockError> {
        let keys = lock(&self.keys.keys);
        let key = match kid {
            Some(kid) => {
                keys.iter().find(|k| k.kid == kid).ok_or_else(|| MockError::UnknownKid(kid.to_owned()))?
            }
            None => keys
                .iter()
                .rev()
                .find(|k| k.alg == alg)
                .ok_or_else(|| MockError::UnknownKid(alg.kid_prefix().to_owned()))?,
        };
        if key.alg != alg {
            return Err(MockError::AlgMismatch { kid: key.kid.clone(), alg });
        }
        let mut header = Header::new(alg.algorithm());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(MockError::Sign)
    }

    /// Adds a published RS256 and ES256 key with new kids, which become the newest for
    /// [`JwksIssuer::sign`]; returns the new kids. Older keys stay published.
    ///
    /// Two key pairs ship per algorithm, so every other rotation reuses key material
    /// under a new kid.
    pub fn rotate(&self) -> Result<Vec<String>, MockError> {
        let mut generation = lock(&self.keys.generation);
        let next = *generation + 1;
        let added = [SigningKey::load(Alg::Rs256, next)?, SigningKey::load(Alg::Es256, next)?];
        *generation = next;
        let kids = added.iter().map(|k| k.kid.clone()).collect();
        lock(&self.keys.keys).extend(added);
        Ok(kids)
    }

    /// Every kid the issuer holds, published or not, oldest first.
    pub fn kids(&self) -> Vec<String> {
        lock(&self.keys.keys).iter().map(|k| k.kid.clone()).collect()
    }

    /// The kids the JWK set serves now.
    pub fn published_kids(&self) -> Vec<String> {
        let keys = lock(&self.keys.keys);
        keys.iter().filter(|k| k.published).map(|k| k.kid.clone()).collect()
    }

    /// Serves key `kid` in the JWK set again.
    pub fn publish(&self, kid: &str) -> Result<(), MockError> {
        self.set_published(kid, true)
    }

    /// Stops serving key `kid` in the JWK set; it still signs.
    pub fn unpublish(&self, kid: &str) -> Result<(), MockError> {
        self.set_published(kid, false)
    }

    /// Serves every key the issuer holds.
    pub fn publish_all(&self) {
        lock(&self.keys.keys).iter_mut().for_each(|k| k.published = true);
    }

    /// Serves an empty key set, `{"keys": []}`.
    pub fn unpublish_all(&self) {
        lock(&self.keys.keys).iter_mut().for_each(|k| k.published = false);
    }

    /// The JWK set as served now.
    pub fn jwk_set(&self) -> Value {
        self.keys.jwk_set()
    }

    fn set_published(&self, kid: &str, published: bool) -> Result<(), MockError> {
        let mut keys = lock(&self.keys.keys);
        let key =
            keys.iter_mut().find(|k| k.kid == kid).ok_or_else(|| MockError::UnknownKid(kid.to_owned()))?;
        key.published = published;
        Ok(())
    }
}

impl KeySet {
    fn jwk_set(&self) -> Value {
        let keys = lock(&self.keys);
        let published: Vec<&Value> = keys.iter().filter(|k| k.published).map(|k| &k.jwk).collect();
        json!({ "keys": published })
    }

    fn openid_configuration(&self) -> Value {
        let issuer = self.issuer.get().cloned().unwrap_or_default();
        json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}{JWKS_PATH}"),
            "response_types_supported": ["code", "id_token", "token id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        })
    }
}

fn json_response(status: u16, body: &Value) -> ResponseTemplate {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    ResponseTemplate::new(status).set_body_raw(bytes, "application/json")
}

impl Service for KeySet {
    fn operation(&self, request: &Request) -> String {
        match request.url.path() {
            OPENID_CONFIGURATION_PATH => GET_OPENID_CONFIGURATION.to_owned(),
            JWKS_PATH => GET_JWKS.to_owned(),
            other => other.to_owned(),
        }
    }

    fn handle(&self, operation: &str, request: &Request) -> ResponseTemplate {
        match operation {
            GET_OPENID_CONFIGURATION => json_response(200, &self.openid_configuration()),
            GET_JWKS => json_response(200, &self.jwk_set()),
            _ => {
                let message = format!("no route for {}", request.url.path());
                self.error(request, &AwsError::new(404, "not_found", message))
            }
        }
    }

    fn error(&self, _request: &Request, error: &AwsError) -> ResponseTemplate {
        let body = json!({"error": error.code, "error_description": error.message});
        json_response(error.status, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::Jwk;

    /// The shipped public JWKs must be the public halves of the shipped private keys.
    #[test]
    fn shipped_jwks_match_shipped_private_keys() {
        for (alg, generation) in [(Alg::Rs256, 1), (Alg::Rs256, 2), (Alg::Es256, 1), (Alg::Es256, 2)] {
            let key = SigningKey::load(alg, generation).unwrap();
            let derived = Jwk::from_encoding_key(&key.encoding, alg.algorithm()).unwrap();
            let derived = serde_json::to_value(&derived.algorithm).unwrap();
            for field in ["n", "e", "x", "y", "crv"] {
                assert_eq!(derived.get(field), key.jwk.get(field), "{alg} {field}");
            }
        }
    }
}
