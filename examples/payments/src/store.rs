//! Payments in DynamoDB.
//!
//! One table, keyed by tenant: `pk = TENANT#<tenant>`, `sk = PAYMENT#<id>` for payments and
//! `sk = REFUND#<payment>#<refund>` for refunds. Every read and write names the caller's
//! tenant in the partition key, so one tenant can never reach another's items.
//! A payment keeps `refundable` (amount minus refunds) so that a refund is one conditional
//! transaction: it can never take more than what is left, even when refunds race.
//!
//! # Personal data at rest
//!
//! With [`PaymentStore::with_subject_keys`] (how the service runs), a payment's personal
//! data (customer name, email and country, and the description) is one attribute,
//! `personal` (B), encrypted under the customer's own key
//! ([`SubjectKeys`](lift::security::protection::SubjectKeys)), and so is a refund's
//! `reason`. Erasing the customer deletes that key: every copy of those attributes, in
//! this table, in idempotency records and in any backup or export of either, becomes
//! unreadable at once. The customer id stays in clear (it keys the erasure and the
//! accounting records); ids carrying sensitive values are refused on the way in
//! ([`crate::privacy`]). Free text is masked before it is encrypted ([`crate::privacy`]).
//!
//! Without subject keys ([`PaymentStore::new`] alone, for tools and tests without KMS),
//! those attributes are stored in clear and erasure removes them from the items.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use lift::disaster::{ReplicatedWriter, Write, WriteCondition, WriteError};
use lift::security::protection::{Policy, SubjectKeys};
use lift::store::{KeyAttribute, TableDef};

use crate::model::{CardSummary, Customer, NewPayment, Payment, Refund, Status};
use crate::privacy;

/// The payments table.
pub fn table_def() -> TableDef {
    TableDef::new("payments", KeyAttribute::string("pk")).with_sort_key(KeyAttribute::string("sk"))
}

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A payment with this id exists already.
    #[error("a payment with this id already exists")]
    Duplicate,
    /// No such payment for this tenant.
    #[error("payment not found")]
    NotFound,
    /// The refund is larger than what is left to refund.
    #[error("the refund exceeds the refundable amount of {refundable}")]
    OverRefund {
        /// What is left to refund.
        refundable: u64,
    },
    /// DynamoDB throttled the request or is unavailable: retry later.
    #[error("the payments store is unavailable: {0}")]
    Unavailable(String),
    /// A synchronously replicated write that some regions hold and others refused or
    /// missed: not acknowledged; retry later. The region called may well have answered.
    #[error("the payment was not replicated to every region: {0}")]
    NotReplicated(String),
    /// What a request under an idempotency key would create exists already, different: the
    /// key was used again for another request.
    #[error("this idempotency key was used for another request")]
    KeyReused,
    /// Anything else.
    #[error("payments store error: {0}")]
    Other(String),
    /// A stored item does not have the expected shape.
    #[error("stored item is corrupt: {0}")]
    Corrupt(&'static str),
    /// Personal data could not be encrypted or decrypted (KMS or the subject-key table).
    #[error("personal data protection failed: {0}")]
    Protection(#[from] lift::security::protection::ProtectionError),
}

/// Sorts an SDK error into unavailable (retry later) or other.
fn classify<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    err: SdkError<E, R>,
) -> StoreError {
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => StoreError::Unavailable(format!("{err}")),
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            // Throttling and server errors: the codes failover's passive detection counts.
            if lift::disaster::FailureKind::from_error_code(code).is_some() {
                StoreError::Unavailable(code.to_owned())
            } else {
                StoreError::Other(format!("{code}: {}", service.err().message().unwrap_or_default()))
            }
        }
        SdkError::ResponseError(_) => StoreError::Unavailable(format!("{err}")),
        _ => StoreError::Other(format!("{err:?}")),
    }
}

/// Attempts at a refund whose transaction a racing write on the same payment cancelled.
const REFUND_ATTEMPTS: u64 = 4;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn pk(tenant: &str) -> String {
    format!("TENANT#{tenant}")
}

fn payment_sk(id: &str) -> String {
    format!("PAYMENT#{id}")
}

fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, key: &'static str) -> Result<&'a str, StoreError> {
    item.get(key).and_then(|v| v.as_s().ok()).map(String::as_str).ok_or(StoreError::Corrupt(key))
}

fn get_n(item: &HashMap<String, AttributeValue>, key: &'static str) -> Result<u64, StoreError> {
    item.get(key).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).ok_or(StoreError::Corrupt(key))
}

fn opt_s(item: &HashMap<String, AttributeValue>, key: &str) -> Option<String> {
    item.get(key).and_then(|v| v.as_s().ok()).cloned()
}

/// The personal data of a payment, encrypted together under the customer's key.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Personal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

fn payment_from_item(
    item: &HashMap<String, AttributeValue>,
    personal: Personal,
) -> Result<Payment, StoreError> {
    let amount = get_n(item, "amount")?;
    let refunded = get_n(item, "refunded")?;
    Ok(Payment {
        id: get_s(item, "id")?.to_owned(),
        amount,
        currency: get_s(item, "currency")?.to_owned(),
        status: Status::of(amount, refunded),
        refunded_amount: refunded,
        card: CardSummary {
            brand: get_s(item, "card_brand")?.to_owned(),
            last4: get_s(item, "card_last4")?.to_owned(),
            fingerprint: get_s(item, "card_fingerprint")?.to_owned(),
        },
        customer: Customer {
            id: get_s(item, "customer_id")?.to_owned(),
            name: personal.name,
            email: personal.email,
            country: personal.country,
        },
        description: personal.description,
        created_at: get_s(item, "created_at")?.to_owned(),
    })
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// A page of payments.
#[derive(Debug, Clone)]
pub struct Page {
    /// The payments, oldest id first.
    pub payments: Vec<Payment>,
    /// The cursor for the next page, if there is one.
    pub next: Option<String>,
}

/// The payments store over one DynamoDB table.
///
/// With a [`ReplicatedWriter`] ([`PaymentStore::with_writer`]) every write (create, refund,
/// erasure) goes through it, stamped with a new version and the writing region, to every
/// region it targets (sync) or for stream replication (async); reads stay on `client`.
#[derive(Debug, Clone)]
pub struct PaymentStore {
    client: Client,
    table: String,
    fingerprint_key: Vec<u8>,
    mask: Policy,
    subject_keys: Option<SubjectKeys>,
    writer: Option<ReplicatedWriter>,
}

impl PaymentStore {
    /// A store over a table; `fingerprint_key` keys the card fingerprints. Personal data is
    /// stored in clear unless [`with_subject_keys`](Self::with_subject_keys) is called.
    pub fn new(client: Client, table: impl Into<String>, fingerprint_key: impl Into<Vec<u8>>) -> Self {
        let fingerprint_key = fingerprint_key.into();
        let mask = privacy::free_text_policy(&fingerprint_key);
        Self { client, table: table.into(), fingerprint_key, mask, subject_keys: None, writer: None }
    }

    /// Encrypts personal data under each customer's own key, for crypto-shredding.
    pub fn with_subject_keys(mut self, keys: SubjectKeys) -> Self {
        self.subject_keys = Some(keys);
        self
    }

    /// The subject keys personal data is encrypted under, if any.
    pub fn subject_keys(&self) -> Option<&SubjectKeys> {
        self.subject_keys.as_ref()
    }

    /// Reads the personal data of an item: decrypted from `personal` (empty when the
    /// customer was erased), or the clear attributes of a store without subject keys.
    async fn personal(
        &self,
        tenant: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Personal, StoreError> {
        let Some(sealed) = item.get("personal").and_then(|v| v.as_b().ok()) else {
            return Ok(Personal {
                name: opt_s(item, "customer_name"),
                email: opt_s(item, "customer_email"),
                country: opt_s(item, "customer_country"),
                description: opt_s(item, "description"),
            });
        };
        let keys =
            self.subject_keys.as_ref().ok_or(StoreError::Corrupt("personal (no subject keys to read it)"))?;
        match keys.decrypt(tenant, sealed.as_ref()).await? {
            Some(plain) => serde_json::from_slice(&plain).map_err(|_| StoreError::Corrupt("personal")),
            None => Ok(Personal::default()),
        }
    }

    async fn payment(
        &self,
        tenant: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<Payment, StoreError> {
        let personal = self.personal(tenant, item).await?;
        payment_from_item(item, personal)
    }

    /// Writes through `writer` (a replicated table: every write kind stamped with a new
    /// version and its origin, acknowledged per the writer's mode) instead of `client`.
    pub fn with_writer(mut self, writer: ReplicatedWriter) -> Self {
        self.writer = Some(writer);
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Stores a new payment; refuses an id the tenant already used.
    pub async fn create(&self, tenant: &str, new: NewPayment) -> Result<Payment, StoreError> {
        let mut customer = new.customer.clone();
        customer.name = customer.name.map(|n| privacy::mask_free_text(&n, &self.mask));
        let description = new.description.as_deref().map(|d| privacy::mask_free_text(d, &self.mask));
        let payment = Payment {
            id: new.id.clone(),
            amount: new.amount,
            currency: new.currency.clone(),
            status: Status::Succeeded,
            refunded_amount: 0,
            card: CardSummary {
                brand: new.card.brand().to_owned(),
                last4: new.card.last4().to_owned(),
                fingerprint: new.card.fingerprint(&self.fingerprint_key),
            },
            customer,
            description,
            created_at: now_rfc3339(),
        };
        let mut req = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk(tenant)))
            .item("sk", s(payment_sk(&payment.id)))
            .item("id", s(&payment.id))
            .item("tenant", s(tenant))
            .item("amount", n(payment.amount))
            .item("refunded", n(0))
            .item("refundable", n(payment.amount))
            .item("currency", s(&payment.currency))
            .item("card_brand", s(&payment.card.brand))
            .item("card_last4", s(&payment.card.last4))
            .item("card_fingerprint", s(&payment.card.fingerprint))
            .item("customer_id", s(&payment.customer.id))
            .item("created_at", s(&payment.created_at))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(keys) = &self.subject_keys {
            let personal = Personal {
                name: payment.customer.name.clone(),
                email: payment.customer.email.clone(),
                country: payment.customer.country.clone(),
                description: payment.description.clone(),
            };
            let plain = serde_json::to_vec(&personal).map_err(|e| StoreError::Other(e.to_string()))?;
            let sealed = keys.encrypt(tenant, &payment.customer.id, &plain).await?;
            req = req.item("personal", AttributeValue::B(Blob::new(sealed)));
        } else {
            if let Some(name) = &payment.customer.name {
                req = req.item("customer_name", s(name));
            }
            if let Some(email) = &payment.customer.email {
                req = req.item("customer_email", s(email));
            }
            if let Some(country) = &payment.customer.country {
                req = req.item("customer_country", s(country));
            }
            if let Some(description) = &payment.description {
                req = req.item("description", s(description));
            }
        }
        if let Some(writer) = &self.writer {
            let item = req.as_input().get_item().clone().unwrap_or_default();
            return match writer.write(Write::put(item).when("attribute_not_exists(pk)")).await {
                Ok(_) => Ok(payment),
                Err(err) if err.is_rejected() => Err(StoreError::Duplicate),
                Err(err) => Err(replication_error(err)),
            };
        }
        match req.send().await {
            Ok(_) => Ok(payment),
            Err(err) if is_conditional_failure(&err) => Err(StoreError::Duplicate),
            Err(err) => Err(classify(err)),
        }
    }

    /// Reads one of the tenant's payments.
    pub async fn get(&self, tenant: &str, id: &str) -> Result<Payment, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk(tenant)))
            .key("sk", s(payment_sk(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        match out.item() {
            Some(item) => self.payment(tenant, item).await,
            None => Err(StoreError::NotFound),
        }
    }

    /// Erases a customer's personal data from the tenant's payments and refunds (GDPR
    /// Art. 17): their subject key is deleted, so every encrypted copy (here, in
    /// idempotency records, in backups) is unreadable, and clear attributes (a store
    /// without subject keys) are removed. The payments stay, as the law on accounting
    /// records requires, pointing at the customer id only. Returns how many payments
    /// named the customer.
    pub async fn erase_customer(&self, tenant: &str, customer_id: &str) -> Result<usize, StoreError> {
        if let Some(keys) = &self.subject_keys {
            keys.erase(tenant, customer_id).await?;
        }
        let mut erased = 0;
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .filter_expression("customer_id = :customer")
                .expression_attribute_values(":pk", s(pk(tenant)))
                .expression_attribute_values(":customer", s(customer_id))
                .set_exclusive_start_key(start.take())
                .consistent_read(true)
                .send()
                .await
                .map_err(classify)?;
            for item in out.items() {
                let (Some(pk), Some(sk)) = (item.get("pk"), item.get("sk")) else { continue };
                const REMOVE: &str =
                    "REMOVE customer_name, customer_email, customer_country, description, reason";
                if let Some(writer) = &self.writer {
                    // Always written, even when nothing is left to remove: the erasure is
                    // a versioned write, so every region converges on it and a drill can
                    // check it by its version.
                    let key = HashMap::from([("pk".to_owned(), pk.clone()), ("sk".to_owned(), sk.clone())]);
                    let erase = Write::update(key, REMOVE).when("attribute_exists(pk)");
                    writer.write(erase).await.map_err(replication_error)?;
                } else {
                    let clear =
                        ["customer_name", "customer_email", "customer_country", "description", "reason"];
                    if clear.iter().any(|a| item.contains_key(*a)) {
                        self.client
                            .update_item()
                            .table_name(&self.table)
                            .key("pk", pk.clone())
                            .key("sk", sk.clone())
                            .update_expression(REMOVE)
                            .condition_expression("attribute_exists(pk)")
                            .send()
                            .await
                            .map_err(classify)?;
                    }
                }
                if sk.as_s().is_ok_and(|sk| sk.starts_with("PAYMENT#")) {
                    erased += 1;
                }
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(erased),
            }
        }
    }

    /// Lists the tenant's payments by id, `limit` at a time, after the cursor.
    pub async fn list(&self, tenant: &str, limit: i32, after: Option<&str>) -> Result<Page, StoreError> {
        let mut req = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk(tenant)))
            .expression_attribute_values(":prefix", s("PAYMENT#"))
            .limit(limit);
        if let Some(after) = after {
            // The cursor is only an id: the partition key is always the caller's tenant.
            req =
                req.exclusive_start_key("pk", s(pk(tenant))).exclusive_start_key("sk", s(payment_sk(after)));
        }
        let out = req.send().await.map_err(classify)?;
        let mut payments = Vec::with_capacity(out.items().len());
        for item in out.items() {
            payments.push(self.payment(tenant, item).await?);
        }
        let next = out
            .last_evaluated_key()
            .and_then(|k| k.get("sk"))
            .and_then(|v| v.as_s().ok())
            .and_then(|sk| sk.strip_prefix("PAYMENT#"))
            .map(str::to_owned);
        Ok(Page { payments, next })
    }

    /// Refunds part or all of a payment in one transaction: the payment's refundable
    /// amount goes down only if it covers the refund, and the refund item is written with it.
    pub async fn refund(
        &self,
        tenant: &str,
        payment_id: &str,
        amount: u64,
        reason: Option<String>,
    ) -> Result<Refund, StoreError> {
        let refund_id = format!("re_{}", uuid::Uuid::new_v4().simple());
        self.refund_as(tenant, payment_id, &refund_id, amount, reason).await
    }

    /// [`refund`](Self::refund) under an id the caller chose, the same for every retry of
    /// one request (derived from its idempotency key): a retry that runs again after the
    /// first attempt committed and its answer was lost finds its own refund item and
    /// answers with it, instead of refunding a second time. The refund item of that id
    /// with another amount is [`StoreError::KeyReused`].
    ///
    /// With a writer, the refund item found in the region called is no evidence that the
    /// other regions hold it (the earlier attempt may have been refused or missed there):
    /// it is answered with only once the writer has every region it targets hold the
    /// refund and its payment ([`ReplicatedWriter::replicate`]), and is not acknowledged
    /// otherwise.
    pub async fn refund_as(
        &self,
        tenant: &str,
        payment_id: &str,
        refund_id: &str,
        amount: u64,
        reason: Option<String>,
    ) -> Result<Refund, StoreError> {
        // The refund is the customer's: its reason is theirs to erase. Reading the payment
        // first also answers 404 before anything is written.
        let customer_id = self.customer_of(tenant, payment_id).await?;
        let reason = reason.map(|r| privacy::mask_free_text(&r, &self.mask));
        let refund_id = refund_id.to_owned();
        let created_at = now_rfc3339();
        let update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(pk(tenant)))
            .key("sk", s(payment_sk(payment_id)))
            .update_expression("SET refundable = refundable - :a, refunded = refunded + :a")
            .condition_expression("attribute_exists(pk) AND refundable >= :a")
            .expression_attribute_values(":a", n(amount))
            .build()
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let mut put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(pk(tenant)))
            .item("sk", s(format!("REFUND#{payment_id}#{refund_id}")))
            .item("id", s(&refund_id))
            .item("payment_id", s(payment_id))
            .item("amount", n(amount))
            .item("customer_id", s(&customer_id))
            .item("created_at", s(&created_at))
            .condition_expression("attribute_not_exists(pk)");
        match (&reason, &self.subject_keys) {
            (Some(reason), Some(keys)) => {
                let sealed = keys.encrypt(tenant, &customer_id, reason.as_bytes()).await?;
                put = put.item("reason_sealed", AttributeValue::B(Blob::new(sealed)));
            }
            (Some(reason), None) => put = put.item("reason", s(reason)),
            (None, _) => {}
        }
        let put = put.build().map_err(|e| StoreError::Other(e.to_string()))?;
        for attempt in 1..=REFUND_ATTEMPTS {
            let result = if let Some(writer) = &self.writer {
                match writer.transact(vec![replicated_update(&update), replicated_put(&put)]).await {
                    Ok(_) => Ok(()),
                    Err(err) if err.is_rejected() => Err(None),
                    Err(err) => return Err(replication_error(err)),
                }
            } else {
                self.client
                    .transact_write_items()
                    .transact_items(TransactWriteItem::builder().update(update.clone()).build())
                    .transact_items(TransactWriteItem::builder().put(put.clone()).build())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(Some)
            };
            let Err(err) = result else { break };
            if let Some(err) = err {
                let cancelled =
                    err.as_service_error().is_some_and(|e| e.code() == Some("TransactionCanceledException"));
                if !cancelled {
                    return Err(classify(err));
                }
            }
            // Nothing was written by this attempt. The refund may be there already: written
            // by an earlier attempt whose answer was lost (the SDK's retry, or the client's
            // under the same idempotency key).
            if let Some(stored) = self.refund_item(tenant, payment_id, &refund_id).await? {
                if get_n(&stored, "amount")? != amount {
                    return Err(StoreError::KeyReused);
                }
                if let Some(writer) = &self.writer {
                    let refund_key = HashMap::from([
                        ("pk".to_owned(), s(pk(tenant))),
                        ("sk".to_owned(), s(format!("REFUND#{payment_id}#{refund_id}"))),
                    ]);
                    writer
                        .replicate(vec![update.key().clone(), refund_key])
                        .await
                        .map_err(replication_error)?;
                }
                let created_at = opt_s(&stored, "created_at").unwrap_or_default();
                let payment = self.get(tenant, payment_id).await?;
                return Ok(Refund {
                    id: refund_id,
                    payment_id: payment_id.to_owned(),
                    amount,
                    reason,
                    created_at,
                    payment,
                });
            }
            // Either not enough is left, or a write racing this one on the same payment
            // cancelled it (a transaction conflict, or the replicated writer's version
            // condition): only the first is an over-refund.
            let payment = self.get(tenant, payment_id).await?;
            let refundable = payment.amount - payment.refunded_amount;
            if refundable < amount {
                return Err(StoreError::OverRefund { refundable });
            }
            if attempt == REFUND_ATTEMPTS {
                return Err(StoreError::Unavailable("TransactionConflict".into()));
            }
            // Apart, so the racing writes do not meet again at once.
            let jitter = (uuid::Uuid::new_v4().as_u128() % 20) as u64;
            tokio::time::sleep(std::time::Duration::from_millis(10 * attempt + jitter)).await;
        }
        let payment = self.get(tenant, payment_id).await?;
        Ok(Refund { id: refund_id, payment_id: payment_id.to_owned(), amount, reason, created_at, payment })
    }
}

impl PaymentStore {
    /// A refund item, read consistently.
    async fn refund_item(
        &self,
        tenant: &str,
        payment_id: &str,
        refund_id: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk(tenant)))
            .key("sk", s(format!("REFUND#{payment_id}#{refund_id}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item)
    }

    /// The customer id of one of the tenant's payments.
    async fn customer_of(&self, tenant: &str, payment_id: &str) -> Result<String, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk(tenant)))
            .key("sk", s(payment_sk(payment_id)))
            .projection_expression("customer_id")
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        let item = out.item().ok_or(StoreError::NotFound)?;
        Ok(get_s(item, "customer_id")?.to_owned())
    }
}

fn is_conditional_failure<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

// Replicated writes: the store's requests, as writes through a `ReplicatedWriter`.

/// A write the replicated writer did not get into every region it targets: unavailable
/// when no region holds it, not replicated when some do (so a caller that judges regions by
/// their answers does not blame the region called for another region's refusal).
fn replication_error(err: WriteError) -> StoreError {
    if err.acknowledged.is_empty() {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::NotReplicated(err.to_string())
    }
}

fn replicated_update(update: &Update) -> Write {
    Write::Update {
        key: update.key().clone(),
        expression: update.update_expression().to_owned(),
        condition: WriteCondition {
            expression: update.condition_expression().unwrap_or_default().to_owned(),
            names: update.expression_attribute_names().cloned().unwrap_or_default(),
            values: update.expression_attribute_values().cloned().unwrap_or_default(),
        },
    }
}

fn replicated_put(put: &Put) -> Write {
    let mut write = Write::put(put.item().clone());
    if let Some(condition) = put.condition_expression() {
        write = write.when(condition);
    }
    write
}

#[cfg(test)]
mod tests {
    use super::*;
    use lift::disaster::RegionFailure;

    fn refused_by(acknowledged: &[&str]) -> WriteError {
        WriteError {
            kind: "transaction",
            acknowledged: acknowledged.iter().map(|r| (*r).to_owned()).collect(),
            failures: vec![RegionFailure {
                region: "eu-west-1".into(),
                reason: "ConditionalCheckFailed".into(),
            }],
            condition_failed: vec!["eu-west-1".into()],
            superseded: vec![],
        }
    }

    #[test]
    fn a_write_some_regions_hold_is_not_replicated_and_one_none_hold_is_unavailable() {
        assert!(matches!(replication_error(refused_by(&["us-east-1"])), StoreError::NotReplicated(_)));
        assert!(matches!(replication_error(refused_by(&[])), StoreError::Unavailable(_)));
    }

    /// A refund item the region called holds, that the other region lacks (an earlier
    /// attempt's, refused or missed there, or whose every answer was lost), is never
    /// answered with on its own: the retry under the same id is acknowledged once both
    /// regions hold the refund and the payment it took from.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refund_found_in_the_region_called_is_acknowledged_only_once_every_region_holds_it() {
        use lift::disaster::{RegionConfig, RegionSet, ReplicatedTable};
        use lift_harness::dynamodb::DynamoDbLocal;
        use lift_harness::faults::{AwsFaultProxy, DynamoDbFault};

        const TENANT: &str = "acme";
        const KEY: &[u8] = b"test-fingerprint-key-0123456789ab";
        let ddb = DynamoDbLocal::shared().await.expect("dynamodb local");
        let def = table_def();
        let (us_table, eu_table) =
            (ddb.create_table(&def).await.unwrap(), ddb.create_table(&def).await.unwrap());
        // us-east-1, the region called, behind a proxy that can lose answers.
        let proxy = AwsFaultProxy::start(ddb.endpoint()).await.unwrap();
        let regions = RegionSet::builder()
            .region(RegionConfig::new("us-east-1").dynamodb_endpoint(proxy.endpoint()))
            .region(RegionConfig::new("eu-west-1").dynamodb_endpoint(ddb.endpoint()))
            .build()
            .unwrap();
        let table =
            ReplicatedTable::new(def).with_name_in("us-east-1", us_table).with_name_in("eu-west-1", eu_table);
        let (us, eu) = (regions.by_name("us-east-1").unwrap(), regions.by_name("eu-west-1").unwrap());
        let store_with = |writer: ReplicatedWriter| {
            PaymentStore::new(us.dynamodb().clone(), table.name_in("us-east-1"), KEY).with_writer(writer)
        };
        let store = store_with(ReplicatedWriter::sync(regions.clone(), table.clone()).build().unwrap());
        let in_eu = PaymentStore::new(eu.dynamodb().clone(), table.name_in("eu-west-1"), KEY);
        let new = crate::model::CreatePayment {
            id: Some("pay_1".into()),
            card_number: "4111 1111 1111 1111".into(),
            amount: 1_000,
            currency: "USD".into(),
            customer: crate::model::Customer {
                id: "c_1".into(),
                name: Some("Jane Roe".into()),
                email: None,
                country: None,
            },
            description: None,
        }
        .validate()
        .unwrap();
        store.create(TENANT, new).await.unwrap();

        // An earlier attempt's refund reached us only.
        let us_only =
            ReplicatedWriter::async_(regions.clone(), table.clone()).targets(["us-east-1"]).build().unwrap();
        store_with(us_only).refund_as(TENANT, "pay_1", "re_1", 100, None).await.unwrap();
        assert!(in_eu.refund_item(TENANT, "pay_1", "re_1").await.unwrap().is_none());
        let refund = store.refund_as(TENANT, "pay_1", "re_1", 100, None).await.unwrap();
        assert_eq!(refund.payment.refunded_amount, 100);
        assert!(in_eu.refund_item(TENANT, "pay_1", "re_1").await.unwrap().is_some(), "acknowledged: in eu");
        assert_eq!(in_eu.get(TENANT, "pay_1").await.unwrap().refunded_amount, 100);

        // Every answer of a refund's transaction lost: us holds it, eu was never sent it.
        proxy.lose_answers("TransactWriteItems", DynamoDbFault::InternalServerError, 3);
        let err = store.refund_as(TENANT, "pay_1", "re_2", 50, None).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(store.refund_item(TENANT, "pay_1", "re_2").await.unwrap().is_some());
        assert!(in_eu.refund_item(TENANT, "pay_1", "re_2").await.unwrap().is_none());
        let refund = store.refund_as(TENANT, "pay_1", "re_2", 50, None).await.unwrap();
        assert_eq!(refund.payment.refunded_amount, 150, "refunded once");
        assert!(in_eu.refund_item(TENANT, "pay_1", "re_2").await.unwrap().is_some(), "acknowledged: in eu");
        assert_eq!(in_eu.get(TENANT, "pay_1").await.unwrap().refunded_amount, 150);
    }
}
