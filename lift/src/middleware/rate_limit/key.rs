//! What a request is limited by: tenant, user, client IP, route, or a function.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::request::Parts;

pub use crate::context::{client_ip, ClientIp};
use crate::context::{Context, MatchedRoute};

/// How many leading bits of an IPv6 client address make its [`RateLimitKey::Ip`] bucket
/// unless [`RateLimitBuilder::ipv6_prefix`](super::RateLimitBuilder::ipv6_prefix) says
/// otherwise: a /64 is what one subscriber or one host commonly holds.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

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
    ///
    /// An IPv4 address is its own bucket. An IPv6 address counts by its prefix, /64 unless
    /// [`RateLimitBuilder::ipv6_prefix`](super::RateLimitBuilder::ipv6_prefix) says
    /// otherwise (`ip:2001:db8::/64`): a client commonly holds a whole /64 and could
    /// otherwise take a fresh address, and a fresh bucket, for every request. An
    /// IPv4-mapped address (`::ffff:192.0.2.1`) counts as its IPv4 address.
    Ip,
    /// The method and the matched route pattern (`GET /payments/:id`), which the router
    /// sets before per-route and group layers run. HEAD counts as GET: the router answers
    /// it with the GET route's handler, and a bucket of its own would double the GET limit
    /// (a route with a HEAD handler of its own shares the GET bucket too). A layer on the
    /// whole [`App`](crate::App) runs before routing: there the key is the method alone
    /// (one bucket per method across every route, HEAD again as GET; a method outside the
    /// standard ones, `-`), never the raw path, which would give `/payments/1` and
    /// `/payments/2` a bucket each and let a client make as many buckets as it likes. Put
    /// the layer on routes or groups for a limit per route.
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
    fn write_value(&self, head: &Parts, ipv6_prefix: u8, out: &mut String) -> bool {
        use std::fmt::Write as _;
        let ctx = || head.extensions.get::<Context>();
        let text = match self {
            Self::Tenant => ctx().and_then(Context::tenant),
            Self::User => {
                // Qualified by its issuer: another issuer's `alice` must not drain this one's.
                return ctx().and_then(Context::principal).map(|p| p.write_qualified_subject(out)).is_some();
            }
            Self::Ip => {
                let Some(ip) = client_ip(head) else { return false };
                return match crate::context::ip_prefix(ip, ipv6_prefix) {
                    IpAddr::V4(v4) => write!(out, "{v4}"),
                    IpAddr::V6(v6) => write!(out, "{v6}/{ipv6_prefix}"),
                }
                .is_ok();
            }
            Self::Route => match head.extensions.get::<MatchedRoute>() {
                Some(route) => {
                    out.push_str(fold_head(head.method.as_str()));
                    out.push(' ');
                    Some(route.as_str())
                }
                // Before routing: the method alone, and only a standard one, so a client
                // choosing paths or methods cannot spread requests over fresh buckets.
                None => standard_method(&head.method).map(fold_head),
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

/// The method a route key names: HEAD as GET, because the router answers HEAD with the GET
/// route's handler, and a bucket of its own would double that route's limit.
fn fold_head(method: &str) -> &str {
    if method == "HEAD" {
        "GET"
    } else {
        method
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

/// The key of a request under a list of key parts, e.g. `t:acme|r:POST /payments`, with
/// IPv6 clients counted by their [`DEFAULT_IPV6_PREFIX`] (see [`RateLimitKey::Ip`]).
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
    compound_key_with(parts, head, DEFAULT_IPV6_PREFIX)
}

/// [`compound_key`] with IPv6 clients counted by their first `ipv6_prefix` bits.
pub(crate) fn compound_key_with(parts: &[RateLimitKey], head: &Parts, ipv6_prefix: u8) -> String {
    let mut key = String::with_capacity(48);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push('|');
        }
        key.push_str(part.tag());
        key.push(':');
        if !part.write_value(head, ipv6_prefix, &mut key) {
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
    use crate::context::ip_prefix;
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

    /// HEAD is answered by the GET route's handler: a bucket of its own would let a client
    /// double a route's GET limit.
    #[test]
    fn head_is_keyed_as_get() {
        let route = [RateLimitKey::Route];
        let mut h = head(None);
        h.method = http::Method::HEAD;
        assert_eq!(compound_key(&route, &h), "r:GET", "before routing");
        h.extensions.insert(MatchedRoute("/payments/:id".into()));
        assert_eq!(compound_key(&route, &h), "r:GET /payments/:id");
        h.method = http::Method::GET;
        assert_eq!(compound_key(&route, &h), "r:GET /payments/:id");
    }

    #[test]
    fn ipv6_addresses_are_cut_to_their_prefix() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let cut = |s: &str, len: u8| ip_prefix(ip(s), len);
        assert_eq!(cut("2001:db8::1", 64), ip("2001:db8::"));
        assert_eq!(cut("2001:db8::ffff:ffff:ffff:ffff", 64), ip("2001:db8::"));
        assert_eq!(cut("2001:db8:0:1::1", 64), ip("2001:db8:0:1::"), "another /64");
        assert_eq!(cut("2001:db8:aaaa:bbbb::1", 48), ip("2001:db8:aaaa::"));
        assert_eq!(cut("2001:db8:0:ff::1", 60), ip("2001:db8:0:f0::"), "not on a group boundary");
        assert_eq!(cut("2001:db8::1", 128), ip("2001:db8::1"));
        assert_eq!(cut("2001:db8::1", 1), ip("::"));
        assert_eq!(cut("::1", 64), ip("::"));
    }

    #[test]
    fn ipv4_addresses_count_per_address_mapped_or_not() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(ip_prefix(ip("192.0.2.1"), 64), ip("192.0.2.1"));
        assert_eq!(ip_prefix(ip("192.0.2.1"), 1), ip("192.0.2.1"), "the IPv6 prefix never applies");
        assert_eq!(ip_prefix(ip("::ffff:192.0.2.1"), 64), ip("192.0.2.1"));
        assert_eq!(ip_prefix(ip("::ffff:192.0.2.1"), 128), ip("192.0.2.1"));
        // Only the mapped form is IPv4: the deprecated compatible form is an IPv6 address.
        assert_eq!(ip_prefix(ip("::192.0.2.1"), 64), ip("::"));
    }

    #[test]
    fn ip_keys_name_the_prefix() {
        let key = |ip: &str, len: u8| {
            let mut h = head(None);
            h.extensions.insert(ClientIp(ip.parse().unwrap()));
            compound_key_with(&[RateLimitKey::Ip], &h, len)
        };
        assert_eq!(key("2001:db8::1", 64), "ip:2001:db8::/64");
        assert_eq!(key("2001:db8::2", 64), key("2001:db8::1", 64));
        assert_eq!(key("2001:db8::1", 48), "ip:2001:db8::/48", "another setting, another key");
        assert_eq!(key("::ffff:192.0.2.1", 64), "ip:192.0.2.1");
        assert_eq!(key("192.0.2.1", 64), "ip:192.0.2.1");
        let mut h = head(None);
        h.extensions.insert(ClientIp("2001:db8::1".parse().unwrap()));
        assert_eq!(compound_key(&[RateLimitKey::Ip], &h), "ip:2001:db8::/64", "the default prefix");
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
