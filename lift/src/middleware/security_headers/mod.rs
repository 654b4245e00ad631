//! Security headers and CORS for API responses.
//!
//! [`SecurityHeadersLayer`] adds HSTS, `X-Content-Type-Options: nosniff`,
//! `X-Frame-Options: DENY` with `Content-Security-Policy: frame-ancestors 'none'`,
//! `Referrer-Policy: no-referrer` and `Cache-Control: no-store` on sensitive routes
//! (every route unless a predicate says otherwise).
//!
//! [`CorsPolicy`] checks an explicit origin list and builds tower-http's `CorsLayer`,
//! which answers preflights and withholds `Access-Control-Allow-Origin` from origins not
//! on the list. It refuses, at build, `*` or a mirrored origin together with credentials.
//!
//! # Examples
//!
//! ```
//! use lift::middleware::security_headers::{CorsPolicy, SecurityHeadersLayer};
//!
//! let app = lift::App::new()
//!     .layer(SecurityHeadersLayer::new())
//!     .layer(CorsPolicy::new().allow_origins(["https://app.example.com"]).build().unwrap());
//! ```

mod cors;
mod error;
mod future;
mod layer;
mod service;

pub use cors::CorsPolicy;
pub use error::InvalidConfig;
pub use future::ResponseFuture;
pub use layer::{SecurityHeadersBuilder, SecurityHeadersLayer, SensitiveFn, DEFAULT_HSTS};
pub use service::SecurityHeaders;
