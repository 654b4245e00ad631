//! The denylist on AWS SDK clients.

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};

use super::ChaosSwitch;

/// Fails an AWS SDK call before it is sent when its endpoint's host is on the chaos
/// denylist and the faults are on; made by
/// [`ChaosLayer::interceptor`](super::ChaosLayer::interceptor). Any SDK client takes it
/// (`aws_sdk_*::config::Builder::interceptor`).
///
/// # Examples
///
/// ```
/// # fn demo(base: aws_sdk_dynamodb::Client) {
/// use lift::middleware::chaos::ChaosLayer;
///
/// let chaos = ChaosLayer::builder().deny_host("dynamodb.*.amazonaws.com").build().unwrap();
/// let client = aws_sdk_dynamodb::Client::from_conf(
///     base.config().to_builder().interceptor(chaos.interceptor()).build(),
/// );
/// # let _ = client; }
/// ```
#[derive(Debug, Clone)]
pub struct ChaosInterceptor {
    switch: ChaosSwitch,
}

impl ChaosInterceptor {
    pub(crate) fn new(switch: ChaosSwitch) -> Self {
        Self { switch }
    }
}

impl Intercept for ChaosInterceptor {
    fn name(&self) -> &'static str {
        "lift-chaos-denylist"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), crate::BoxError> {
        self.switch.check_host(context.request().uri()).map_err(Into::into)
    }
}
