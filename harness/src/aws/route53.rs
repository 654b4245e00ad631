//! Route 53 mock: `ChangeResourceRecordSets`, `GetChange`, `ListResourceRecordSets` and
//! `GetHealthCheckStatus` over REST-XML (API version 2013-04-01), as `aws-sdk-route53`
//! sends and reads them.
//!
//! Zones are created with [`Route53Mock::create_hosted_zone`] (with the SOA and NS records
//! Route 53 puts in a new zone). A change batch is validated as a whole and applied
//! atomically: `CREATE` of an existing record set and `DELETE` of a missing one fail the
//! batch with `InvalidChangeBatch`, as Route 53 does. Changes are `PENDING` until
//! `GetChange` has been asked [`Route53Mock::set_pending_polls`] times (default 0), then
//! `INSYNC`.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng as _;
use wiremock::{Request, ResponseTemplate};

use super::endpoint::{endpoint_methods, signed_endpoint_methods, Endpoint, Service};
use super::fault::{lock, AwsError};
use super::wire;

/// XML namespace of Route 53 documents.
const NAMESPACE: &str = "https://route53.amazonaws.com/doc/2013-04-01/";
/// Path prefix of every Route 53 operation.
const PREFIX: &str = "/2013-04-01/";

/// Operation name of `POST /2013-04-01/hostedzone/{Id}/rrset`.
pub const CHANGE_RESOURCE_RECORD_SETS: &str = "ChangeResourceRecordSets";
/// Operation name of `GET /2013-04-01/hostedzone/{Id}/rrset`.
pub const LIST_RESOURCE_RECORD_SETS: &str = "ListResourceRecordSets";
/// Operation name of `GET /2013-04-01/change/{Id}`.
pub const GET_CHANGE: &str = "GetChange";
/// Operation name of `GET /2013-04-01/healthcheck/{Id}/status`.
pub const GET_HEALTH_CHECK_STATUS: &str = "GetHealthCheckStatus";

/// The regions whose checkers report in a health check's status.
const CHECKER_REGIONS: [(&str, &str); 3] =
    [("us-east-1", "54.243.31.192"), ("eu-west-1", "176.34.159.192"), ("ap-southeast-1", "54.255.254.192")];

/// A mocked Route 53 endpoint.
///
/// # Examples
///
/// ```no_run
/// # async fn run() {
/// use lift_harness::aws::{Fault, Route53Mock};
///
/// let route53 = Route53Mock::start().await;
/// let zone = route53.create_hosted_zone("example.com.");
/// route53.fault("ChangeResourceRecordSets", Fault::throttling().times(1));
/// // ... point the code under test at route53.uri(), then:
/// let record = route53.record(&zone, "api.example.com.", "CNAME");
/// # drop(record);
/// # }
/// ```
#[derive(Debug)]
pub struct Route53Mock {
    endpoint: Endpoint,
    state: Arc<State>,
}

endpoint_methods!(Route53Mock);
signed_endpoint_methods!(Route53Mock);

/// A resource record set as the mock stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    /// Fully qualified name with the trailing dot, lower case, e.g. `api.example.com.`.
    pub name: String,
    /// Type, e.g. `CNAME`.
    pub record_type: String,
    /// Set identifier of a weighted, latency or failover record.
    pub set_identifier: Option<String>,
    /// `PRIMARY` or `SECONDARY` for a failover record.
    pub failover: Option<String>,
    /// TTL in seconds (not for alias records).
    pub ttl: Option<u32>,
    /// Values, in order.
    pub values: Vec<String>,
    /// Health check id.
    pub health_check_id: Option<String>,
    /// Alias target DNS name, for alias records.
    pub alias_dns_name: Option<String>,
}

impl RecordSet {
    /// A simple record set with one or more values.
    pub fn simple(name: &str, record_type: &str, ttl: u32, values: &[&str]) -> Self {
        Self {
            name: normalize(name),
            record_type: record_type.to_owned(),
            set_identifier: None,
            failover: None,
            ttl: Some(ttl),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
            health_check_id: None,
            alias_dns_name: None,
        }
    }

    fn same_set(&self, other: &RecordSet) -> bool {
        self.name == other.name
            && self.record_type == other.record_type
            && self.set_identifier == other.set_identifier
    }
}

/// One applied change of a change batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    /// The change id the batch got, without `/change/`.
    pub change_id: String,
    /// The hosted zone id.
    pub zone_id: String,
    /// `CREATE`, `DELETE` or `UPSERT`.
    pub action: String,
    /// The record set as sent.
    pub record_set: RecordSet,
    /// The batch comment.
    pub comment: Option<String>,
}

#[derive(Debug)]
struct Zone {
    id: String,
    name: String,
    records: Vec<RecordSet>,
}

#[derive(Debug)]
struct ChangeEntry {
    id: String,
    submitted_at: String,
    comment: Option<String>,
    polls: u32,
}

#[derive(Debug, Default)]
struct State {
    zones: Mutex<Vec<Zone>>,
    changes: Mutex<Vec<ChangeEntry>>,
    applied: Mutex<Vec<RecordChange>>,
    pending_polls: Mutex<u32>,
    /// Health check id -> whether its checkers see it healthy.
    health_checks: Mutex<std::collections::BTreeMap<String, bool>>,
}

impl Route53Mock {
    /// Starts a Route 53 mock with no hosted zones.
    pub async fn start() -> Self {
        let state = Arc::new(State::default());
        let endpoint = Endpoint::start(state.clone()).await;
        Self { endpoint, state }
    }

    /// Creates a hosted zone for `name` (e.g. `example.com.`) with its SOA and NS records,
    /// and returns its id (e.g. `Z0A1B2C3D4E5F6`).
    pub fn create_hosted_zone(&self, name: &str) -> String {
        let id = format!("Z{}", random_id(13));
        let name = normalize(name);
        let records = vec![
            RecordSet::simple(
                &name,
                "SOA",
                900,
                &["ns-1.awsdns-00.com. awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"],
            ),
            RecordSet::simple(&name, "NS", 172800, &["ns-1.awsdns-00.com.", "ns-2.awsdns-00.net."]),
        ];
        lock(&self.state.zones).push(Zone { id: id.clone(), name, records });
        id
    }

    /// Stores `record` in `zone`, replacing the record set with the same name, type and set
    /// identifier. Returns `false` if there is no such zone.
    pub fn put_record_set(&self, zone: &str, record: RecordSet) -> bool {
        let mut zones = lock(&self.state.zones);
        let Some(zone) = zones.iter_mut().find(|z| z.id == zone_id(zone)) else { return false };
        zone.records.retain(|r| !r.same_set(&record));
        zone.records.push(record);
        true
    }

    /// The record sets of `zone`, in Route 53's order (by name, then type).
    pub fn record_sets(&self, zone: &str) -> Vec<RecordSet> {
        let zones = lock(&self.state.zones);
        let mut records =
            zones.iter().find(|z| z.id == zone_id(zone)).map(|z| z.records.clone()).unwrap_or_default();
        records.sort_by(|a, b| {
            (&a.name, &a.record_type, &a.set_identifier).cmp(&(&b.name, &b.record_type, &b.set_identifier))
        });
        records
    }

    /// The first record set of `zone` with this name (trailing dot optional) and type.
    pub fn record(&self, zone: &str, name: &str, record_type: &str) -> Option<RecordSet> {
        let name = normalize(name);
        self.record_sets(zone).into_iter().find(|r| r.name == name && r.record_type == record_type)
    }

    /// Every change applied so far, in order.
    pub fn changes(&self) -> Vec<RecordChange> {
        lock(&self.state.applied).clone()
    }

    /// Creates or updates health check `id`: `GetHealthCheckStatus` then reports every
    /// checker region's observation as a success (`healthy`) or a failure.
    pub fn set_health_check(&self, id: &str, healthy: bool) {
        lock(&self.state.health_checks).insert(id.to_owned(), healthy);
    }

    /// How many `GetChange` calls answer `PENDING` before a change is `INSYNC`.
    pub fn set_pending_polls(&self, polls: u32) {
        *lock(&self.state.pending_polls) = polls;
    }
}

/// A Route 53 name: lower case with a trailing dot.
fn normalize(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

fn zone_id(id: &str) -> &str {
    id.trim_start_matches("/hostedzone/")
}

fn random_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    (0..len).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

/// The operation and the id in the path (zone or change id).
fn route(request: &Request) -> Option<(&'static str, String)> {
    let rest = request.url.path().strip_prefix(PREFIX)?;
    let parts: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let method = &request.method;
    match parts.as_slice() {
        ["hostedzone", id, "rrset"] if *method == http::Method::POST => {
            Some((CHANGE_RESOURCE_RECORD_SETS, (*id).to_owned()))
        }
        ["hostedzone", id, "rrset"] if *method == http::Method::GET => {
            Some((LIST_RESOURCE_RECORD_SETS, (*id).to_owned()))
        }
        ["change", id] if *method == http::Method::GET => Some((GET_CHANGE, (*id).to_owned())),
        ["healthcheck", id, "status"] if *method == http::Method::GET => {
            Some((GET_HEALTH_CHECK_STATUS, (*id).to_owned()))
        }
        _ => None,
    }
}

fn xml_ok(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("x-amzn-RequestId", wire::request_id())
        .set_body_raw(format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"), "text/xml")
}

fn invalid_input(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidInput", message)
}

fn invalid_batch(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "InvalidChangeBatch", message)
}

impl Service for State {
    fn signing_name(&self) -> &'static str {
        "route53"
    }

    fn operation(&self, request: &Request) -> String {
        match route(request) {
            Some((operation, _)) => operation.to_owned(),
            None => request.url.path().to_owned(),
        }
    }

    fn handle(&self, _operation: &str, request: &Request) -> ResponseTemplate {
        let result = match route(request) {
            Some((CHANGE_RESOURCE_RECORD_SETS, zone)) => self.change(&zone, request),
            Some((LIST_RESOURCE_RECORD_SETS, zone)) => self.list(&zone),
            Some((GET_HEALTH_CHECK_STATUS, id)) => self.health_check_status(&id),
            Some((_, change)) => self.get_change(&change),
            None => Err(AwsError::new(
                404,
                "UnknownOperationException",
                format!("no route for {}", request.url.path()),
            )),
        };
        result.unwrap_or_else(|error| self.error(request, &error))
    }

    fn error(&self, _request: &Request, error: &AwsError) -> ResponseTemplate {
        wire::query_error(NAMESPACE, error)
    }
}

impl State {
    fn change(&self, zone: &str, request: &Request) -> Result<ResponseTemplate, AwsError> {
        let text = std::str::from_utf8(&request.body).map_err(|_| invalid_input("the body is not UTF-8"))?;
        let doc =
            xml::parse(text).map_err(|e| invalid_input(format!("could not parse the XML body: {e}")))?;
        if doc.name != "ChangeResourceRecordSetsRequest" {
            return Err(invalid_input(format!("unexpected root element {}", doc.name)));
        }
        let batch = doc.child("ChangeBatch").ok_or_else(|| invalid_input("ChangeBatch is required"))?;
        let comment = batch.child_text("Comment");
        let mut changes = Vec::new();
        for change in batch.child("Changes").map(|c| c.children_named("Change")).into_iter().flatten() {
            let action = change.child_text("Action").unwrap_or_default();
            if !matches!(action.as_str(), "CREATE" | "DELETE" | "UPSERT") {
                return Err(invalid_input(format!("invalid Action {action:?}")));
            }
            let set = change
                .child("ResourceRecordSet")
                .ok_or_else(|| invalid_input("ResourceRecordSet is required"))?;
            changes.push((action, record_set(set)?));
        }
        if changes.is_empty() {
            return Err(invalid_input("the change batch has no changes"));
        }

        let mut zones = lock(&self.zones);
        let zone = zones.iter_mut().find(|z| z.id == zone_id(zone)).ok_or_else(|| {
            AwsError::new(404, "NoSuchHostedZone", format!("No hosted zone found with ID: {zone}"))
        })?;
        // Validate and apply on a copy: a batch applies as a whole or not at all.
        let mut records = zone.records.clone();
        for (action, set) in &changes {
            if !set.name.ends_with(&zone.name) {
                return Err(invalid_batch(format!(
                    "[RRSet with DNS name {} is not permitted in zone {}]",
                    set.name, zone.name
                )));
            }
            let existing = records.iter().position(|r| r.same_set(set));
            match (action.as_str(), existing) {
                ("CREATE", Some(_)) => {
                    return Err(invalid_batch(format!(
                        "[Tried to create resource record set [name='{}', type='{}'] but it already exists]",
                        set.name, set.record_type
                    )))
                }
                ("DELETE", None) => {
                    return Err(invalid_batch(format!(
                        "[Tried to delete resource record set [name='{}', type='{}'] but it was not found]",
                        set.name, set.record_type
                    )))
                }
                ("DELETE", Some(i)) => {
                    records.remove(i);
                }
                (_, existing) => {
                    if let Some(i) = existing {
                        records.remove(i);
                    }
                    records.push(set.clone());
                }
            }
        }
        zone.records = records;
        let zone_id = zone.id.clone();
        drop(zones);

        let id = format!("C{}", random_id(13));
        let submitted_at = iso8601(SystemTime::now());
        let mut applied = lock(&self.applied);
        for (action, record_set) in changes {
            applied.push(RecordChange {
                change_id: id.clone(),
                zone_id: zone_id.clone(),
                action,
                record_set,
                comment: comment.clone(),
            });
        }
        drop(applied);
        let entry = ChangeEntry { id, submitted_at, comment, polls: 0 };
        let body = format!(
            "<ChangeResourceRecordSetsResponse xmlns=\"{NAMESPACE}\">{}</ChangeResourceRecordSetsResponse>",
            change_info(&entry, "PENDING")
        );
        lock(&self.changes).push(entry);
        Ok(xml_ok(body))
    }

    fn get_change(&self, id: &str) -> Result<ResponseTemplate, AwsError> {
        let id = id.trim_start_matches("/change/");
        let pending_polls = *lock(&self.pending_polls);
        let mut changes = lock(&self.changes);
        let entry = changes.iter_mut().find(|c| c.id == id).ok_or_else(|| {
            AwsError::new(
                404,
                "NoSuchChange",
                format!("A change with the specified change ID does not exist: {id}"),
            )
        })?;
        entry.polls += 1;
        let status = if entry.polls > pending_polls { "INSYNC" } else { "PENDING" };
        Ok(xml_ok(format!(
            "<GetChangeResponse xmlns=\"{NAMESPACE}\">{}</GetChangeResponse>",
            change_info(entry, status)
        )))
    }

    fn health_check_status(&self, id: &str) -> Result<ResponseTemplate, AwsError> {
        let healthy = lock(&self.health_checks).get(id).copied().ok_or_else(|| {
            AwsError::new(404, "NoSuchHealthCheck", format!("A health check with id {id} does not exist."))
        })?;
        let status = match healthy {
            true => "Success: HTTP Status Code 200, OK",
            false => "Failure: HTTP Status Code 503, Service Unavailable",
        };
        let checked = iso8601(SystemTime::now());
        let observations: String = CHECKER_REGIONS
            .iter()
            .map(|(region, ip)| {
                format!(
                    "<HealthCheckObservation><Region>{region}</Region><IPAddress>{ip}</IPAddress>\
                     <StatusReport><Status>{status}</Status><CheckedTime>{checked}</CheckedTime></StatusReport>\
                     </HealthCheckObservation>"
                )
            })
            .collect();
        Ok(xml_ok(format!(
            "<GetHealthCheckStatusResponse xmlns=\"{NAMESPACE}\"><HealthCheckObservations>{observations}\
             </HealthCheckObservations></GetHealthCheckStatusResponse>"
        )))
    }

    fn list(&self, zone: &str) -> Result<ResponseTemplate, AwsError> {
        let zones = lock(&self.zones);
        let zone = zones.iter().find(|z| z.id == zone_id(zone)).ok_or_else(|| {
            AwsError::new(404, "NoSuchHostedZone", format!("No hosted zone found with ID: {zone}"))
        })?;
        let mut records = zone.records.clone();
        records.sort_by(|a, b| {
            (&a.name, &a.record_type, &a.set_identifier).cmp(&(&b.name, &b.record_type, &b.set_identifier))
        });
        let sets: String = records.iter().map(record_xml).collect();
        Ok(xml_ok(format!(
            "<ListResourceRecordSetsResponse xmlns=\"{NAMESPACE}\"><ResourceRecordSets>{sets}</ResourceRecordSets>\
             <IsTruncated>false</IsTruncated><MaxItems>300</MaxItems></ListResourceRecordSetsResponse>"
        )))
    }
}

fn change_info(entry: &ChangeEntry, status: &str) -> String {
    let comment = entry
        .comment
        .as_ref()
        .map(|c| format!("<Comment>{}</Comment>", wire::xml_escape(c)))
        .unwrap_or_default();
    format!(
        "<ChangeInfo><Id>/change/{}</Id><Status>{status}</Status><SubmittedAt>{}</SubmittedAt>{comment}</ChangeInfo>",
        entry.id, entry.submitted_at
    )
}

fn record_set(el: &xml::Element) -> Result<RecordSet, AwsError> {
    let name = el.child_text("Name").ok_or_else(|| invalid_input("ResourceRecordSet.Name is required"))?;
    let record_type =
        el.child_text("Type").ok_or_else(|| invalid_input("ResourceRecordSet.Type is required"))?;
    let ttl = match el.child_text("TTL") {
        Some(ttl) => Some(ttl.parse().map_err(|_| invalid_input(format!("invalid TTL {ttl:?}")))?),
        None => None,
    };
    let values: Vec<String> = el
        .child("ResourceRecords")
        .map(|rr| rr.children_named("ResourceRecord").filter_map(|r| r.child_text("Value")).collect())
        .unwrap_or_default();
    let alias_dns_name = el.child("AliasTarget").and_then(|a| a.child_text("DNSName"));
    if alias_dns_name.is_none() && (values.is_empty() || ttl.is_none()) {
        return Err(invalid_input("a record set needs TTL and ResourceRecords, or an AliasTarget"));
    }
    Ok(RecordSet {
        name: normalize(&name),
        record_type,
        set_identifier: el.child_text("SetIdentifier"),
        failover: el.child_text("Failover"),
        ttl,
        values,
        health_check_id: el.child_text("HealthCheckId"),
        alias_dns_name,
    })
}

fn record_xml(r: &RecordSet) -> String {
    let e = wire::xml_escape;
    let mut out = format!("<ResourceRecordSet><Name>{}</Name><Type>{}</Type>", e(&r.name), e(&r.record_type));
    if let Some(id) = &r.set_identifier {
        out.push_str(&format!("<SetIdentifier>{}</SetIdentifier>", e(id)));
    }
    if let Some(failover) = &r.failover {
        out.push_str(&format!("<Failover>{}</Failover>", e(failover)));
    }
    if let Some(alias) = &r.alias_dns_name {
        out.push_str(&format!(
            "<AliasTarget><HostedZoneId>Z0ALIAS</HostedZoneId><DNSName>{}</DNSName>\
             <EvaluateTargetHealth>false</EvaluateTargetHealth></AliasTarget>",
            e(alias)
        ));
    }
    if let Some(ttl) = r.ttl {
        out.push_str(&format!("<TTL>{ttl}</TTL>"));
    }
    if !r.values.is_empty() {
        out.push_str("<ResourceRecords>");
        for value in &r.values {
            out.push_str(&format!("<ResourceRecord><Value>{}</Value></ResourceRecord>", e(value)));
        }
        out.push_str("</ResourceRecords>");
    }
    if let Some(id) = &r.health_check_id {
        out.push_str(&format!("<HealthCheckId>{}</HealthCheckId>", e(id)));
    }
    out.push_str("</ResourceRecordSet>");
    out
}

/// `2024-05-01T12:34:56.789Z`.
fn iso8601(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Just enough XML to read change batches: elements, text, entities; attributes, comments,
/// declarations and namespace prefixes are skipped.
mod xml {
    #[derive(Debug, Default)]
    pub(super) struct Element {
        pub(super) name: String,
        text: String,
        children: Vec<Element>,
    }

    impl Element {
        pub(super) fn child(&self, name: &str) -> Option<&Element> {
            self.children.iter().find(|c| c.name == name)
        }

        pub(super) fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
            self.children.iter().filter(move |c| c.name == name)
        }

        /// The trimmed text of the first child called `name`, if any.
        pub(super) fn child_text(&self, name: &str) -> Option<String> {
            self.child(name).map(|c| c.text.trim().to_owned())
        }
    }

    /// The local name of a tag, without attributes or namespace prefix.
    fn local(tag: &str) -> String {
        let name = tag.split_whitespace().next().unwrap_or_default();
        name.rsplit(':').next().unwrap_or(name).to_owned()
    }

    pub(super) fn parse(text: &str) -> Result<Element, String> {
        let mut stack = vec![Element::default()];
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("<?") {
                rest = &after[after.find("?>").ok_or("unterminated declaration")? + 2..];
            } else if let Some(after) = rest.strip_prefix("<!--") {
                rest = &after[after.find("-->").ok_or("unterminated comment")? + 3..];
            } else if let Some(after) = rest.strip_prefix("<![CDATA[") {
                let end = after.find("]]>").ok_or("unterminated CDATA")?;
                stack.last_mut().ok_or("unbalanced")?.text.push_str(&after[..end]);
                rest = &after[end + 3..];
            } else if let Some(after) = rest.strip_prefix("</") {
                let end = after.find('>').ok_or("unterminated end tag")?;
                let name = local(&after[..end]);
                let element = stack.pop().filter(|_| !stack.is_empty()).ok_or("unbalanced end tag")?;
                if element.name != name {
                    return Err(format!("</{name}> closes <{}>", element.name));
                }
                stack.last_mut().ok_or("unbalanced")?.children.push(element);
                rest = &after[end + 1..];
            } else if let Some(after) = rest.strip_prefix('<') {
                let end = after.find('>').ok_or("unterminated tag")?;
                let tag = &after[..end];
                let (tag, closed) = match tag.strip_suffix('/') {
                    Some(tag) => (tag, true),
                    None => (tag, false),
                };
                let element = Element { name: local(tag), ..Element::default() };
                if element.name.is_empty() {
                    return Err("empty tag".into());
                }
                if closed {
                    stack.last_mut().ok_or("unbalanced")?.children.push(element);
                } else {
                    stack.push(element);
                }
                rest = &after[end + 1..];
            } else {
                let end = rest.find('<').unwrap_or(rest.len());
                stack.last_mut().ok_or("unbalanced")?.text.push_str(&unescape(&rest[..end]));
                rest = &rest[end..];
            }
        }
        if stack.len() != 1 {
            return Err(format!(
                "<{}> is not closed",
                stack.last().map(|e| e.name.as_str()).unwrap_or_default()
            ));
        }
        let root = stack.pop().unwrap_or_default();
        root.children.into_iter().next().ok_or_else(|| "no root element".to_owned())
    }

    fn unescape(text: &str) -> String {
        text.replace("&lt;", "<")
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
    fn change_batches_parse_with_prefixes_and_entities() {
        let doc = xml::parse(
            "<?xml version=\"1.0\"?><!-- c --><r53:ChangeResourceRecordSetsRequest xmlns:r53=\"x\">\
             <r53:ChangeBatch><r53:Comment>a &amp; b</r53:Comment><Changes><Change><Action>UPSERT</Action>\
             <ResourceRecordSet><Name>API.example.com</Name><Type>CNAME</Type><TTL>60</TTL>\
             <ResourceRecords><ResourceRecord><Value>x.example.com</Value></ResourceRecord></ResourceRecords>\
             </ResourceRecordSet></Change></Changes></r53:ChangeBatch></r53:ChangeResourceRecordSetsRequest>",
        )
        .unwrap();
        assert_eq!(doc.name, "ChangeResourceRecordSetsRequest");
        let batch = doc.child("ChangeBatch").unwrap();
        assert_eq!(batch.child_text("Comment").as_deref(), Some("a & b"));
        let change = batch.child("Changes").unwrap().children_named("Change").next().unwrap();
        let set = record_set(change.child("ResourceRecordSet").unwrap()).unwrap();
        assert_eq!(set, RecordSet::simple("api.example.com.", "CNAME", 60, &["x.example.com"]));
        assert!(xml::parse("<a><b></a>").is_err());
        assert!(xml::parse("<a>").is_err());
    }

    #[test]
    fn timestamps_are_iso8601() {
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_709_251_200_123);
        assert_eq!(iso8601(at), "2024-03-01T00:00:00.123Z");
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
