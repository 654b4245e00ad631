//! STS mock: `GetCallerIdentity` over awsQuery (form in, XML out) and AWS JSON 1.0.

use std::sync::{Arc, Mutex};

use serde_json::json;
use wiremock::{Request, ResponseTemplate};

use super::endpoint::{endpoint_methods, signed_endpoint_methods, Endpoint, Service};
use super::fault::{lock, AwsError};
use super::{wire, ACCOUNT_ID};

/// XML namespace of STS query responses.
const NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// `X-Amz-Target` prefix of STS JSON requests.
const JSON_TARGET: &str = "AWSSecurityTokenServiceV20110615";

/// A mocked STS endpoint.
#[derive(Debug)]
pub struct StsMock {
    endpoint: Endpoint,
    identity: Arc<Identity>,
}

endpoint_methods!(StsMock);
signed_endpoint_methods!(StsMock);

/// What `GetCallerIdentity` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// Account id, 12 digits.
    pub account: String,
    /// ARN of the caller.
    pub arn: String,
    /// Unique id of the caller.
    pub user_id: String,
}

impl Default for CallerIdentity {
    fn default() -> Self {
        Self {
            account: ACCOUNT_ID.to_owned(),
            arn: format!("arn:aws:iam::{ACCOUNT_ID}:user/lift-test"),
            user_id: "AIDALIFTTESTUSER00000".to_owned(),
        }
    }
}

#[derive(Debug, Default)]
struct Identity {
    current: Mutex<CallerIdentity>,
}

impl StsMock {
    /// Starts an STS mock answering with [`CallerIdentity::default`].
    pub async fn start() -> Self {
        let identity = Arc::new(Identity::default());
        let endpoint = Endpoint::start(identity.clone()).await;
        Self { endpoint, identity }
    }

    /// The identity `GetCallerIdentity` answers with.
    pub fn identity(&self) -> CallerIdentity {
        lock(&self.identity.current).clone()
    }

    /// Sets the identity `GetCallerIdentity` answers with.
    pub fn set_identity(&self, identity: CallerIdentity) {
        *lock(&self.identity.current) = identity;
    }
}

fn is_json(request: &Request) -> bool {
    wire::target(request).is_some()
}

impl Service for Identity {
    fn signing_name(&self) -> &'static str {
        "sts"
    }

    fn handle(&self, operation: &str, request: &Request) -> ResponseTemplate {
        let known = operation == "GetCallerIdentity";
        let id = lock(&self.current).clone();
        match (is_json(request), known) {
            (true, true) if wire::target(request).is_some_and(|(t, _)| t == JSON_TARGET) => {
                let body = json!({"Account": id.account, "Arn": id.arn, "UserId": id.user_id});
                wire::json_ok(wire::JSON_1_0, &body)
            }
            (true, _) => self.error(request, &wire::unknown_operation()),
            (false, true) => {
                let request_id = wire::request_id();
                let xml = format!(
                    "<GetCallerIdentityResponse xmlns=\"{NAMESPACE}\">\n  \
                     <GetCallerIdentityResult>\n    <Arn>{}</Arn>\n    \
                     <UserId>{}</UserId>\n    <Account>{}</Account>\n  \
                     </GetCallerIdentityResult>\n  <ResponseMetadata>\n    \
                     <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n\
                     </GetCallerIdentityResponse>\n",
                    wire::xml_escape(&id.arn),
                    wire::xml_escape(&id.user_id),
                    wire::xml_escape(&id.account),
                );
                ResponseTemplate::new(200)
                    .insert_header("x-amzn-RequestId", request_id)
                    .set_body_raw(xml, "text/xml")
            }
            (false, false) => {
                let message = format!("Could not find operation {operation} for version 2011-06-15");
                self.error(request, &AwsError::new(400, "InvalidAction", message))
            }
        }
    }

    fn error(&self, request: &Request, error: &AwsError) -> ResponseTemplate {
        if !is_json(request) {
            return wire::query_error(NAMESPACE, error);
        }
        // STS is awsQueryCompatible: JSON errors also carry the query error code and side.
        let side = if error.status >= 500 { "Receiver" } else { "Sender" };
        wire::json_error(wire::JSON_1_0, "message", error)
            .insert_header("x-amzn-query-error", format!("{};{side}", error.code))
    }
}
