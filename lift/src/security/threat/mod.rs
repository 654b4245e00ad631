//! Threat detection (feature `threat`): request detectors, a risk score, behavioural
//! detectors over counters in DynamoDB, and incident playbooks.
//!
//! - **Request detectors** ([`Detectors`]): SQL injection, XSS, path traversal, command
//!   injection and SSRF targets (private, loopback, link-local, unique-local and metadata
//!   addresses, integer and hex spellings of them, `file://`, `gopher://`...) in the path,
//!   the query string, the headers that matter and the body's JSON strings; bodies over a
//!   size limit and JSON nested too deep. Hand-written byte scanners, no regex: the whole
//!   set costs a few microseconds on a 1 KB request (bench group `threat_detect_1kb`).
//! - **Risk score** ([`ThreatAssessment`]): each [`Finding`] has a kind, a [`Location`]
//!   and a [`Severity`]; the score (0–100) is the worst finding's weight plus a little per
//!   further finding.
//! - **Behaviour** ([`BehaviourMonitor`]): bursts of failed authentication per IP and per
//!   user, and principals touching many tenants, counted with atomic `UpdateItem ADD` in
//!   windows that expire by TTL, shared by every instance.
//! - **Playbooks** ([`Playbook`], [`ThreatStore`]): block an IP (an IPv6 client's /64) or a
//!   principal for a time,
//!   revoke a token by `jti` or hash, alert a webhook ([`WebhookAlert`]), and write a
//!   scrubbed forensic snapshot ([`Incident`], at most [`MAX_INCIDENT_JSON`] bytes) to the
//!   audit trail.
//! - **The layer** ([`ThreatLayer`]): refuses blocked clients, revoked tokens (the bearer
//!   token's hash, and its `jti` as the JWT layer verified it; `jti`s are not
//!   issuer-qualified) and requests whose score reaches the threshold (403 problem+json)
//!   and runs the playbook for them; the rest pass with their [`ThreatAssessment`] in the
//!   request's extensions. Blocks and revocations are read in one `BatchGetItem` per
//!   request; a store that cannot be read fails open, logged.
//!
//! Mount it outside the handlers and inside authentication (so the principal is known).
//! It buffers the request body up to a [`BodyLimit`] (6 MiB unless the request carries
//! another) and answers a larger one 413 without looking further.
//!
//! # Examples
//!
//! ```
//! use lift::security::threat::{ThreatAssessment, ThreatLayer};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let svc = ServiceBuilder::new().layer(ThreatLayer::new()).service_fn(|req: lift::Request| async move {
//!     let score = ThreatAssessment::of(&req).map_or(0, |a| a.score());
//!     Ok::<_, std::convert::Infallible>(lift::Response::new(lift::Body::from(score.to_string())))
//! });
//! let attack = http::Request::get("/payments?id=1%20UNION%20SELECT%20card%20FROM%20cards")
//!     .body(lift::Body::empty())
//!     .unwrap();
//! assert_eq!(svc.clone().oneshot(attack).await.unwrap().status(), 403);
//! let benign = http::Request::get("/payments?name=O%27Brien").body(lift::Body::empty()).unwrap();
//! assert_eq!(svc.oneshot(benign).await.unwrap().body().as_bytes(), b"0");
//! # }
//! ```

mod alert;
mod behaviour;
mod detect;
mod error;
mod finding;
mod future;
mod incident;
mod layer;
mod scan;
mod service;
mod ssrf;
mod store;

pub use crate::buffered::BodyLimit;
pub use alert::{WebhookAlert, DEFAULT_ALERT_TIMEOUT};
pub use behaviour::{BehaviourMonitor, Signal};
pub use detect::{Detectors, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DEPTH};
pub use error::{InvalidConfig, Refused, StoreUnavailable};
pub use finding::{Finding, FindingKind, Location, Severity, ThreatAssessment};
pub use future::ResponseFuture;
pub use incident::{Incident, Playbook, INCIDENT_ACTION, MAX_INCIDENT_JSON};
#[allow(deprecated)]
pub use layer::{ThreatBuilder, ThreatLayer, ThreatLayerBuilder, DEFAULT_THRESHOLD};
pub use service::{FailedLogin, Threat};
pub use store::{BlockTarget, ThreatStore, TokenRef};

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{ServiceBuilder, ServiceExt};

    fn echo_score() -> impl tower::Service<
        crate::Request,
        Response = crate::Response,
        Error = Infallible,
        Future = impl std::future::Future<Output = Result<crate::Response, Infallible>> + Send,
    > + Clone
           + Send
           + 'static {
        ServiceBuilder::new().layer(ThreatLayer::new()).service_fn(|req: crate::Request| async move {
            let a = ThreatAssessment::of(&req).cloned().unwrap_or_default();
            Ok::<_, Infallible>(crate::Response::new(crate::Body::from(a.score().to_string())))
        })
    }

    #[tokio::test]
    async fn attacks_are_refused_with_problem_json() {
        let req = http::Request::post("/payments")
            .header("content-type", "application/json")
            .body(crate::Body::from(r#"{"note": "<script>alert(1)</script>"}"#))
            .unwrap();
        let res = echo_score().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 403);
        assert_eq!(res.headers()["content-type"], crate::error::PROBLEM_JSON);
        // The caller learns nothing about which rule matched.
        let body = String::from_utf8_lossy(res.body().as_bytes()).to_string();
        assert!(!body.contains("xss") && !body.contains("script"), "{body}");
    }

    #[tokio::test]
    async fn scores_below_the_threshold_pass_with_their_assessment() {
        let svc = ServiceBuilder::new()
            .layer(ThreatLayer::builder().threshold(100).build().unwrap())
            .service_fn(|req: crate::Request| async move {
                let a = ThreatAssessment::of(&req).cloned().unwrap_or_default();
                Ok::<_, Infallible>(crate::Response::new(crate::Body::from(a.score().to_string())))
            });
        let req = http::Request::get("/files/..%2f..%2fapp.log").body(crate::Body::empty()).unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.body().as_bytes(), b"70");
    }

    #[test]
    fn builder_checks_what_it_needs() {
        assert!(ThreatLayer::builder().threshold(0).build().is_err());
        assert!(ThreatLayer::builder().block_ip_for(std::time::Duration::from_secs(1)).build().is_err());
        let err = ThreatLayer::builder()
            .block_principal_for(std::time::Duration::from_secs(1))
            .build()
            .unwrap_err();
        assert_eq!(err.reason(), "blocking principals needs a store");
        assert!(ThreatLayer::builder().track_tenants(true).build().is_err());
    }
}
