//! SNS mock: `Publish` (and `CreateTopic`) over the awsQuery protocol (a form-encoded POST
//! with `Action` and `Version=2010-03-31`, answered with XML), as the AWS SDKs and the `aws`
//! CLI send them.
//!
//! Topics exist once created ([`SnsMock::create_topic`] or a `CreateTopic` call); a publish
//! to any other ARN is answered as AWS does (`404 NotFound`, "Topic does not exist"). Every
//! accepted message is kept ([`SnsMock::published`]) for assertions.
//!
//! # Examples
//!
//! ```no_run
//! # async fn run() {
//! use lift_harness::aws::SnsMock;
//!
//! let sns = SnsMock::start("us-east-1").await;
//! let topic = sns.create_topic("pages");
//! sns.require_signature(true);
//! // ... point `AWS_ENDPOINT_URL_SNS` at `sns.uri()` and publish to `topic`, then:
//! let published = sns.published();
//! assert_eq!(published[0].topic_arn, topic);
//! # }
//! ```

use std::sync::{Arc, Mutex};

use wiremock::{Request, ResponseTemplate};

use super::endpoint::{endpoint_methods, signed_endpoint_methods, Endpoint, Service};
use super::fault::{lock, AwsError};
use super::{wire, ACCOUNT_ID};

/// XML namespace of SNS query responses.
const NAMESPACE: &str = "http://sns.amazonaws.com/doc/2010-03-31/";
/// The largest message SNS accepts: 256 KiB.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// The operation name of a publish.
pub const PUBLISH: &str = "Publish";

/// A mocked SNS endpoint.
#[derive(Debug)]
pub struct SnsMock {
    endpoint: Endpoint,
    state: Arc<Topics>,
}

endpoint_methods!(SnsMock);
signed_endpoint_methods!(SnsMock);

/// A message SNS accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishedMessage {
    /// The id SNS answered with.
    pub message_id: String,
    /// The topic it was published to.
    pub topic_arn: String,
    /// `Subject`, when given.
    pub subject: Option<String>,
    /// `Message`.
    pub message: String,
    /// `MessageAttributes`: name and string value, in the order sent.
    pub attributes: Vec<(String, String)>,
}

#[derive(Debug)]
struct Topics {
    region: String,
    arns: Mutex<Vec<String>>,
    published: Mutex<Vec<PublishedMessage>>,
}

impl SnsMock {
    /// Starts an SNS mock whose topic ARNs name `region`.
    pub async fn start(region: &str) -> Self {
        let state = Arc::new(Topics {
            region: region.to_owned(),
            arns: Mutex::default(),
            published: Mutex::default(),
        });
        let endpoint = Endpoint::start(state.clone()).await;
        Self { endpoint, state }
    }

    /// Creates topic `name` (if new) and returns its ARN.
    pub fn create_topic(&self, name: &str) -> String {
        self.state.create(name)
    }

    /// Every message accepted so far, in arrival order.
    pub fn published(&self) -> Vec<PublishedMessage> {
        lock(&self.state.published).clone()
    }

    /// The messages accepted so far on `topic_arn`.
    pub fn published_to(&self, topic_arn: &str) -> Vec<PublishedMessage> {
        lock(&self.state.published).iter().filter(|m| m.topic_arn == topic_arn).cloned().collect()
    }
}

impl Topics {
    fn create(&self, name: &str) -> String {
        let arn = format!("arn:aws:sns:{}:{ACCOUNT_ID}:{name}", self.region);
        let mut arns = lock(&self.arns);
        if !arns.contains(&arn) {
            arns.push(arn.clone());
        }
        arn
    }

    fn publish(&self, form: &[(String, String)]) -> Result<String, AwsError> {
        let field = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let topic = field("TopicArn").or_else(|| field("TargetArn")).ok_or_else(|| {
            invalid("Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter")
        })?;
        let message = field("Message")
            .filter(|m| !m.is_empty())
            .ok_or_else(|| invalid("Invalid parameter: Empty message"))?;
        if message.len() > MAX_MESSAGE_BYTES {
            return Err(invalid("Invalid parameter: Message too long"));
        }
        if !lock(&self.arns).contains(&topic) {
            return Err(AwsError::new(404, "NotFound", "Topic does not exist"));
        }
        let attributes = (1..)
            .map_while(|i| {
                let name = field(&format!("MessageAttributes.entry.{i}.Name"))?;
                let value =
                    field(&format!("MessageAttributes.entry.{i}.Value.StringValue")).unwrap_or_default();
                Some((name, value))
            })
            .collect();
        let message_id = uuid::Uuid::new_v4().to_string();
        lock(&self.published).push(PublishedMessage {
            message_id: message_id.clone(),
            topic_arn: topic,
            subject: field("Subject"),
            message,
            attributes,
        });
        Ok(message_id)
    }
}

fn invalid(message: &str) -> AwsError {
    AwsError::new(400, "InvalidParameter", message)
}

fn query_ok(action: &str, result: &str) -> ResponseTemplate {
    let request_id = wire::request_id();
    let xml = format!(
        "<{action}Response xmlns=\"{NAMESPACE}\">\n  <{action}Result>\n    {result}\n  </{action}Result>\n  \
         <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n\
         </{action}Response>\n"
    );
    ResponseTemplate::new(200).insert_header("x-amzn-RequestId", request_id).set_body_raw(xml, "text/xml")
}

impl Service for Topics {
    fn signing_name(&self) -> &'static str {
        "sns"
    }

    fn handle(&self, operation: &str, request: &Request) -> ResponseTemplate {
        if !wire::is_form(request) {
            let error = AwsError::new(400, "InvalidAction", "SNS speaks the query protocol: a form body");
            return self.error(request, &error);
        }
        let form = wire::form(request);
        let result = match operation {
            PUBLISH => self
                .publish(&form)
                .map(|id| query_ok(PUBLISH, &format!("<MessageId>{}</MessageId>", wire::xml_escape(&id)))),
            "CreateTopic" => match form.iter().find(|(k, _)| k == "Name") {
                Some((_, name)) if !name.is_empty() => {
                    let arn = self.create(name);
                    Ok(query_ok("CreateTopic", &format!("<TopicArn>{}</TopicArn>", wire::xml_escape(&arn))))
                }
                _ => Err(invalid("Invalid parameter: Topic Name")),
            },
            other => Err(AwsError::new(
                400,
                "InvalidAction",
                format!("Could not find operation {other} for version 2010-03-31"),
            )),
        };
        result.unwrap_or_else(|error| self.error(request, &error))
    }

    fn error(&self, _request: &Request, error: &AwsError) -> ResponseTemplate {
        wire::query_error(NAMESPACE, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn publish_needs_a_known_topic_and_a_message() {
        let topics =
            Topics { region: "eu-west-1".into(), arns: Mutex::default(), published: Mutex::default() };
        let arn = topics.create("pages");
        assert_eq!(arn, format!("arn:aws:sns:eu-west-1:{ACCOUNT_ID}:pages"));
        let missing =
            topics.publish(&form(&[("TopicArn", "arn:aws:sns:eu-west-1:1:nope"), ("Message", "x")]));
        assert_eq!(missing.unwrap_err().code, "NotFound");
        let empty = topics.publish(&form(&[("TopicArn", &arn), ("Message", "")]));
        assert_eq!(empty.unwrap_err().code, "InvalidParameter");
        let id = topics
            .publish(&form(&[
                ("TopicArn", &arn),
                ("Message", "hello"),
                ("Subject", "s"),
                ("MessageAttributes.entry.1.Name", "severity"),
                ("MessageAttributes.entry.1.Value.DataType", "String"),
                ("MessageAttributes.entry.1.Value.StringValue", "page"),
            ]))
            .unwrap();
        let published = lock(&topics.published).clone();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].message_id, id);
        assert_eq!(published[0].attributes, vec![("severity".to_owned(), "page".to_owned())]);
    }
}
