//! Authentication and authorization: bearer JWTs verified against trusted issuers, and
//! role and scope checks on routes.
//!
//! - [`JwtLayer`] verifies `Authorization: Bearer <jwt>` and puts the
//!   [`Principal`](crate::Principal) in the request's [`Context`](crate::Context), which
//!   sets the tenant. Tenant headers sent by the caller are removed: the tenant comes from
//!   the token alone.
//! - [`require_role`], [`require_scope`] and friends make a [`RequireLayer`] for a route or
//!   a group: no principal → 401, missing role or scope → 403.
//!
//! # How a token is verified
//!
//! 1. A token over the size limit (8 KiB by default) is refused before it is decoded.
//! 2. The header and claims are decoded; `alg: none` and unknown critical headers are
//!    refused whatever the configuration.
//! 3. The unverified `iss` picks one of the configured [`Issuer`]s; an unknown one is refused.
//! 4. The key: the issuer's HS256 secret, or the JWKS key with the token's `kid` (cached
//!    with a TTL; an unknown `kid` refetches the set at most once per cooldown). While the
//!    issuer cannot be reached, the cached set is used for at most
//!    [`Issuer::jwks_max_staleness`] past its TTL (default 1 hour), then no key verifies.
//! 5. The algorithm is the key's (`RSA` → RS256, `EC` P-256 → ES256, `OKP` Ed25519 →
//!    EdDSA, secret → HS256) and must be in the issuer's allow-list; the header's `alg`
//!    only has to agree. An HS256 token "signed" with an RSA public key is refused here.
//! 6. The signature, then `exp` (required), `nbf` and `iat` with a clock skew (60 s by
//!    default), and `aud`; then, for an issuer configured to ask, the header's `typ`
//!    ([`Issuer::typ`]), the `token_use` claim ([`Issuer::token_use`]) and the client
//!    (`client_id`, else `aud`: [`Issuer::client_ids`]). None of these three is checked by
//!    default.
//! 7. The claims map to a principal: `sub`, and the `iss` that vouched for it (a subject
//!    is unique within its issuer only, so what is kept per caller is kept by
//!    [`Principal::qualified_subject`](crate::Principal::qualified_subject)); the tenant
//!    from `tenant_id` or `custom:tenant_id` (configurable), which must be one of the
//!    issuer's [`tenants`](Issuer::tenants) when it is bound to some (with several issuers,
//!    each must be bound or declared [`any_tenant`](Issuer::any_tenant), or the build is
//!    refused); roles from `roles` and `cognito:groups`; scopes from `scope`
//!    (space-separated) and `scp`.
//!
//! # The tenant claim, and Cognito
//!
//! The tenant claim decides whose data a request reaches, so it must be a claim the user
//! cannot write. A Cognito `custom:` attribute such as `custom:tenant_id` is writable by
//! its user unless every app client's write attributes leave it out: make it read-only, or
//! read the tenant from a claim the pool sets itself ([`Issuer::tenant_claims`]).
//!
//! Cognito access tokens carry no `aud`, so a pool is configured with
//! [`any_audience`](Issuer::any_audience). Add [`token_use`](Issuer::token_use)`("access")`
//! and [`client_ids`](Issuer::client_ids) with the app clients that may call the service:
//! without them the pool's ID tokens, and tokens of every other app client of the pool, are
//! accepted too.
//!
//! ```
//! use lift::middleware::auth::Issuer;
//!
//! let pool = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Abc";
//! let issuer = Issuer::jwks(pool, format!("{pool}/.well-known/jwks.json"))
//!     .any_audience()
//!     .token_use("access")
//!     .client_ids(["4f1b2c3d4e5f6a7b8c9d0e1f2a"]);
//! # let _ = issuer;
//! ```
//!
//! Every refusal is a 401 problem with `WWW-Authenticate: Bearer realm=..., error=
//! "invalid_token", error_description=...` (RFC 6750), or a 503 when no usable keys could
//! be fetched. The token itself never appears in errors, logs or `Debug` output.
//!
//! # Examples
//!
//! ```
//! use lift::middleware::auth::{require_scope, Issuer, JwtLayer};
//! use lift::{App, RouteGroup, Request, Response};
//!
//! async fn create(_req: Request) -> Response { Response::default() }
//! async fn get(req: Request) -> Response {
//!     let tenant = lift::Context::of(&req).and_then(lift::Context::tenant);
//!     # let _ = tenant;
//!     Response::default()
//! }
//!
//! # fn main() -> Result<(), lift::middleware::auth::ConfigError> {
//! let jwt = JwtLayer::builder()
//!     .issuer(
//!         Issuer::jwks("https://id.example.com", "https://id.example.com/.well-known/jwks.json")
//!             .audience("payments"),
//!     )
//!     .exempt_path("/health*")
//!     .build()?;
//! let app = App::new()
//!     .group(RouteGroup::new("/payments").post("/", create).layer(require_scope("payments:write")))
//!     .group(RouteGroup::new("/payments").get("/:id", get).layer(require_scope("payments:read")))
//!     .layer(jwt);
//! # Ok(()) }
//! ```

mod algorithm;
mod claims;
mod error;
mod fetch;
mod future;
mod issuer;
mod jwks;
mod layer;
mod require;
mod service;
mod token;
mod verifier;

pub use algorithm::{Algorithm, UnsupportedAlgorithm};
pub use claims::{valid_tenant, Claims};
pub use error::{AuthError, ConfigError, FetchError, INVALID_TOKEN_TYPE};
pub use future::ResponseFuture;
pub use issuer::{
    Issuer, DEFAULT_FETCH_TIMEOUT, DEFAULT_JWKS_MAX_STALENESS, DEFAULT_JWKS_TTL, DEFAULT_REFETCH_COOLDOWN,
    DEFAULT_ROLE_CLAIMS, DEFAULT_TENANT_CLAIMS,
};
#[allow(deprecated)]
pub use layer::{JwtBuilder, JwtLayer, JwtLayerBuilder, RequestHead, DEFAULT_REALM, DEFAULT_TENANT_HEADERS};
pub use require::{
    require_all_roles, require_all_scopes, require_any_role, require_any_scope, require_role, require_scope,
    Require, RequireFuture, RequireLayer, FORBIDDEN_TYPE,
};
pub use service::Jwt;
pub use verifier::{Verified, Verifier, VerifierBuilder, DEFAULT_CLOCK_SKEW, DEFAULT_MAX_TOKEN_BYTES};
