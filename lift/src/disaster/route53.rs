//! DNS failover through the Route 53 API (REST-XML), for clients that resolve a name.
//!
//! Requests are not signed: this speaks to a local Route 53 endpoint (the harness mock,
//! `AWS_ENDPOINT_URL_ROUTE_53`). Real Route 53 needs SigV4 and https, which this client does
//! not do yet.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;

use super::env::{self, ProcessEnv, Vars};
use super::region::validate_url;
use super::{ConfigError, RegionSet, Route53Error};

/// The Route 53 API version in every path.
const API: &str = "2013-04-01";
/// The XML namespace of Route 53 documents.
const NAMESPACE: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// The DNS record the orchestrator points at the active region on every switch.
///
/// # Examples
///
/// ```
/// use lift::disaster::Route53Failover;
///
/// let dns = Route53Failover::new("Z0LIFT", "api.example.com.")
///     .endpoint("http://127.0.0.1:4566")
///     .target("us-east-1", "api.us-east-1.example.com")
///     .target("eu-west-1", "api.eu-west-1.example.com");
/// let record = dns.record_for("eu-west-1").unwrap();
/// assert_eq!(record.values, ["api.eu-west-1.example.com"]);
/// assert_eq!(record.record_type, "CNAME");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route53Failover {
    /// The Route 53 endpoint; `None` reads `AWS_ENDPOINT_URL_ROUTE_53`.
    pub endpoint: Option<String>,
    /// The hosted zone id, e.g. `Z0LIFT` (a `/hostedzone/` prefix is accepted).
    pub hosted_zone_id: String,
    /// The record name, e.g. `api.example.com.`.
    pub record_name: String,
    /// The record type (default `CNAME`).
    pub record_type: String,
    /// The record TTL in seconds (default 60).
    pub ttl: u32,
    /// The record value per region.
    pub targets: BTreeMap<String, String>,
    /// A set identifier, for a record that is one of a weighted or failover set.
    pub set_identifier: Option<String>,
    /// The longest a Route 53 request may take (default 5 s).
    pub timeout: Duration,
}

impl Route53Failover {
    /// A `CNAME` with a 60 s TTL in `hosted_zone_id`, without targets yet.
    pub fn new(hosted_zone_id: impl Into<String>, record_name: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            hosted_zone_id: hosted_zone_id.into(),
            record_name: record_name.into(),
            record_type: "CNAME".into(),
            ttl: 60,
            targets: BTreeMap::new(),
            set_identifier: None,
            timeout: Duration::from_secs(5),
        }
    }

    /// Sets the Route 53 endpoint.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Sets the record type (`CNAME`, `A`, `AAAA`, ...).
    pub fn record_type(mut self, record_type: impl Into<String>) -> Self {
        self.record_type = record_type.into();
        self
    }

    /// Sets the record TTL in seconds.
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the record value while `region` is active.
    pub fn target(mut self, region: impl Into<String>, value: impl Into<String>) -> Self {
        self.targets.insert(region.into(), value.into());
        self
    }

    /// Sets the record's set identifier.
    pub fn set_identifier(mut self, id: impl Into<String>) -> Self {
        self.set_identifier = Some(id.into());
        self
    }

    /// Sets the request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The record from `LIFT_ROUTE53_HOSTED_ZONE_ID`, `LIFT_ROUTE53_RECORD_NAME`,
    /// `LIFT_ROUTE53_RECORD_TYPE`, `LIFT_ROUTE53_TTL` and `LIFT_ROUTE53_TARGET_<REGION>` for each
    /// region of `regions`; `None` when no hosted zone is set.
    pub fn from_env(regions: &RegionSet) -> Result<Option<Self>, ConfigError> {
        Self::from_vars(&ProcessEnv, regions)
    }

    fn from_vars(vars: &dyn Vars, regions: &RegionSet) -> Result<Option<Self>, ConfigError> {
        let Some(zone) = vars.get("LIFT_ROUTE53_HOSTED_ZONE_ID") else {
            return Ok(None);
        };
        let name = vars
            .get("LIFT_ROUTE53_RECORD_NAME")
            .ok_or_else(|| ConfigError::MissingEnv("LIFT_ROUTE53_RECORD_NAME".into()))?;
        let mut dns = Self::new(zone, name);
        if let Some(t) = vars.get("LIFT_ROUTE53_RECORD_TYPE") {
            dns.record_type = t;
        }
        if let Some(ttl) = env::count(vars, "LIFT_ROUTE53_TTL")? {
            dns.ttl = ttl;
        }
        for region in regions {
            if let Some(value) =
                vars.get(&format!("LIFT_ROUTE53_TARGET_{}", env::region_suffix(region.name())))
            {
                dns = dns.target(region.name(), value);
            }
        }
        Ok(Some(dns))
    }

    /// Checks the record against `regions` (a target for each) and returns a client for the
    /// endpoint.
    pub fn client(&self, regions: &RegionSet) -> Result<Route53Client, ConfigError> {
        if zone_id(&self.hosted_zone_id).is_empty() {
            return Err(ConfigError::invalid("hosted_zone_id", "must not be empty"));
        }
        if self.record_name.is_empty() || self.record_type.is_empty() {
            return Err(ConfigError::invalid("record_name", "name and type must not be empty"));
        }
        if let Some(missing) = regions.iter().find(|r| !self.targets.contains_key(r.name())) {
            return Err(ConfigError::invalid(
                "targets",
                format!("no record value for region {}", missing.name()),
            ));
        }
        let endpoint = match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => ProcessEnv
                .get("AWS_ENDPOINT_URL_ROUTE_53")
                .ok_or_else(|| ConfigError::MissingEnv("AWS_ENDPOINT_URL_ROUTE_53".into()))?,
        };
        Ok(Route53Client::new(&endpoint)?.timeout(self.timeout))
    }

    /// The record set that sends traffic to `region`.
    pub fn record_for(&self, region: &str) -> Option<ResourceRecordSet> {
        let value = self.targets.get(region)?;
        Some(ResourceRecordSet {
            name: self.record_name.clone(),
            record_type: self.record_type.clone(),
            ttl: Some(self.ttl),
            values: vec![value.clone()],
            set_identifier: self.set_identifier.clone(),
        })
    }

    /// The hosted zone id without a `/hostedzone/` prefix.
    pub fn zone_id(&self) -> &str {
        zone_id(&self.hosted_zone_id)
    }
}

fn zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

/// A Route 53 resource record set (simple or with a set identifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRecordSet {
    /// The record name, e.g. `api.example.com.`.
    pub name: String,
    /// The type, e.g. `CNAME`.
    pub record_type: String,
    /// The TTL in seconds.
    pub ttl: Option<u32>,
    /// The values.
    pub values: Vec<String>,
    /// The set identifier, if any.
    pub set_identifier: Option<String>,
}

/// What a change does to a record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    /// Create; fails if it exists.
    Create,
    /// Delete; fails if it does not exist.
    Delete,
    /// Create or replace.
    Upsert,
}

impl ChangeAction {
    fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Create => "CREATE",
            ChangeAction::Delete => "DELETE",
            ChangeAction::Upsert => "UPSERT",
        }
    }
}

/// The state of a submitted change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeInfo {
    /// The change id, e.g. `C2682N5HXP0BZ4` (without `/change/`).
    pub id: String,
    /// `PENDING` or `INSYNC`.
    pub status: String,
    /// When Route 53 accepted the change (ISO 8601), if it said.
    pub submitted_at: Option<String>,
}

/// A minimal Route 53 client: change record sets, follow a change, list record sets.
#[derive(Debug, Clone)]
pub struct Route53Client {
    endpoint: String,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Route53Client {
    /// A client of the Route 53 API at `endpoint` (plain `http`), with a 5 s timeout.
    pub fn new(endpoint: &str) -> Result<Self, ConfigError> {
        validate_url("route53 endpoint", endpoint, &["http"])?;
        Ok(Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
            timeout: Duration::from_secs(5),
        })
    }

    /// Sets the request timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Creates or replaces `record` in `zone`.
    pub async fn upsert(
        &self,
        zone: &str,
        record: &ResourceRecordSet,
        comment: Option<&str>,
    ) -> Result<ChangeInfo, Route53Error> {
        self.change_resource_record_sets(zone, &[(ChangeAction::Upsert, record.clone())], comment).await
    }

    /// `ChangeResourceRecordSets`: applies `changes` to `zone` as one batch.
    pub async fn change_resource_record_sets(
        &self,
        zone: &str,
        changes: &[(ChangeAction, ResourceRecordSet)],
        comment: Option<&str>,
    ) -> Result<ChangeInfo, Route53Error> {
        let body = change_batch_xml(changes, comment);
        let path = format!("/{API}/hostedzone/{}/rrset/", zone_id(zone));
        let xml = self.send(http::Method::POST, &path, body).await?;
        change_info(&xml)
    }

    /// `GetChange`: the state of a change.
    pub async fn get_change(&self, id: &str) -> Result<ChangeInfo, Route53Error> {
        let path = format!("/{API}/change/{}", id.trim_start_matches("/change/"));
        let xml = self.send(http::Method::GET, &path, String::new()).await?;
        change_info(&xml)
    }

    /// `ListResourceRecordSets`: the record sets of `zone` (first page).
    pub async fn list_resource_record_sets(
        &self,
        zone: &str,
    ) -> Result<Vec<ResourceRecordSet>, Route53Error> {
        let path = format!("/{API}/hostedzone/{}/rrset", zone_id(zone));
        let xml = self.send(http::Method::GET, &path, String::new()).await?;
        Ok(xml::elements(&xml, "ResourceRecordSet").into_iter().map(record_set).collect())
    }

    async fn send(&self, method: http::Method, path: &str, body: String) -> Result<String, Route53Error> {
        let mut request = http::Request::builder().method(method).uri(format!("{}{path}", self.endpoint));
        if !body.is_empty() {
            request = request.header(http::header::CONTENT_TYPE, "application/xml");
        }
        let request =
            request.body(Full::new(Bytes::from(body))).map_err(|err| Route53Error::Http(err.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|err| Route53Error::Http(super::error::sdk_message(&err)))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|err| Route53Error::Http(err.to_string()))?
                .to_bytes();
            Ok::<_, Route53Error>((status, String::from_utf8_lossy(&bytes).into_owned()))
        };
        let (status, text) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Route53Error::TimedOut(self.timeout))??;
        if status.is_success() {
            return Ok(text);
        }
        Err(Route53Error::Api {
            status: status.as_u16(),
            code: xml::element(&text, "Code").map(xml::unescape).unwrap_or_else(|| "Unknown".into()),
            message: xml::element(&text, "Message").map(xml::unescape).unwrap_or_default(),
        })
    }
}

fn change_batch_xml(changes: &[(ChangeAction, ResourceRecordSet)], comment: Option<&str>) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ChangeResourceRecordSetsRequest xmlns=\"{NAMESPACE}\">\
         <ChangeBatch>"
    );
    if let Some(comment) = comment {
        out.push_str(&format!("<Comment>{}</Comment>", xml::escape(comment)));
    }
    out.push_str("<Changes>");
    for (action, record) in changes {
        out.push_str(&format!(
            "<Change><Action>{}</Action><ResourceRecordSet><Name>{}</Name><Type>{}</Type>",
            action.as_str(),
            xml::escape(&record.name),
            xml::escape(&record.record_type)
        ));
        if let Some(id) = &record.set_identifier {
            out.push_str(&format!("<SetIdentifier>{}</SetIdentifier>", xml::escape(id)));
        }
        if let Some(ttl) = record.ttl {
            out.push_str(&format!("<TTL>{ttl}</TTL>"));
        }
        out.push_str("<ResourceRecords>");
        for value in &record.values {
            out.push_str(&format!("<ResourceRecord><Value>{}</Value></ResourceRecord>", xml::escape(value)));
        }
        out.push_str("</ResourceRecords></ResourceRecordSet></Change>");
    }
    out.push_str("</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>");
    out
}

fn change_info(xml_text: &str) -> Result<ChangeInfo, Route53Error> {
    let info = xml::element(xml_text, "ChangeInfo")
        .ok_or_else(|| Route53Error::InvalidResponse("no ChangeInfo element".into()))?;
    let id = xml::element(info, "Id").ok_or_else(|| Route53Error::InvalidResponse("no change id".into()))?;
    Ok(ChangeInfo {
        id: xml::unescape(id).trim_start_matches("/change/").to_owned(),
        status: xml::element(info, "Status").map(xml::unescape).unwrap_or_default(),
        submitted_at: xml::element(info, "SubmittedAt").map(xml::unescape),
    })
}

fn record_set(xml_text: &str) -> ResourceRecordSet {
    let text = |tag| xml::element(xml_text, tag).map(xml::unescape);
    ResourceRecordSet {
        name: text("Name").unwrap_or_default(),
        record_type: text("Type").unwrap_or_default(),
        ttl: text("TTL").and_then(|t| t.parse().ok()),
        values: xml::elements(xml_text, "Value").into_iter().map(xml::unescape).collect(),
        set_identifier: text("SetIdentifier"),
    }
}

/// Just enough XML for Route 53 answers: elements without namespace prefixes.
mod xml {
    /// The content of the first `<tag>` element (attributes allowed), if any.
    pub(super) fn element<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
        elements(text, tag).into_iter().next()
    }

    /// The contents of every top-level `<tag>` element, in order.
    pub(super) fn elements<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut rest = text;
        let close = format!("</{tag}>");
        while let Some(start) = find_open(rest, tag) {
            let after = &rest[start..];
            let Some(gt) = after.find('>') else { break };
            if after[..gt].ends_with('/') {
                out.push("");
                rest = &after[gt + 1..];
                continue;
            }
            let body = &after[gt + 1..];
            let Some(end) = body.find(&close) else { break };
            out.push(&body[..end]);
            rest = &body[end + close.len()..];
        }
        out
    }

    /// The byte offset of the next `<tag>`, `<tag ...>` or `<tag/>`.
    fn find_open(text: &str, tag: &str) -> Option<usize> {
        let needle = format!("<{tag}");
        let mut from = 0;
        while let Some(i) = text[from..].find(&needle) {
            let at = from + i;
            match text[at + needle.len()..].chars().next() {
                Some('>' | '/' | ' ' | '\t' | '\n' | '\r') => return Some(at),
                _ => from = at + needle.len(),
            }
        }
        None
    }

    pub(super) fn escape(text: &str) -> String {
        text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
    }

    pub(super) fn unescape(text: &str) -> String {
        text.trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_batches_are_route53_xml() {
        let record = ResourceRecordSet {
            name: "api.example.com.".into(),
            record_type: "CNAME".into(),
            ttl: Some(60),
            values: vec!["a&b.example.com".into()],
            set_identifier: None,
        };
        let xml =
            change_batch_xml(&[(ChangeAction::Upsert, record.clone())], Some("lift: us-east-1 -> eu-west-1"));
        assert!(xml.contains(
            "<ChangeResourceRecordSetsRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">"
        ));
        assert!(xml.contains("<Action>UPSERT</Action>"));
        assert!(xml.contains("<Value>a&amp;b.example.com</Value>"));
        assert_eq!(record_set(xml::element(&xml, "ResourceRecordSet").unwrap()), record);
    }

    #[test]
    fn change_info_and_errors_are_read() {
        let ok = "<ChangeResourceRecordSetsResponse><ChangeInfo><Id>/change/C1</Id><Status>PENDING</Status>\
                  <SubmittedAt>2024-01-01T00:00:00Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>";
        let info = change_info(ok).unwrap();
        assert_eq!((info.id.as_str(), info.status.as_str()), ("C1", "PENDING"));
        assert!(matches!(change_info("<x/>"), Err(Route53Error::InvalidResponse(_))));
        assert_eq!(xml::elements("<a><b>1</b><bb>x</bb><b attr=\"y\">2</b><b/></a>", "b"), ["1", "2", ""]);
    }

    #[test]
    fn every_region_needs_a_target() {
        let regions = RegionSet::builder()
            .region(super::super::RegionConfig::new("us-east-1"))
            .region(super::super::RegionConfig::new("eu-west-1"))
            .build()
            .unwrap();
        let dns = Route53Failover::new("Z1", "api.example.com.")
            .endpoint("http://127.0.0.1:1")
            .target("us-east-1", "a.example.com");
        assert!(matches!(dns.client(&regions).unwrap_err(), ConfigError::Invalid { setting: "targets", .. }));
        assert!(dns.target("eu-west-1", "b.example.com").client(&regions).is_ok());
    }
}
