//! [`Jwt`]: the service [`JwtLayer`](super::JwtLayer) wraps around the inner service.

use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tower_service::Service;

use super::error::AuthError;
use super::future::ResponseFuture;
use super::layer::{RequestHead, Shared};
use super::token;
use super::verifier::Verified;
use crate::context::Context;
use crate::BoxError;

/// Authenticates each request before the inner service sees it.
///
/// Made by [`JwtLayer`](super::JwtLayer); fails with a boxed [`lift::Error`](crate::Error)
/// (401 or 503 problem) that Lift's [`App`](crate::App) renders as it is.
#[derive(Clone)]
pub struct Jwt<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> fmt::Debug for Jwt<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt").field("verifier", &self.shared.verifier).finish_non_exhaustive()
    }
}

impl<S> Jwt<S> {
    pub(crate) fn new(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Puts the principal in the context (making one outside Lift's App), the claims in the
/// extensions, and removes headers that claim a tenant.
fn authenticate<B>(req: &mut http::Request<B>, verified: Verified, shared: &Shared) {
    for name in &shared.strip {
        req.headers_mut().remove(name);
    }
    let Verified { principal, claims } = verified;
    match Context::of_mut(req) {
        Some(ctx) => ctx.set_principal(principal),
        None => {
            let mut ctx = Context::from_parts(req.headers(), None, None);
            ctx.set_principal(principal);
            req.extensions_mut().insert(ctx);
        }
    }
    req.extensions_mut().insert(claims);
}

impl<S, B> Service<http::Request<B>> for Jwt<S>
where
    S: Service<http::Request<B>> + Clone + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let shared = &self.shared;
        if shared.is_exempt(&RequestHead::of(&req)) {
            return ResponseFuture::inner(self.inner.call(req));
        }
        let realm = shared.realm.as_str();
        let token = match token::bearer(req.headers(), shared.verifier.max_token_bytes()) {
            Ok(Some(token)) => token,
            Ok(None) => return ResponseFuture::failed(AuthError::MissingToken.into_error(realm)),
            Err(err) => return ResponseFuture::failed(err.into_error(realm)),
        };
        match shared.verifier.verify_cached(token) {
            Ok(Some(verified)) => {
                authenticate(&mut req, verified, shared);
                ResponseFuture::inner(self.inner.call(req))
            }
            Err(err) => ResponseFuture::failed(err.into_error(realm)),
            Ok(None) => {
                // The keys must be fetched: own what the fetch needs, and take the service
                // that was driven to readiness (leaving a fresh clone in its place).
                let token = token.to_owned();
                let shared = self.shared.clone();
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::boxed(async move {
                    match shared.verifier.verify(&token).await {
                        Ok(verified) => {
                            authenticate(&mut req, verified, &shared);
                            inner.call(req).await.map_err(Into::into)
                        }
                        Err(err) => Err(err.into_error(&shared.realm).into()),
                    }
                })
            }
        }
    }
}
