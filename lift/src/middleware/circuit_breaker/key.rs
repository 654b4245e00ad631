//! Which breaker a request goes through.

use std::hash::Hash;

use crate::context::Context;

/// Picks the breaker of a request: one per downstream, per tenant, or one for all.
///
/// Implemented by [`Global`], [`PerTenant`], and any `Fn(&http::Request<B>) -> K`.
///
/// # Examples
///
/// ```
/// use lift::middleware::circuit_breaker::KeyFn;
///
/// // One breaker per downstream host.
/// let by_host = |req: &http::Request<lift::Body>| req.uri().host().map(str::to_owned);
/// let req = http::Request::get("https://psp.example/charge").body(lift::Body::empty()).unwrap();
/// assert_eq!(by_host.key(&req).as_deref(), Some("psp.example"));
/// ```
pub trait KeyFn<B>: Clone + Send + Sync + 'static {
    /// The key type.
    type Key: Clone + Eq + Hash + Send + Sync + 'static;

    /// Whether every request has the same key, so the layer can skip the map lookup.
    const CONSTANT: bool = false;

    /// The key of a request.
    fn key(&self, req: &http::Request<B>) -> Self::Key;

    /// Whether `key` is the key of a request that lacked the identity this key function
    /// reads (a per-tenant key without a tenant): the layer then counts it and warns once.
    fn is_unscoped(&self, _key: &Self::Key) -> bool {
        false
    }
}

/// One breaker for every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Global;

impl<B> KeyFn<B> for Global {
    type Key = ();

    const CONSTANT: bool = true;

    fn key(&self, _req: &http::Request<B>) {}
}

/// One breaker per tenant, read from [`lift::Context::tenant`](crate::Context::tenant);
/// requests without a tenant share the `None` breaker.
///
/// # Examples
///
/// ```
/// use lift::middleware::circuit_breaker::{KeyFn, PerTenant};
/// let mut ctx = lift::Context::new("r");
/// ctx.set_tenant("acme");
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(ctx);
/// assert_eq!(PerTenant.key(&req).as_deref(), Some("acme"));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PerTenant;

impl<B> KeyFn<B> for PerTenant {
    type Key = Option<String>;

    fn key(&self, req: &http::Request<B>) -> Option<String> {
        Context::of(req).and_then(Context::tenant).map(str::to_owned)
    }

    fn is_unscoped(&self, key: &Option<String>) -> bool {
        key.is_none()
    }
}

impl<B, K, F> KeyFn<B> for F
where
    F: Fn(&http::Request<B>) -> K + Clone + Send + Sync + 'static,
    K: Clone + Eq + Hash + Send + Sync + 'static,
{
    type Key = K;

    fn key(&self, req: &http::Request<B>) -> K {
        self(req)
    }
}
