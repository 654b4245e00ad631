//! The world of the compliance suites and its steps (listed, with examples, in
//! [`super::library::STEPS`] and `features/README.md`).

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_dynamodb::types::AttributeValue;
use cucumber::{given, then, when};
use http::{Method, StatusCode};
use lift::app::AppService;
use lift::middleware::auth::{require_scope, Issuer, JwtLayer};
use lift::middleware::logging::scrub;
use lift::security::audit::{
    AuditHandle, AuditLayer, AuditQuery, AuditTrail, ChainBreak, CheckpointKey, Outcome,
};
use lift::security::compliance::{AuditEvidence, ComplianceLayer, ComplianceRecorder, RuleRecord};
use lift::security::protection::detect::scan_text;
use lift::security::protection::{AwsKmsClient, DataClass, Envelope};
use lift::security::threat::{ThreatLayer, ThreatStore};
use lift::store::{KeyAttribute, TableDef};
use lift::{Body, Request, Response};
use tower::ServiceExt;

use super::target::TargetEnv;
use crate::dynamodb::DynamoDbLocal;

/// The scope needed to read and write health records.
const RECORDS_SCOPE: &str = "records:read";
/// The audience of the suites' tokens.
const AUDIENCE: &str = "lift-compliance-suites";
/// The checkpoint key of the suites' audit trails (test data only).
const CHECKPOINT_KEY: &[u8] = b"compliance-suites-checkpoint-key-0001";

/// A stored item, as DynamoDB gives it.
type Item = HashMap<String, AttributeValue>;

/// A tenant and one of its customer ids: a customer is one tenant's (another tenant may use
/// the same id for someone else).
type CustomerKey = (String, String);

/// The shortest word of a sent value an absence may be asserted of, and the shortest text
/// looked for anywhere in a text rather than as a whole word of it.
const MIN_WORD: usize = 4;

/// The fewest digits a text needs to be also looked for without its separators: shorter
/// runs of digits turn up by chance in the digests and ids the tables hold.
const MIN_NUMBER_DIGITS: usize = 8;

/// A value read as text with at least one replacement character in this many characters is
/// taken for ciphertext, which holds no word (see `is_not_text`).
const NOT_TEXT_SHARE: usize = 3;

/// The customer the suites' payments are for, unless a step names another.
const CUSTOMER_NAME: &str = "Ada Lovelace";

/// The domains of the customers' emails, in mixed case (see
/// [`ComplianceWorld::customer_email`]).
const EMAIL_DOMAINS: [&str; 3] = ["Example.COM", "Mail.Example.ORG", "Post.Example.NET"];

/// The letters and digits of the tag in the customers' emails, in both cases.
const TAG_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// What another tenant's payment for the same customer id answered just before an erasure.
#[derive(Debug, Clone)]
struct Kept {
    tenant: String,
    payment: String,
    /// Whether it was answered (2xx) then.
    readable: bool,
    /// The personal data sent for that tenant's customer that the answer held.
    answered: Vec<String>,
}

/// One scenario's state: its own service, tables, recorder, tokens and requests.
#[derive(Debug, Default, cucumber::World)]
pub struct ComplianceWorld {
    env: Option<Env>,
    region: Option<String>,
    status: Option<StatusCode>,
    /// The last answer's headers and body.
    headers: http::HeaderMap,
    body: String,
    /// Where the scenario's log lines start (set when its first service is built; a
    /// service rebuilt in another region keeps it, so no line of the scenario is skipped).
    log_mark: Option<usize>,
    /// What this scenario's requests did to the rules (never another scenario's).
    pub(crate) recorder: ComplianceRecorder,
    /// Roles and scopes per tenant, when a step set them.
    grants: HashMap<String, (Vec<String>, Vec<String>)>,
    /// The id of the payment the scenario created last.
    last_payment: Option<String>,
    /// Headers and transport for the next request only.
    next_headers: Vec<(String, String)>,
    next_plain: bool,
    /// Each tenant's stored items after its own last request.
    snapshots: HashMap<String, Vec<BTreeMap<String, String>>>,
    /// Tenants that sent requests (their audit chains go into the report).
    pub(crate) tenants: HashSet<String>,
    /// Tenants whose chain the scenario altered on purpose.
    pub(crate) altered: HashSet<String>,
    /// The verified audit chains of services the scenario replaced (a step that moves the
    /// service to another region builds a new one, with a new trail).
    pub(crate) earlier_chains: Vec<AuditEvidence>,
    /// Every text the scenario's requests carried (paths, header values, the strings and
    /// numbers of bodies, the tokens' subjects and tenants): an absence is asserted only of
    /// one of them (or of a word of one), since a text never sent is absent whatever the
    /// service does.
    sent: Vec<String>,
    /// The names, emails, countries and payment descriptions sent for each tenant's customer,
    /// and the payments made for each: what an erasure in that tenant must remove, and what an
    /// erasure of the same id in another tenant must leave alone.
    customer_data: HashMap<CustomerKey, HashSet<String>>,
    customer_payments: HashMap<CustomerKey, Vec<String>>,
    /// The customers their tenant erased (answered 2xx), until it pays for them again.
    erased: HashSet<CustomerKey>,
    /// For each erasure: the other tenants' payments for the same customer id, as they were
    /// answered just before it.
    kept: HashMap<CustomerKey, Vec<Kept>>,
    /// The tag and domain of the scenario's customers' emails, drawn at its first payment.
    email_parts: Option<(String, &'static str)>,
}

#[derive(Clone)]
pub(crate) struct Env {
    service: AppService,
    client: aws_sdk_dynamodb::Client,
    tables: Vec<String>,
    audit_table: String,
    /// Every table of the scenario: the service's, the records', and the audit trail's,
    /// checkpoints' and blocklist's.
    all_tables: Vec<String>,
    pub(crate) trail: AuditTrail,
    /// The actions the audit layer names by default: each route's `METHOD /pattern`.
    route_actions: HashSet<String>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env").field("tables", &self.tables).finish_non_exhaustive()
    }
}

/// The health-records part of the suites' service: records stored encrypted (envelope
/// encryption, data keys from the KMS mock) in DynamoDB, per tenant and patient.
#[derive(Clone)]
struct Records {
    client: aws_sdk_dynamodb::Client,
    table: String,
    envelope: std::sync::Arc<Envelope>,
}

fn records_table() -> TableDef {
    TableDef::new("compliance-records", KeyAttribute::string("pk")).with_sort_key(KeyAttribute::string("sk"))
}

impl Records {
    fn tenant(req: &Request) -> Option<String> {
        lift::Context::of(req).and_then(lift::Context::principal).map(|p| p.tenant.clone())
    }

    /// `POST /patients/:id/records`: `{"diagnosis": "...", "medications": [...]}`.
    async fn store(&self, req: Request) -> Response {
        let (Some(tenant), Some(id)) = (Self::tenant(&req), lift::path_param(&req, "id").map(str::to_owned))
        else {
            return lift::Error::forbidden("no tenant").into_response();
        };
        if let Some(audit) = AuditHandle::of(&req) {
            audit.action("records.write").resource(format!("patient/{id}")).data_class("phi");
        }
        let sealed = match self.envelope.encrypt(&tenant, req.body().as_bytes()).await {
            Ok(sealed) => sealed,
            Err(err) => return lift::Error::internal(err).render(None),
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("{tenant}#{id}")))
            .item("sk", AttributeValue::S(uuid::Uuid::new_v4().to_string()))
            .item("record", AttributeValue::B(sealed.into()))
            .send()
            .await;
        match put {
            Ok(_) => lift::json_response(StatusCode::CREATED, &serde_json::json!({ "patient_id": id })),
            Err(err) => lift::Error::internal(err).render(None),
        }
    }

    /// `GET /patients/:id/records`: every stored record of the patient, decrypted.
    async fn read(&self, req: Request) -> Response {
        let (Some(tenant), Some(id)) = (Self::tenant(&req), lift::path_param(&req, "id").map(str::to_owned))
        else {
            return lift::Error::forbidden("no tenant").into_response();
        };
        if let Some(audit) = AuditHandle::of(&req) {
            audit.action("records.read").resource(format!("patient/{id}")).data_class("phi");
        }
        let found = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("{tenant}#{id}")))
            .send()
            .await;
        let items = match found {
            Ok(out) => out.items.unwrap_or_default(),
            Err(err) => return lift::Error::internal(err).render(None),
        };
        let mut records = Vec::new();
        for item in items {
            let Some(AttributeValue::B(sealed)) = item.get("record") else { continue };
            match self.envelope.decrypt(&tenant, sealed.as_ref()).await {
                Ok(plain) => {
                    records.push(serde_json::from_slice::<serde_json::Value>(&plain).unwrap_or_default())
                }
                Err(err) => return lift::Error::internal(err).render(None),
            }
        }
        if records.is_empty() {
            return lift::Error::not_found().into_response();
        }
        lift::json_response(StatusCode::OK, &serde_json::json!({ "patient_id": id, "records": records }))
    }
}

fn item_text(item: &Item) -> BTreeMap<String, String> {
    item.iter().map(|(k, v)| (k.clone(), format!("{v:?}"))).collect()
}

/// The texts of a stored value, down through lists, maps (their keys too) and sets.
fn attribute_texts(value: &AttributeValue, out: &mut Vec<String>) {
    let bytes = |b: &aws_sdk_dynamodb::primitives::Blob| String::from_utf8_lossy(b.as_ref()).into_owned();
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => out.push(s.clone()),
        AttributeValue::B(b) => out.push(bytes(b)),
        AttributeValue::Ss(set) | AttributeValue::Ns(set) => out.extend(set.iter().cloned()),
        AttributeValue::Bs(set) => out.extend(set.iter().map(bytes)),
        AttributeValue::L(list) => list.iter().for_each(|v| attribute_texts(v, out)),
        AttributeValue::M(map) => {
            for (key, v) in map {
                out.push(key.clone());
                attribute_texts(v, out);
            }
        }
        _ => {}
    }
}

/// The words of a text: its runs of letters and digits, between spaces and punctuation.
fn words_of(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty())
}

/// The forms a sent text is looked for in: itself and, for a text mostly of digits (a card
/// number, an SSN, an IBAN), also without its separators and as its digits alone, as a
/// service that normalizes it keeps it (`4111 1111 1111 1111` stored as `4111111111111111`).
fn forms(text: &str) -> Vec<String> {
    let mut out = vec![text.to_owned()];
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let alphanumeric = text.chars().filter(|c| c.is_alphanumeric()).count();
    if digits.len() >= MIN_NUMBER_DIGITS && digits.len() * 2 > alphanumeric {
        let bare: String = text.chars().filter(|c| c.is_alphanumeric()).collect();
        for form in [bare, digits] {
            if !out.contains(&form) {
                out.push(form);
            }
        }
    }
    out
}

/// Whether a value read as text is ciphertext or other random bytes rather than text or a
/// structured binary value: at least one in [`NOT_TEXT_SHARE`] of its characters is a
/// replacement character (random bytes decode to nearly one in two; a MessagePack or
/// bincode value holding short strings to far fewer).
fn is_not_text(text: &str) -> bool {
    let (mut all, mut replaced) = (0usize, 0usize);
    for c in text.chars() {
        all += 1;
        replaced += usize::from(c == char::REPLACEMENT_CHARACTER);
    }
    replaced > 0 && replaced * NOT_TEXT_SHARE >= all
}

/// Whether `text` holds `word` as a whole word (no letter or digit on either side), in any
/// case. A value that is not text ([`is_not_text`]) holds no word: it holds any two letters
/// by chance. A binary value that is mostly text (a MessagePack profile, `\u{FFFD}DE`) holds
/// the words in it.
fn holds_word(text: &str, word: &str) -> bool {
    if word.is_empty() || is_not_text(text) {
        return false;
    }
    let (text, word) = (text.to_lowercase(), word.to_lowercase());
    text.match_indices(word.as_str()).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Whether `c` may separate the groups of a number: a space, a dash, a dot, a slash.
fn is_number_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '-' | '.' | '/' | '\u{2010}'..='\u{2015}')
}

/// `text` with the separators between two digits removed (`078-05-1120` as `078051120`, an
/// IBAN in groups of four as one run), the other characters kept: digits on either side of
/// a letter or of anything else stay apart.
fn joined_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_number_separator(c) && out.chars().next_back().is_some_and(|p| p.is_ascii_digit()) {
            let end = chars[i..].iter().position(|c| !is_number_separator(*c)).map_or(chars.len(), |n| i + n);
            if chars.get(end).is_some_and(char::is_ascii_digit) {
                i = end;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Whether `text` holds `needle` in one of its [`forms`], in any case (a service that folds
/// an email or a name keeps it all the same): anywhere in the text or in the text with its
/// numbers' separators removed ([`joined_numbers`]); when `short_as_word`, a form shorter
/// than [`MIN_WORD`] only as a whole word (a country code is in `"country":"DE"`, not in
/// `DELETE`).
fn finds(text: &str, needle: &str, short_as_word: bool) -> bool {
    let folded = text.to_lowercase();
    let joined = joined_numbers(&folded);
    forms(needle).iter().any(|form| {
        if short_as_word && form.chars().count() < MIN_WORD {
            return holds_word(text, form);
        }
        let form = form.to_lowercase();
        folded.contains(form.as_str()) || joined.contains(form.as_str())
    })
}

/// Whether `text` holds `needle` as [`finds`] looks for it, a short text as a whole word.
fn holds(text: &str, needle: &str) -> bool {
    finds(text, needle, true)
}

/// The strings and numbers of a JSON body, and its object keys.
fn json_texts(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Number(n) => out.push(n.to_string()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_texts(v, out)),
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                out.push(key.clone());
                json_texts(v, out);
            }
        }
        _ => {}
    }
}

impl ComplianceWorld {
    async fn env(&mut self) -> Env {
        if let Some(env) = &self.env {
            return env.clone();
        }
        let region = self.region.clone().unwrap_or_else(|| "eu-west-1".to_owned());
        let target = super::target::get();
        let mocks = super::mocks().await;
        let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
        let client = ddb.client().await;
        let mut tables = Vec::new();
        for def in target.tables() {
            tables.push(ddb.create_table(&def).await.expect("the service's table"));
        }
        let records_table = ddb.create_table(&records_table()).await.expect("records table");
        let audit_table = ddb.create_table(&lift::store::tables::audit()).await.expect("audit table");
        let checkpoints =
            ddb.create_table(&lift::store::tables::audit_checkpoints()).await.expect("checkpoint table");
        let blocklist = ddb.create_table(&lift::store::tables::blocklist()).await.expect("blocklist table");
        let blocklist_table = blocklist.clone();
        let trail = AuditTrail::builder()
            .client(client.clone())
            .table(&audit_table)
            .checkpoint_table(&checkpoints)
            .checkpoint_key(CheckpointKey::new(CHECKPOINT_KEY).expect("checkpoint key"))
            .build()
            .expect("trail");
        let threat = ThreatLayer::builder()
            .store(ThreatStore::new(client.clone()).with_table(blocklist))
            .audit(trail.clone())
            .build()
            .expect("threat layer");
        let kms = AwsKmsClient::endpoint(&mocks.kms.uri(), "eu-west-1").expect("kms client");
        let records = Records {
            client: client.clone(),
            table: records_table.clone(),
            envelope: std::sync::Arc::new(Envelope::new(kms, "alias/lift-default")),
        };
        let target_env = TargetEnv {
            client: client.clone(),
            tables: tables.clone(),
            logs: super::logs().clone(),
            audit: trail.clone(),
            kms_endpoint: mocks.kms.uri(),
        };
        let (read, write) = (records.clone(), records);
        let assembly = target.assembly();
        let mut app = target.app(&target_env);
        if !target.serves_health_records() {
            app = app
                .route(
                    Method::GET,
                    "/patients/:id/records",
                    lift::app::Route::from_handler(move |req| {
                        let records = read.clone();
                        async move { records.read(req).await }
                    })
                    .layer(require_scope(RECORDS_SCOPE)),
                )
                .route(
                    Method::POST,
                    "/patients/:id/records",
                    lift::app::Route::from_handler(move |req| {
                        let records = write.clone();
                        async move { records.store(req).await }
                    })
                    .layer(require_scope(RECORDS_SCOPE)),
                );
        }
        let app = app.region(assembly.pinned_region.clone().unwrap_or(region));
        let mut jwt = JwtLayer::builder()
            .issuer(Issuer::jwks(mocks.jwks.issuer(), mocks.jwks.jwks_url()).audience(AUDIENCE))
            .exempt_path("/health*");
        for path in &assembly.public_paths {
            jwt = jwt.exempt_path(path.clone());
        }
        let jwt = jwt.build().expect("the JWT layer");
        // The data classes of the audit entries are the service's own (its handlers name
        // them): a class the suites added would be evidence the service never gave.
        let mut app = app;
        if assembly.audit {
            app = app.layer(AuditLayer::new(trail.clone()));
        }
        if assembly.compliance {
            app = app.layer(
                ComplianceLayer::new(self.recorder.clone()).logs(super::logs().clone()).audit(trail.clone()),
            );
        }
        let route_actions = app.routes().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
        let service = app.layer(threat).layer(jwt).into_service();
        tables.push(records_table);
        let mut all_tables = tables.clone();
        all_tables.extend([audit_table.clone(), checkpoints, blocklist_table]);
        let env = Env { service, client, tables, audit_table, all_tables, trail, route_actions };
        self.env = Some(env.clone());
        self.log_mark.get_or_insert_with(|| super::logs().lines().len());
        env
    }

    /// A real RS256 token of a user of `tenant`, or of `patient` (subject: the patient id, role
    /// `patient`, the service's scopes).
    async fn token_of(&self, tenant: &str, patient: Option<&str>) -> String {
        let mocks = super::mocks().await;
        let target = super::target::get();
        let default_scopes = || {
            let mut scopes = target.scopes();
            scopes.push(RECORDS_SCOPE.to_owned());
            scopes
        };
        let (subject, (roles, scopes)) = match patient {
            Some(patient) => (patient.to_owned(), (vec!["patient".to_owned()], default_scopes())),
            None => (
                format!("user@{tenant}"),
                self.grants.get(tenant).cloned().unwrap_or_else(|| (target.roles(), default_scopes())),
            ),
        };
        let mut claims = mocks.jwks.claims(&subject, AUDIENCE);
        claims["tenant_id"] = tenant.into();
        claims["scope"] = scopes.join(" ").into();
        claims["roles"] = roles.into();
        mocks.jwks.sign(&claims, crate::aws::Alg::Rs256, None).expect("the issuer signs")
    }

    async fn call(
        &mut self,
        method: Method,
        uri: &str,
        tenant: Option<&str>,
        body: Option<serde_json::Value>,
    ) {
        self.call_as(method, uri, tenant, None, body).await;
    }

    /// [`call`](Self::call) as `patient` of `tenant` when given.
    async fn call_as(
        &mut self,
        method: Method,
        uri: &str,
        tenant: Option<&str>,
        patient: Option<&str>,
        body: Option<serde_json::Value>,
    ) {
        let customer = body.as_ref().map(|b| b["customer"].clone()).unwrap_or_default();
        let customer_id = customer["id"].as_str().map(str::to_owned);
        if let (Some(tenant), Some(id)) = (tenant, &customer_id) {
            let known = self.customer_data.entry((tenant.to_owned(), id.clone())).or_default();
            for field in ["name", "email", "country"] {
                if let Some(text) = customer[field].as_str().filter(|t| !t.is_empty()) {
                    known.insert(text.to_owned());
                }
            }
            // A payment's free text is the customer's personal data too ("Gift for Jane Doe,
            // 12 Main St"): the erasure removes it with the rest.
            let description = body.as_ref().and_then(|b| b["description"].as_str());
            if let Some(text) = description.filter(|t| !t.is_empty()) {
                known.insert(text.to_owned());
            }
        }
        let (status, headers, answer) = self.send(method.clone(), uri, tenant, patient, body).await;
        self.status = Some(status);
        self.headers = headers;
        self.body = answer;
        if method == Method::POST && uri == "/payments" && status == StatusCode::CREATED {
            let created: serde_json::Value = serde_json::from_str(&self.body).unwrap_or_default();
            self.last_payment = created["id"].as_str().map(str::to_owned);
            if let (Some(id), Some(tenant), Some(customer)) = (&self.last_payment, tenant, customer_id) {
                let key = (tenant.to_owned(), customer);
                self.erased.remove(&key);
                self.customer_payments.entry(key).or_default().push(id.clone());
            }
        }
        if let Some(tenant) = tenant {
            let items = self.tenant_items(tenant).await;
            self.snapshots.insert(tenant.to_owned(), items);
        }
    }

    /// Sends one request and gives its answer, noting the texts it carried in
    /// [`sent`](Self::sent); the scenario's last answer is left as it was.
    async fn send(
        &mut self,
        method: Method,
        uri: &str,
        tenant: Option<&str>,
        patient: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, http::HeaderMap, String) {
        let env = self.env().await;
        let proto = if std::mem::take(&mut self.next_plain) { "http" } else { "https" };
        let mut builder = http::Request::builder()
            .method(method)
            .uri(uri)
            .header("x-forwarded-proto", proto)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string());
        self.sent.push(uri.to_owned());
        for (name, value) in std::mem::take(&mut self.next_headers) {
            self.sent.push(value.clone());
            builder = builder.header(name, value);
        }
        if let Some(tenant) = tenant {
            self.tenants.insert(tenant.to_owned());
            let token = self.token_of(tenant, patient).await;
            self.sent.push(patient.map_or_else(|| format!("user@{tenant}"), str::to_owned));
            self.sent.push(tenant.to_owned());
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                json_texts(&json, &mut self.sent);
                builder = builder.header("content-type", "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let req = builder.body(body).unwrap_or_else(|err| panic!("not a valid request ({uri}): {err}"));
        let res = env.service.oneshot(req).await.expect("infallible");
        let answer = String::from_utf8_lossy(res.body().as_bytes()).into_owned();
        (res.status(), res.headers().clone(), answer)
    }

    /// Refuses an absence asserted of a text that is neither a whole value a request of the
    /// scenario carried nor a whole word of one ([`MIN_WORD`] characters or more, between
    /// spaces or punctuation): it would pass whatever the service did. A typo
    /// (`"wheezing since teh move"`) was never sent; a part of a value (`"4111 1111"` of a
    /// card sent as `"4111 1111 1111 1111"`) is absent from a service that keeps the value
    /// reformatted (`4111111111111111`), whatever else it keeps.
    fn assert_sent(&self, text: &str) {
        let whole = !text.is_empty() && self.sent.iter().any(|s| s == text);
        let word =
            text.chars().count() >= MIN_WORD && self.sent.iter().any(|s| words_of(s).any(|w| w == text));
        assert!(
            whole || word,
            "{:?} is neither a value a request of this scenario sent nor a word of one ({MIN_WORD} characters \
             or more): its absence proves nothing",
            scrub(text)
        );
    }

    /// The stored items of a tenant in the service's first table, sorted.
    async fn tenant_items(&mut self, tenant: &str) -> Vec<BTreeMap<String, String>> {
        let env = self.env().await;
        let wanted = format!("TENANT#{tenant}");
        let mut items: Vec<BTreeMap<String, String>> = self
            .scan(&env, &env.tables[0])
            .await
            .iter()
            .filter(|i| i.get("pk").and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.starts_with(&wanted)))
            .map(item_text)
            .collect();
        items.sort();
        items
    }

    /// Every item of `table`, page after page.
    async fn scan(&self, env: &Env, table: &str) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = env
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan a table");
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return items,
            }
        }
    }

    /// Every text stored in the scenario's tables, with the table it is in: each item's
    /// attribute names and values, down through lists, maps and sets (numbers and binary
    /// values as text too).
    async fn stored_texts(&self, env: &Env) -> Vec<(String, String)> {
        let items = self.stored_items(env).await;
        items
            .into_iter()
            .flat_map(|(table, texts)| texts.into_iter().map(move |t| (table.clone(), t)))
            .collect()
    }

    /// The texts of every stored item of the scenario's tables (as
    /// [`stored_texts`](Self::stored_texts) reads them), item by item, with its table.
    async fn stored_items(&self, env: &Env) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for table in &env.all_tables {
            for item in self.scan(env, table).await {
                let mut texts = Vec::new();
                for (name, value) in &item {
                    texts.push(name.clone());
                    attribute_texts(value, &mut texts);
                }
                out.push((table.clone(), texts));
            }
        }
        out
    }

    fn scenario_logs(&self) -> Vec<String> {
        match self.log_mark {
            Some(mark) => super::logs().lines().into_iter().skip(mark).collect(),
            None => Vec::new(),
        }
    }

    fn rule(&self, rule: &str) -> RuleRecord {
        self.recorder
            .records()
            .into_iter()
            .find(|r| r.id == rule)
            .unwrap_or_else(|| panic!("no rule {rule}: the service's rules are {:?}", self.rule_ids()))
    }

    fn rule_ids(&self) -> Vec<String> {
        self.recorder.records().into_iter().map(|r| r.id).collect()
    }

    /// The scenario's audit trail, if its service was built.
    pub(crate) fn trail(&self) -> Option<AuditTrail> {
        self.env.as_ref().map(|e| e.trail.clone())
    }

    fn last_payment(&self) -> String {
        self.last_payment.clone().expect("the scenario created no payment yet")
    }

    /// The email of the scenario's customer named `name`: the ASCII letters and digits of its
    /// words joined by dots, a tag and a domain drawn once per scenario, in mixed case
    /// (`Ada.Lovelace.qX7rTa@Example.COM`). It is neither all lower-case nor all upper-case,
    /// so a service that folds it before keeping it keeps another text than it was sent (the
    /// absence checks must find it in any case), and a mask that knows only lower-case
    /// addresses leaves it in clear.
    fn customer_email(&mut self, name: &str) -> String {
        let (tag, domain) = self
            .email_parts
            .get_or_insert_with(|| {
                let random = uuid::Uuid::new_v4();
                let tag: String = random.as_bytes()[..6]
                    .iter()
                    .map(|b| char::from(TAG_ALPHABET[usize::from(*b) % TAG_ALPHABET.len()]))
                    .collect();
                (tag, EMAIL_DOMAINS[usize::from(random.as_bytes()[6]) % EMAIL_DOMAINS.len()])
            })
            .clone();
        let mut local: Vec<String> = name
            .split_whitespace()
            .map(|w| w.chars().filter(char::is_ascii_alphanumeric).collect::<String>())
            .filter(|w| !w.is_empty())
            .collect();
        local.push(tag);
        format!("{}@{domain}", local.join("."))
    }

    /// A payment for customer `cus_1` named `name`, with the scenario's email for that name
    /// and a description that holds the name and an address, as a customer's free text does.
    fn payment(
        &mut self,
        amount: u64,
        currency: &str,
        card: &str,
        country: &str,
        name: &str,
    ) -> serde_json::Value {
        let email = self.customer_email(name);
        serde_json::json!({
            "card_number": card,
            "amount": amount,
            "currency": currency,
            "description": format!("Gift for {name}, 12 Main St"),
            "customer": { "id": "cus_1", "name": name, "email": email, "country": country },
        })
    }
}

fn words(list: &str) -> Vec<String> {
    list.split([' ', ',']).filter(|w| !w.is_empty()).map(str::to_owned).collect()
}

#[given(expr = "the service runs in region {word}")]
async fn service_in_region(w: &mut ComplianceWorld, region: String) {
    // The service built so far goes away with its trail: its chains are verified now (and
    // go into the report), or its requests would leave no evidence the report checked.
    if let Some(old) = w.env.take() {
        let mut tenants: Vec<&str> =
            w.tenants.iter().filter(|t| !w.altered.contains(*t)).map(String::as_str).collect();
        tenants.sort_unstable();
        if !tenants.is_empty() {
            let report = w.recorder.report().with_audit(&old.trail, &tenants).await;
            let chains = report.frameworks.first().map(|f| f.audit.clone()).unwrap_or_default();
            let broken: Vec<String> = chains
                .iter()
                .filter_map(|c| c.problem.as_ref().map(|p| format!("{}: {p}", c.tenant)))
                .collect();
            w.earlier_chains.extend(chains);
            assert!(broken.is_empty(), "the audit trail of the service replaced does not verify: {broken:?}");
        }
        // What the scenario knew of that service speaks of it, not of the new one.
        w.tenants.clear();
        w.altered.clear();
        w.snapshots.clear();
        w.customer_data.clear();
        w.customer_payments.clear();
        w.erased.clear();
        w.kept.clear();
        w.last_payment = None;
        w.status = None;
        w.headers.clear();
        w.body.clear();
    }
    w.region = Some(region);
    w.env().await;
}

#[given(expr = "users of tenant {word} have roles {string} and scopes {string}")]
async fn grants(w: &mut ComplianceWorld, tenant: String, roles: String, scopes: String) {
    w.grants.insert(tenant, (words(&roles), words(&scopes)));
}

#[given("the next request goes over plain HTTP")]
async fn plain_http(w: &mut ComplianceWorld) {
    w.next_plain = true;
}

#[given(expr = "the next request carries header {string} with value {string}")]
async fn header(w: &mut ComplianceWorld, name: String, value: String) {
    w.next_headers.push((name, value));
}

#[when(expr = "tenant {word} pays {int} {word} with card {string}")]
async fn pays(w: &mut ComplianceWorld, tenant: String, amount: u64, currency: String, card: String) {
    let body = w.payment(amount, &currency, &card, "GB", CUSTOMER_NAME);
    w.call(Method::POST, "/payments", Some(&tenant), Some(body)).await;
}

#[when(expr = "tenant {word} pays {int} {word} with card {string} described as {string}")]
async fn pays_described(
    w: &mut ComplianceWorld,
    tenant: String,
    amount: u64,
    currency: String,
    card: String,
    text: String,
) {
    let mut body = w.payment(amount, &currency, &card, "GB", CUSTOMER_NAME);
    body["description"] = text.into();
    w.call(Method::POST, "/payments", Some(&tenant), Some(body)).await;
}

#[when(expr = "tenant {word} pays {int} {word} with card {string} for customer {string}")]
async fn pays_for(
    w: &mut ComplianceWorld,
    tenant: String,
    amount: u64,
    currency: String,
    card: String,
    name: String,
) {
    let body = w.payment(amount, &currency, &card, "GB", &name);
    w.call(Method::POST, "/payments", Some(&tenant), Some(body)).await;
}

#[when(expr = "tenant {word} pays for a customer in {word}")]
async fn pays_from(w: &mut ComplianceWorld, tenant: String, country: String) {
    let body = w.payment(1_000, "EUR", "4111 1111 1111 1111", &country, CUSTOMER_NAME);
    w.call(Method::POST, "/payments", Some(&tenant), Some(body)).await;
}

#[when(expr = "tenant {word} refunds {int} of the last payment")]
async fn refunds(w: &mut ComplianceWorld, tenant: String, amount: u64) {
    let id = w.last_payment();
    let body = serde_json::json!({ "amount": amount, "reason": "requested_by_customer" });
    w.call(Method::POST, &format!("/payments/{id}/refunds"), Some(&tenant), Some(body)).await;
}

#[when(expr = "tenant {word} reads the last payment")]
async fn reads_last(w: &mut ComplianceWorld, tenant: String) {
    let id = w.last_payment();
    w.call(Method::GET, &format!("/payments/{id}"), Some(&tenant), None).await;
}

#[when("an anonymous caller reads the last payment")]
async fn anonymous_reads_last(w: &mut ComplianceWorld) {
    let id = w.last_payment();
    w.call(Method::GET, &format!("/payments/{id}"), None, None).await;
}

#[when(expr = "tenant {word} lists payments with query {string}")]
async fn lists(w: &mut ComplianceWorld, tenant: String, query: String) {
    w.call(Method::GET, &format!("/payments?{query}"), Some(&tenant), None).await;
}

/// Before the erasure, each other tenant's payments for a customer of the same id (one it has
/// not erased itself) are read back as that tenant: what they answer now, they must still
/// answer after it (checked by `no stored payment of tenant .. names customer ..`).
#[when(expr = "tenant {word} erases customer {word}")]
async fn erases(w: &mut ComplianceWorld, tenant: String, customer: String) {
    let mut others: Vec<(String, Vec<String>)> = w
        .customer_payments
        .iter()
        .filter(|(key, _)| key.1 == customer && key.0 != tenant && !w.erased.contains(*key))
        .map(|(key, ids)| (key.0.clone(), ids.clone()))
        .collect();
    others.sort();
    let mut kept = Vec::new();
    for (other, ids) in others {
        let sent: Vec<String> =
            w.customer_data.get(&(other.clone(), customer.clone())).into_iter().flatten().cloned().collect();
        for id in ids {
            let (status, _, answer) =
                w.send(Method::GET, &format!("/payments/{id}"), Some(&other), None, None).await;
            let answered = sent.iter().filter(|t| holds(&answer, t)).cloned().collect();
            kept.push(Kept { tenant: other.clone(), payment: id, readable: status.is_success(), answered });
        }
    }
    w.call(Method::DELETE, &format!("/customers/{customer}"), Some(&tenant), None).await;
    let key = (tenant, customer);
    if w.status.is_some_and(|s| s.is_success()) {
        w.erased.insert(key.clone());
    }
    w.kept.insert(key, kept);
}

#[when(expr = "tenant {word} stores a record for patient {word} with diagnosis {string}")]
async fn stores_record(w: &mut ComplianceWorld, tenant: String, patient: String, diagnosis: String) {
    let body = serde_json::json!({ "diagnoses": [diagnosis], "medications": ["salbutamol"] });
    w.call(Method::POST, &format!("/patients/{patient}/records"), Some(&tenant), Some(body)).await;
}

#[when(expr = "tenant {word} stores a record for patient {word} with diagnosis {string} and notes {string}")]
async fn stores_record_with_notes(
    w: &mut ComplianceWorld,
    tenant: String,
    patient: String,
    diagnosis: String,
    notes: String,
) {
    let body = serde_json::json!({ "diagnoses": [diagnosis], "medications": ["salbutamol"], "notes": notes });
    w.call(Method::POST, &format!("/patients/{patient}/records"), Some(&tenant), Some(body)).await;
}

#[when(expr = "patient {word} of tenant {word} reads the records of patient {word}")]
async fn patient_reads_records(w: &mut ComplianceWorld, me: String, tenant: String, patient: String) {
    w.call_as(Method::GET, &format!("/patients/{patient}/records"), Some(&tenant), Some(&me), None).await;
}

#[when(expr = "patient {word} of tenant {word} lists the disclosures of their record")]
async fn patient_lists_disclosures(w: &mut ComplianceWorld, me: String, tenant: String) {
    w.call_as(Method::GET, &format!("/patients/{me}/disclosures"), Some(&tenant), Some(&me), None).await;
}

#[when(expr = "tenant {word} reads the records of patient {word}")]
async fn reads_records(w: &mut ComplianceWorld, tenant: String, patient: String) {
    w.call(Method::GET, &format!("/patients/{patient}/records"), Some(&tenant), None).await;
}

#[when(expr = "an anonymous caller reads the records of patient {word}")]
async fn anonymous_reads(w: &mut ComplianceWorld, patient: String) {
    w.call(Method::GET, &format!("/patients/{patient}/records"), None, None).await;
}

#[when(expr = "the stored records of patient {word} are corrupted")]
async fn corrupt_records(w: &mut ComplianceWorld, patient: String) {
    let env = w.env().await;
    let table = env.tables.last().expect("the records table").clone();
    let items = w.scan(&env, &table).await;
    let theirs: Vec<&Item> = items
        .iter()
        .filter(|i| {
            i.get("pk").and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.ends_with(&format!("#{patient}")))
        })
        .collect();
    assert!(!theirs.is_empty(), "patient {patient} has no stored record");
    for item in theirs {
        env.client
            .put_item()
            .table_name(&table)
            .set_item(Some(item.clone()))
            .item("record", AttributeValue::B(b"not a sealed record".to_vec().into()))
            .send()
            .await
            .expect("corrupt the record");
    }
}

#[when(expr = "tenant {word} looks up payment {string}")]
async fn looks_up(w: &mut ComplianceWorld, tenant: String, text: String) {
    w.sent.push(text.clone());
    let encoded: String = text
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    w.call(Method::GET, &format!("/payments/{encoded}"), Some(&tenant), None).await;
}

#[when(expr = "the stored audit entry {int} of tenant {word} is altered")]
async fn alter_entry(w: &mut ComplianceWorld, seq: u64, tenant: String) {
    let env = w.env().await;
    w.altered.insert(tenant.clone());
    env.client
        .update_item()
        .table_name(&env.audit_table)
        .key("pk", AttributeValue::S(format!("AUDIT#{tenant}")))
        .key("seq", AttributeValue::N(seq.to_string()))
        .update_expression("SET actor = :m")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":m", AttributeValue::S("mallory".into()))
        .send()
        .await
        .expect("the entry exists and was altered");
}

#[then(expr = "the answer is {int}")]
async fn answer_is(w: &mut ComplianceWorld, status: u16) {
    // The body as a log would show it: a card number or a token caught in it must not
    // reach the JUnit and cucumber JSON files.
    assert_eq!(w.status.map(|s| s.as_u16()), Some(status), "answer body: {}", scrub(&w.body));
}

#[then(expr = "the answer contains {string}")]
async fn answer_has(w: &mut ComplianceWorld, text: String) {
    assert!(w.status.is_some(), "no request was sent");
    assert!(w.body.contains(&text), "the answer does not contain {:?}: {}", scrub(&text), scrub(&w.body));
}

/// The text is looked for as [`finds`] looks for it: in any case, a text under 4 characters
/// as a whole word, a number also without its separators, and in the answer with its
/// numbers' separators removed.
#[then(expr = "the answer does not contain {string}")]
async fn answer_lacks(w: &mut ComplianceWorld, text: String) {
    assert!(w.status.is_some(), "no request was sent");
    w.assert_sent(&text);
    let found = finds(&w.body, &text, true);
    assert!(!found, "the answer contains {:?}", scrub(&text));
}

#[then("no card number appears in the answer, the logs or the stored payments")]
async fn no_pan_anywhere(w: &mut ComplianceWorld) {
    let pan = |text: &str| scan_text(text).iter().any(|m| m.class == DataClass::Pan);
    // Where the number was found and how long the text is, never the text: the failure
    // message goes into the JUnit and cucumber JSON files.
    assert!(!pan(&w.body), "a card number in the answer's body ({} bytes)", w.body.len());
    for (name, value) in &w.headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(!pan(&value), "a card number in the answer's {name} header");
    }
    let leaking = w.scenario_logs().into_iter().filter(|l| pan(l)).count();
    assert_eq!(leaking, 0, "{leaking} log line(s) carry a card number in clear");
    let env = w.env().await;
    let stored: Vec<String> =
        w.stored_texts(&env).await.into_iter().filter(|(_, t)| pan(t)).map(|(table, _)| table).collect();
    assert!(stored.is_empty(), "stored items carry a card number in clear, in tables {stored:?}");
}

/// The text is looked for as [`finds`] looks for it: in any case, a number also without its
/// separators, and in stored texts with their numbers' separators removed.
#[then(expr = "no stored item contains {string}")]
async fn nothing_stored_in_clear(w: &mut ComplianceWorld, text: String) {
    w.assert_sent(&text);
    let env = w.env().await;
    let mut tables: Vec<String> = w
        .stored_texts(&env)
        .await
        .into_iter()
        .filter(|(_, t)| finds(t, &text, true))
        .map(|(table, _)| table)
        .collect();
    tables.dedup();
    assert!(tables.is_empty(), "stored items of {tables:?} carry {:?} in clear", scrub(&text));
}

/// Erased means gone from everything the service keeps and everything it answers, for the
/// customer of that tenant: what the scenario sent for it (its names, emails, countries and
/// its payments' descriptions: the country and the free text are personal data the payments
/// service encrypts under the customer's key and removes on erasure, as it does names and
/// emails; the suites' descriptions hold the customer's name, their emails are in mixed case)
/// is held by no stored attribute of any table (at any depth, under any name; in any case; a
/// number also with other separators; a country code as a whole word), and reading each of
/// its payments back shows none of it. A text also sent for a customer not erased (another
/// tenant's customer of the same id, the same email for two customers) may stay only in items
/// that name that customer's tenant and id.
///
/// An erasure must not reach into another tenant: each other tenant's payments for a
/// customer of the same id answer, after it, what they answered just before it (the erasure
/// step reads them), and that tenant's stored items are as its own last request left them.
/// When neither can be shown (the service answers none of that tenant's personal data and
/// keeps no item under `TENANT#<tenant>` in its first table), the step fails.
#[then(expr = "no stored payment of tenant {word} names customer {word}")]
async fn customer_erased(w: &mut ComplianceWorld, tenant: String, customer: String) {
    let key = (tenant.clone(), customer.clone());
    let payments = w.customer_payments.get(&key).cloned().unwrap_or_default();
    assert!(!payments.is_empty(), "the scenario made no payment for {customer} as tenant {tenant}");
    let mut known: Vec<String> = w.customer_data.get(&key).into_iter().flatten().cloned().collect();
    known.sort();
    assert!(
        !known.is_empty(),
        "the scenario sent no name, email, country or description for {customer} as tenant {tenant}"
    );
    // The customers not erased, and what was sent for each: where a text known here may stay.
    let live: Vec<(CustomerKey, HashSet<String>)> = w
        .customer_data
        .iter()
        .filter(|(other, _)| **other != key && !w.erased.contains(*other))
        .map(|(other, sent)| (other.clone(), sent.clone()))
        .collect();
    let env = w.env().await;
    for (table, texts) in w.stored_items(&env).await {
        let names = |(t, c): &CustomerKey| {
            texts.iter().any(|x| holds_word(x, t)) && texts.iter().any(|x| holds_word(x, c))
        };
        for text in &known {
            if !texts.iter().any(|stored| holds(stored, text)) {
                continue;
            }
            let theirs = live.iter().any(|(other, sent)| sent.contains(text) && names(other));
            assert!(
                theirs,
                "{table} still holds personal data of {customer} of tenant {tenant} ({} bytes)",
                text.len()
            );
        }
    }
    for id in payments {
        let (status, _, answer) =
            w.send(Method::GET, &format!("/payments/{id}"), Some(&tenant), None, None).await;
        assert!(
            status.is_success() || status == StatusCode::NOT_FOUND || status == StatusCode::GONE,
            "reading payment {id} back answered {status}: the erasure cannot be checked through the service"
        );
        for text in &known {
            assert!(!holds(&answer, text), "payment {id} still answers personal data of {customer}");
        }
    }
    let kept = w.kept.get(&key).cloned().unwrap_or_default();
    for k in &kept {
        let (status, _, answer) =
            w.send(Method::GET, &format!("/payments/{}", k.payment), Some(&k.tenant), None, None).await;
        assert!(
            !k.readable || status.is_success(),
            "payment {} of tenant {} answered {status} after tenant {tenant} erased {customer}: the erasure \
             reached into another tenant",
            k.payment,
            k.tenant
        );
        let lost = k.answered.iter().filter(|t| !holds(&answer, t)).count();
        assert_eq!(
            lost, 0,
            "payment {} of tenant {} no longer answers {lost} piece(s) of personal data of its own {customer} after \
             tenant {tenant} erased {customer}: the erasure reached into another tenant",
            k.payment, k.tenant
        );
    }
    let mut others: Vec<String> = w
        .customer_payments
        .keys()
        .filter(|other| other.1 == customer && other.0 != tenant && !w.erased.contains(*other))
        .map(|other| other.0.clone())
        .collect();
    others.sort();
    others.dedup();
    for other in others {
        let before = w.snapshots.get(&other).cloned().unwrap_or_default();
        let answered = kept.iter().any(|k| k.tenant == other && !k.answered.is_empty());
        assert!(
            answered || !before.is_empty(),
            "the erasure cannot be shown to leave {customer} of tenant {other} alone: the service answered none of \
             its personal data before the erasure and keeps no item of tenant {other}"
        );
        if !before.is_empty() {
            let now = w.tenant_items(&other).await;
            // The items themselves stay out of the message: they hold personal data.
            assert!(
                now == before,
                "the stored data of tenant {other} changed when tenant {tenant} erased {customer}: the erasure \
                 reached into another tenant"
            );
        }
    }
}

#[then(expr = "the data of tenant {word} is intact")]
async fn intact(w: &mut ComplianceWorld, tenant: String) {
    let before =
        w.snapshots.get(&tenant).cloned().unwrap_or_else(|| panic!("tenant {tenant} sent no request"));
    assert!(!before.is_empty(), "tenant {tenant} has no stored data to keep intact");
    let now = w.tenant_items(&tenant).await;
    assert_eq!(now, before, "the stored data of tenant {tenant} changed after its own last request");
}

async fn entries(
    w: &mut ComplianceWorld,
    tenant: &str,
    action: Option<&str>,
) -> Vec<lift::security::audit::AuditEntry> {
    let env = w.env().await;
    let mut query = AuditQuery::tenant(tenant);
    if let Some(action) = action {
        query = query.action(action);
    }
    env.trail.query(query).await.expect("query the trail").into_iter().map(|e| e.entry).collect()
}

#[then(expr = "the audit trail of tenant {word} records {string} with data class {word}")]
async fn audit_records(w: &mut ComplianceWorld, tenant: String, action: String, class: String) {
    let entries = entries(w, &tenant, Some(&action)).await;
    assert!(
        entries.iter().any(|e| e.data_classes.contains(&class)),
        "no {action} entry of class {class} among {} entries",
        entries.len()
    );
}

#[then(expr = "the audit trail of tenant {word} records {string} as {word}")]
async fn audit_outcome(w: &mut ComplianceWorld, tenant: String, action: String, outcome: String) {
    let wanted = match outcome.as_str() {
        "success" => Outcome::Success,
        "denied" => Outcome::Denied,
        "failure" => Outcome::Failure,
        other => panic!("unknown outcome {other:?}: use success, denied or failure"),
    };
    let entries = entries(w, &tenant, Some(&action)).await;
    assert!(
        entries.iter().any(|e| e.outcome == wanted),
        "no {action} entry with outcome {outcome}; outcomes seen: {:?}",
        entries.iter().map(|e| e.outcome).collect::<Vec<_>>()
    );
}

#[then(expr = "the audit trail of tenant {word} records a violation of {string}")]
async fn audit_violation(w: &mut ComplianceWorld, tenant: String, rule: String) {
    let entries = entries(w, &tenant, Some("compliance.violation")).await;
    assert!(
        entries.iter().any(|e| e.resource == rule && e.outcome == Outcome::Denied),
        "no compliance.violation entry for {rule} among {} violation entries",
        entries.len()
    );
}

/// An absence proves something only of a tenant that sent a request in the scenario and of
/// an action the service records: a misspelled tenant or action (`"POST /payment"`) would
/// match nothing and pass whatever the service did, so each is refused with a message.
#[then(expr = "the audit trail of tenant {word} does not record {string}")]
async fn audit_lacks(w: &mut ComplianceWorld, tenant: String, action: String) {
    assert!(
        w.tenants.contains(&tenant),
        "tenant {tenant} sent no request in this scenario (it sent as: {:?}): its trail lacks anything",
        w.tenants
    );
    let env = w.env().await;
    let mut known = env.route_actions.contains(&action)
        || action == "compliance.violation"
        || action == lift::security::threat::INCIDENT_ACTION;
    // A name a handler gives is known once some tenant's trail holds it: read only then.
    let tenants: Vec<String> = w.tenants.iter().cloned().collect();
    for t in &tenants {
        if known {
            break;
        }
        known = !entries(w, t, Some(&action)).await.is_empty();
    }
    assert!(
        known,
        "{action:?} is no action this service records: its routes record {:?} (or a name a handler gives, \
         once recorded), compliance.violation and {}",
        {
            let mut routes: Vec<&String> = env.route_actions.iter().collect();
            routes.sort();
            routes
        },
        lift::security::threat::INCIDENT_ACTION
    );
    let entries = entries(w, &tenant, Some(&action)).await;
    assert!(entries.is_empty(), "{} {action} entries recorded", entries.len());
}

#[then(expr = "the audit chain of tenant {word} verifies")]
async fn chain_verifies(w: &mut ComplianceWorld, tenant: String) {
    let env = w.env().await;
    let verified = env.trail.verify(&tenant).await.expect("the chain verifies");
    assert!(verified.entries > 0, "tenant {tenant} has no audit entries");
    assert!(verified.checkpoints > 0, "no signed checkpoint covers the chain");
}

#[then(expr = "the audit chain of tenant {word} is broken at entry {int}")]
async fn chain_broken(w: &mut ComplianceWorld, tenant: String, seq: u64) {
    let env = w.env().await;
    match env.trail.verify(&tenant).await {
        Err(lift::security::audit::AuditError::Broken { broken, .. }) => {
            assert_eq!(broken, ChainBreak::Changed { seq }, "the break names another entry");
        }
        other => panic!("the altered chain verified: {other:?}"),
    }
}

#[then(expr = "the rule {string} held")]
async fn held(w: &mut ComplianceWorld, rule: String) {
    let r = w.rule(&rule);
    assert!(r.applied > 0, "rule {rule} never applied in this scenario: no evidence");
    assert_eq!((r.violated, r.unknown), (0, 0), "rule {rule}: {:?}", r.evidence);
}

#[then(expr = "the rule {string} was never violated")]
async fn never_violated(w: &mut ComplianceWorld, rule: String) {
    let r = w.rule(&rule);
    assert!(r.applied > 0, "rule {rule} never applied in this scenario: no evidence");
    assert_eq!(r.violated, 0, "rule {rule} was violated: {:?}", r.evidence);
}

#[then(expr = "the rule {string} was violated")]
async fn violated(w: &mut ComplianceWorld, rule: String) {
    let r = w.rule(&rule);
    assert!(r.violated > 0, "rule {rule} was not violated by this scenario's requests");
}

#[then(expr = "the rule {string} refused the request")]
async fn blocked(w: &mut ComplianceWorld, rule: String) {
    let r = w.rule(&rule);
    assert!(r.blocked > 0, "rule {rule} refused none of this scenario's requests");
}

#[then(expr = "the rule {string} could not be proven")]
async fn unknown(w: &mut ComplianceWorld, rule: String) {
    let r = w.rule(&rule);
    assert!(r.unknown > 0, "rule {rule} was decided on every request of this scenario");
}

#[then(expr = "the rule {string} did not apply")]
async fn not_applied(w: &mut ComplianceWorld, rule: String) {
    let r = w.rule(&rule);
    assert_eq!(r.applied, 0, "rule {rule} applied to {} request(s)", r.applied);
}

#[then(expr = "a threat incident was recorded for tenant {word}")]
async fn incident(w: &mut ComplianceWorld, tenant: String) {
    let entries = entries(w, &tenant, Some("threat.incident")).await;
    assert!(!entries.is_empty(), "no threat.incident entry for {tenant}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_looked_for_without_its_separators_too() {
        assert_eq!(
            forms("4111 1111 1111 1111"),
            ["4111 1111 1111 1111".to_owned(), "4111111111111111".to_owned()]
        );
        assert_eq!(forms("123-45-6789"), ["123-45-6789".to_owned(), "123456789".to_owned()]);
        let iban = forms("DE89 3704 0044 0532 0130 00");
        assert_eq!(iban[1..], ["DE89370400440532013000".to_owned(), "89370400440532013000".to_owned()]);
        // Words, codes and short numbers are looked for as they are.
        assert_eq!(forms("Ada Lovelace"), ["Ada Lovelace".to_owned()]);
        assert_eq!(forms("J45.909"), ["J45.909".to_owned()]);
        assert!(holds("{\"card\":\"4111111111111111\"}", "4111 1111 1111 1111"));
    }

    #[test]
    fn a_short_text_is_held_only_as_a_whole_word_of_text() {
        assert!(holds("{\"country\":\"DE\"}", "DE"));
        assert!(holds("DE", "DE"));
        assert!(!holds("DELETE /customers/:id", "DE"));
        assert!(!holds("IDE", "DE"));
        // Ciphertext read as text holds no short word.
        assert!(!holds("\u{FFFD}\u{FFFD} DE \u{FFFD}", "DE"));
        assert!(holds_word("TENANT#acme", "acme") && !holds_word("TENANT#acme2", "acme"));
        assert!(holds_word("cus_1", "cus_1") && !holds_word("cus_10", "cus_1"));
    }

    #[test]
    fn a_text_is_found_in_any_case() {
        assert!(holds("{\"email\":\"ada@example.com\"}", "Ada@Example.com"));
        assert!(holds("ADA@EXAMPLE.COM", "ada@example.com"));
        assert!(holds("ADA LOVELACE", "Ada Lovelace") && finds("ada lovelace", "Ada Lovelace", false));
        assert!(holds("{\"country\":\"de\"}", "DE") && holds("ÉMILE", "Émile"));
        assert!(!holds("ada lovelac", "Ada Lovelace"));
    }

    /// The suites' customer emails are in mixed case, so a copy a service folds is another
    /// text than the one sent: found in any case, by the erasure and absence checks alike.
    #[test]
    fn the_customer_email_is_mixed_case_and_found_refolded() {
        let mut w = ComplianceWorld::default();
        let email = w.customer_email(CUSTOMER_NAME);
        assert!(lift::security::protection::detect::is_email(&email), "{email}");
        assert!(email.starts_with("Ada.Lovelace."), "{email}");
        assert_ne!(email, email.to_lowercase());
        assert_ne!(email, email.to_uppercase());
        assert_eq!(w.customer_email(CUSTOMER_NAME), email, "one email per customer in a scenario");
        let body = w.payment(500, "EUR", "4111 1111 1111 1111", "DE", CUSTOMER_NAME);
        assert_eq!(body["customer"]["email"], email.as_str());
        assert!(holds(body["description"].as_str().unwrap(), CUSTOMER_NAME));
        for kept in [email.to_lowercase(), email.to_uppercase()] {
            assert!(holds(&format!("{{\"email_key\":\"{kept}\"}}"), &email), "{kept}");
            assert!(finds(&kept, &email, true) && holds_word(&kept, &email));
        }
        assert!(!holds("[REDACTED:email]", &email));
    }

    #[test]
    fn a_number_is_found_with_other_separators_than_it_was_sent_with() {
        assert!(holds("{\"ssn\":\"078-05-1120\"}", "078051120"));
        assert!(holds("078 05 1120", "078-05-1120"));
        assert!(holds("4111-1111-1111-1111", "4111111111111111"));
        assert!(holds("4111.1111.1111.1111", "4111 1111 1111 1111"));
        assert!(holds("iban: de89 3704 0044 0532 0130 00", "DE89370400440532013000"));
        assert!(holds("DE89/3704/0044/0532/0130/00", "DE89 3704 0044 0532 0130 00"));
        // Digits apart from each other by a letter, or by no separator, stay apart.
        assert_eq!(joined_numbers("078-05-1120"), "078051120");
        assert_eq!(joined_numbers("ref 0780 x 51120 - end -"), "ref 0780 x 51120 - end -");
        assert!(!holds("ref 0780 a 51120", "078051120"));
        assert!(!holds("0780-5112", "078051120"));
    }

    #[test]
    fn a_binary_value_holds_the_words_in_it_unless_it_is_random() {
        // {"country": "DE"} in MessagePack and in bincode, read as text.
        let msgpack = String::from_utf8_lossy(b"\x81\xa7country\xa2DE").into_owned();
        assert!(holds(&msgpack, "DE"));
        let bincode = String::from_utf8_lossy(b"\x02\0\0\0\0\0\0\0DE").into_owned();
        assert!(holds(&bincode, "DE"));
        // Ciphertext: nearly one character in two a replacement character.
        let sealed = String::from_utf8_lossy(b"\x9c\xe1\xfa DE \x8b\xc7\xff\x10\xd4").into_owned();
        assert!(!holds(&sealed, "DE"));
    }

    #[test]
    fn an_absence_is_asserted_of_a_whole_value_sent_or_a_word_of_one() {
        let w = ComplianceWorld {
            sent: vec!["4111 1111 1111 1111".into(), "ada@example.com".into(), "I10".into()],
            ..ComplianceWorld::default()
        };
        for accepted in ["4111 1111 1111 1111", "4111", "ada@example.com", "example", "I10"] {
            w.assert_sent(accepted);
        }
        for refused in ["4111 1111", "1111 1111 1111 1111", "411", "ada@example", "exam", "", "I1"] {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.assert_sent(refused)));
            assert!(caught.is_err(), "an absence of {refused:?} was accepted");
        }
    }
}
