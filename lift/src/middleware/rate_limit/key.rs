//! What a request is limited by: tenant, user, client IP, route, or a function.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

pub use crate::context::{client_ip, ClientIp};
use crate::context::{Context, MatchedRoute};

/// A function that derives a rate-limit key from a request's head.
///
/// `None` puts the request in the shared bucket of requests without a key.
pub type KeyFn = Arc<dyn Fn(&Parts) -> Option<String> + Send + Sync>;

/// One part of a rate-limit key; several parts make a compound key (tenant and route, say).
///
/// # Examples
///
/// ```
/// use lift::middleware::rate_limit::RateLimitKey;
///
/// let by_tenant = RateLimitKey::Tenant;
/// let by_api_key = RateLimitKey::custom(|head| {
///     head.headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned)
/// });
/// # let _ = (by_tenant, by_api_key);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum RateLimitKey {
    /// The tenant of the request's [`Context`].
    Tenant,
    /// The authenticated [`Principal`](crate::Principal): its subject qualified by its issuer
    /// ([`Principal::qualified_subject`](crate::Principal::qualified_subject)), so the same
    /// subject from two issuers has two buckets.
    User,
    /// The client IP: API Gateway's `sourceIp` on Lambda, else a [`ClientIp`] or a
    /// `SocketAddr` extension. Never `X-Forwarded-For`, which any client can write.
    Ip,
    /// The method and the matched route pattern (`GET /payments/:id`), which the router
    /// sets before per-route and group layers run. A layer on the whole
    /// [`App`](crate::App) runs before routing: there the key is the method alone (one
    /// bucket per method across every route; a method outside the standard ones, `-`),
    /// never the raw path, which would give `/payments/1` and `/payments/2` a bucket each
    /// and let a client make as many buckets as it likes. Put the layer on routes or
    /// groups for a limit per route.
    Route,
    /// A function of the request head.
    Custom(KeyFn),
}

impl RateLimitKey {
    /// A key computed by `f`.
    pub fn custom(f: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static) -> Self {
        Self::Custom(Arc::new(f))
    }

    fn tag(&self) -> &'static str {
        match self {
            Self::Tenant => "t",
            Self::User => "u",
            Self::Ip => "ip",
            Self::Route => "r",
            Self::Custom(_) => "f",
        }
    }

    /// Appends this part's value for the request to `out`; false when the request has none.
    fn write_value(&self, head: &Parts, out: &mut String) -> bool {
        use std::fmt::Write as _;
        let ctx = || head.extensions.get::<Context>();
        let text = match self {
            Self::Tenant => ctx().and_then(Context::tenant),
            Self::User => {
                // Qualified by its issuer: another issuer's `alice` must not drain this one's.
                return ctx().and_then(Context::principal).map(|p| p.write_qualified_subject(out)).is_some();
            }
            Self::Ip => {
                return client_ip(head).map(|ip| write!(out, "{ip}").is_ok()).unwrap_or(false);
            }
            Self::Route => match head.extensions.get::<MatchedRoute>() {
                Some(route) => {
                    out.push_str(head.method.as_str());
                    out.push(' ');
                    Some(route.as_str())
                }
                // Before routing: the method alone, and only a standard one, so a client
                // choosing paths or methods cannot spread requests over fresh buckets.
                None => standard_method(&head.method),
            },
            Self::Custom(f) => {
                return f(head).map(|value| out.push_str(&value)).is_some();
            }
        };
        text.map(|t| out.push_str(t)).is_some()
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "tenant" => Some(Self::Tenant),
            "user" => Some(Self::User),
            "ip" => Some(Self::Ip),
            "route" => Some(Self::Route),
            _ => None,
        }
    }
}

/// The name of a standard method; `None` for an extension method.
fn standard_method(method: &http::Method) -> Option<&'static str> {
    const STANDARD: [&str; 9] =
        ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"];
    STANDARD.into_iter().find(|m| *m == method.as_str())
}

impl fmt::Debug for RateLimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tenant => "Tenant",
            Self::User => "User",
            Self::Ip => "Ip",
            Self::Route => "Route",
            Self::Custom(_) => "Custom(..)",
        })
    }
}

/// The key of a request under a list of key parts, e.g. `t:acme|r:POST /payments`.
///
/// A missing part (no tenant, no IP) becomes `-`: every such request shares one bucket,
/// so leaving out an identity never escapes the limit.
///
/// # Examples
///
/// ```
/// use lift::middleware::rate_limit::{compound_key, RateLimitKey};
///
/// let mut req = http::Request::builder().method("POST").uri("/payments").body(()).unwrap();
/// let mut ctx = lift::Context::new("req-1");
/// ctx.set_tenant("acme");
/// req.extensions_mut().insert(ctx);
/// // The router sets the matched route; before routing, the route part is the method alone.
/// req.extensions_mut().insert(lift::MatchedRoute("/payments".into()));
/// let (head, _) = req.into_parts();
/// assert_eq!(compound_key(&[RateLimitKey::Tenant, RateLimitKey::Route], &head), "t:acme|r:POST /payments");
/// ```
pub fn compound_key(parts: &[RateLimitKey], head: &Parts) -> String {
    let mut key = String::with_capacity(48);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push('|');
        }
        key.push_str(part.tag());
        key.push(':');
        if !part.write_value(head, &mut key) {
            key.push('-');
        }
    }
    key
}

/// Whether a tenant or user part of `parts` finds no identity in the request: the layer
/// then runs outside the JWT layer (or on an exempt route) and counts the request.
pub(crate) fn is_unscoped(parts: &[RateLimitKey], head: &Parts) -> bool {
    let ctx = head.extensions.get::<Context>();
    parts.iter().any(|part| match part {
        RateLimitKey::Tenant => ctx.and_then(Context::tenant).is_none(),
        RateLimitKey::User => ctx.and_then(Context::principal).is_none(),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Principal;
    use std::net::{IpAddr, SocketAddr};

    fn head(ctx: Option<Context>) -> Parts {
        let mut req = http::Request::builder()
            .method("POST")
            .uri("/payments?x=1")
            .header("x-forwarded-for", "198.51.100.1")
            .body(())
            .unwrap();
        if let Some(ctx) = ctx {
            req.extensions_mut().insert(ctx);
        }
        req.into_parts().0
    }

    #[test]
    fn compound_keys_name_every_part_and_mark_missing_ones() {
        let mut ctx = Context::new("r");
        ctx.set_principal(Principal::new("user-1", "acme"));
        let parts = [RateLimitKey::Tenant, RateLimitKey::User, RateLimitKey::Route, RateLimitKey::Ip];
        let mut routed = head(Some(ctx));
        routed.extensions.insert(MatchedRoute("/payments".into()));
        assert_eq!(compound_key(&parts, &routed), "t:acme|u:0:|user-1|r:POST /payments|ip:-");
        assert_eq!(compound_key(&[RateLimitKey::Tenant], &head(None)), "t:-");
    }

    /// Another issuer's `alice` has a bucket of her own: with the subject alone, a partner
    /// issuer's user could drain the limit of a customer of the same name.
    #[test]
    fn user_keys_name_the_issuer() {
        let key = |principal: Principal| {
            let mut ctx = Context::new("r");
            ctx.set_principal(principal);
            compound_key(&[RateLimitKey::User], &head(Some(ctx)))
        };
        let ours = key(Principal::new("alice", "acme").with_issuer("https://id.example.com"));
        let partner = key(Principal::new("alice", "acme").with_issuer("https://partner.example.net"));
        assert_eq!(ours, "u:22:https://id.example.com|alice");
        assert_ne!(ours, partner);
        assert_eq!(compound_key(&[RateLimitKey::User], &head(None)), "u:-");
    }

    #[test]
    fn route_keys_before_routing_never_hold_the_path() {
        let route = [RateLimitKey::Route];
        assert_eq!(compound_key(&route, &head(None)), "r:POST", "the method, not /payments?x=1");
        let mut other = head(None);
        other.uri = "/payments/2".parse().unwrap();
        assert_eq!(compound_key(&route, &other), "r:POST");
        other.method = http::Method::from_bytes(b"FOO1").unwrap();
        assert_eq!(compound_key(&route, &other), "r:-", "no bucket per invented method");
    }

    #[test]
    fn tenant_and_user_keys_without_a_principal_are_unscoped() {
        assert!(is_unscoped(&[RateLimitKey::Route, RateLimitKey::Tenant], &head(None)));
        assert!(is_unscoped(&[RateLimitKey::User], &head(Some(Context::new("r")))));
        assert!(!is_unscoped(&[RateLimitKey::Ip, RateLimitKey::Route], &head(None)), "no identity needed");
        let mut ctx = Context::new("r");
        ctx.set_principal(Principal::new("user-1", "acme"));
        assert!(!is_unscoped(&[RateLimitKey::Tenant, RateLimitKey::User], &head(Some(ctx))));
    }

    #[test]
    fn forwarded_for_is_never_the_client_ip() {
        let mut h = head(None);
        assert_eq!(client_ip(&h), None);
        h.extensions.insert(SocketAddr::from(([192, 0, 2, 1], 4000)));
        assert_eq!(client_ip(&h), Some(IpAddr::from([192, 0, 2, 1])));
        h.extensions.insert(ClientIp(IpAddr::from([203, 0, 113, 9])));
        assert_eq!(client_ip(&h), Some(IpAddr::from([203, 0, 113, 9])));
    }

    #[cfg(feature = "lambda")]
    #[test]
    fn api_gateway_source_ip_wins() {
        use aws_lambda_events::apigw::ApiGatewayV2httpRequestContext;
        let mut ctx = ApiGatewayV2httpRequestContext::default();
        ctx.http.source_ip = Some("198.51.100.23".into());
        let mut h = head(None);
        h.extensions.insert(ClientIp(IpAddr::from([203, 0, 113, 9])));
        h.extensions.insert(lambda_http::request::RequestContext::ApiGatewayV2(ctx));
        assert_eq!(client_ip(&h), Some("198.51.100.23".parse().unwrap()));
    }
}
