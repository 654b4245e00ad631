//! Tenant-isolated DynamoDB access: every key a handler reads or writes through a
//! [`TenantTable`] lives under its own tenant's prefix.
//!
//! The tenant is a [`TenantId`], which only the authenticated [`Principal`](crate::Principal)
//! of a request's [`Context`] can give: never a header or a body the caller controls. Each
//! partition key is `TENANT#<tenant>#<id>`; neither part may contain `#`, so one
//! `(tenant, id)` pair makes exactly one key and no id can reach another tenant's prefix.
//! Every item also carries a `tenant` attribute, and every helper checks it (in a condition
//! expression for writes, on the returned items for reads), so even an item written
//! around these helpers is not served to another tenant.
//!
//! # Examples
//!
//! ```no_run
//! use lift::tenant::{ItemKey, TenantId, TenantTable};
//! use aws_sdk_dynamodb::types::AttributeValue;
//!
//! # async fn handler(req: lift::Request, client: aws_sdk_dynamodb::Client) -> Result<lift::Response, lift::Error> {
//! let ctx = lift::Context::of(&req).ok_or_else(|| lift::Error::internal("no context"))?;
//! let tenant = TenantId::from_context(ctx)?;
//! let table = TenantTable::new(client, "notes").with_sort_key("sk");
//! let key = ItemKey::new("user-1").with_sort("note-7");
//! table.put(&tenant, &key, [("text".to_owned(), AttributeValue::S("hello".into()))].into()).await?;
//! let note = table.get(&tenant, &key).await?;
//! # let _ = note;
//! # Ok(lift::Response::default()) }
//! ```

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_dynamodb::Client;
use http::StatusCode;

use crate::context::Context;
use crate::error::Error;
use crate::store::{KeyAttribute, TableDef};
use crate::BoxError;

/// The separator between the parts of a partition key; refused inside tenants and ids.
pub const SEPARATOR: char = '#';
/// The prefix of every partition key.
pub const TENANT_PREFIX: &str = "TENANT#";
/// The attribute holding the owning tenant on every item.
pub const TENANT_ATTRIBUTE: &str = "tenant";
/// The longest tenant id, in bytes.
pub const MAX_TENANT_LEN: usize = 128;
/// The longest item id (partition or sort part), in bytes.
pub const MAX_ID_LEN: usize = 1024;

/// An item as DynamoDB returns it.
pub type Item = HashMap<String, AttributeValue>;

/// Why a tenant-isolated operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantError {
    /// The request has no authenticated principal, so no tenant.
    #[error("no authenticated principal")]
    NoPrincipal,
    /// The principal's tenant is empty, too long, or contains `#` or control characters.
    #[error("invalid tenant id")]
    InvalidTenant,
    /// An id is empty, too long, or contains `#` (partition ids) or control characters.
    #[error("invalid {field}: ids are 1 to 1024 bytes without control characters or '#'")]
    InvalidId {
        /// Which id: `"id"` or `"sort key"`.
        field: &'static str,
    },
    /// The item sets an attribute the table manages (the keys or `tenant`).
    #[error("attribute {0} is managed by the tenant table")]
    ReservedAttribute(String),
    /// An update with no attributes to set.
    #[error("nothing to update")]
    NothingToUpdate,
    /// `put_new` found an item with this key.
    #[error("the item already exists")]
    AlreadyExists,
    /// No item with this key belongs to the tenant.
    #[error("no such item")]
    NotFound,
    /// DynamoDB failed.
    #[error("dynamodb request failed")]
    DynamoDb(#[source] BoxError),
}

impl From<TenantError> for Error {
    fn from(err: TenantError) -> Self {
        match err {
            TenantError::NoPrincipal => {
                Error::unauthorized("Bearer").with_detail("authentication is required")
            }
            TenantError::InvalidTenant => Error::forbidden("the caller's tenant is not valid"),
            TenantError::InvalidId { field } => Error::validation(field, err.to_string()),
            TenantError::ReservedAttribute(_) | TenantError::NothingToUpdate => Error::internal(err),
            TenantError::AlreadyExists => Error::conflict("the item already exists"),
            TenantError::NotFound => Error::not_found(),
            TenantError::DynamoDb(_) => Error::new(StatusCode::SERVICE_UNAVAILABLE)
                .with_detail("the data store is unavailable; retry later")
                .with_source(err),
        }
    }
}

/// A tenant, taken from the authenticated principal of a request.
///
/// There is deliberately no way to make one from a string: a tenant that came from a
/// header, a path or a body could be anyone's.
///
/// # Examples
///
/// ```
/// use lift::tenant::TenantId;
/// let mut ctx = lift::Context::new("req-1");
/// assert!(TenantId::from_context(&ctx).is_err());
/// ctx.set_principal(lift::Principal::new("user-1", "acme"));
/// assert_eq!(TenantId::from_context(&ctx).unwrap().as_str(), "acme");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// The tenant of the context's principal.
    pub fn from_context(ctx: &Context) -> Result<Self, TenantError> {
        let principal = ctx.principal().ok_or(TenantError::NoPrincipal)?;
        Self::checked(&principal.tenant)
    }

    /// The tenant of a request's principal.
    pub fn from_request<B>(req: &http::Request<B>) -> Result<Self, TenantError> {
        Self::from_context(Context::of(req).ok_or(TenantError::NoPrincipal)?)
    }

    fn checked(tenant: &str) -> Result<Self, TenantError> {
        if tenant.is_empty()
            || tenant.len() > MAX_TENANT_LEN
            || tenant.contains(SEPARATOR)
            || tenant.chars().any(char::is_control)
        {
            return Err(TenantError::InvalidTenant);
        }
        Ok(Self(tenant.to_owned()))
    }

    /// The tenant id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_id(id: &str, field: &'static str, allow_separator: bool) -> Result<(), TenantError> {
    if id.is_empty()
        || id.len() > MAX_ID_LEN
        || (!allow_separator && id.contains(SEPARATOR))
        || id.chars().any(char::is_control)
    {
        return Err(TenantError::InvalidId { field });
    }
    Ok(())
}

/// The partition key of item `id` of `tenant`: `TENANT#<tenant>#<id>`.
///
/// # Examples
///
/// ```
/// # use lift::tenant::{partition_key, TenantId};
/// # let mut ctx = lift::Context::new("r");
/// # ctx.set_principal(lift::Principal::new("u", "acme"));
/// let tenant = TenantId::from_context(&ctx)?;
/// assert_eq!(partition_key(&tenant, "pay_1")?, "TENANT#acme#pay_1");
/// assert!(partition_key(&tenant, "x#TENANT#globex#pay_1").is_err());
/// # Ok::<(), lift::tenant::TenantError>(())
/// ```
pub fn partition_key(tenant: &TenantId, id: &str) -> Result<String, TenantError> {
    check_id(id, "id", false)?;
    Ok(format!("{TENANT_PREFIX}{}{SEPARATOR}{id}", tenant.0))
}

/// The tenant and id of a partition key made by [`partition_key`] (for stream handlers);
/// `None` for any other string.
pub fn split_partition_key(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(TENANT_PREFIX)?;
    let (tenant, id) = rest.split_once(SEPARATOR)?;
    (!tenant.is_empty() && !id.is_empty() && !id.contains(SEPARATOR)).then_some((tenant, id))
}

/// The key of an item: a partition id and, for tables with a sort key, a sort id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemKey {
    id: String,
    sort: Option<String>,
}

impl ItemKey {
    /// The key of item `id` (the partition part).
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into(), sort: None }
    }

    /// Adds the sort part (it may contain `#`: it is already inside the tenant's partition).
    pub fn with_sort(mut self, sort: impl Into<String>) -> Self {
        self.sort = Some(sort.into());
        self
    }
}

/// A DynamoDB table whose items are isolated per tenant.
///
/// The table has a string partition key (`pk` unless configured) and optionally a string
/// sort key; [`TenantTable::table_def`] defines one.
#[derive(Debug, Clone)]
pub struct TenantTable {
    client: Client,
    table: String,
    partition_key: String,
    sort_key: Option<String>,
}

impl TenantTable {
    /// A table whose partition key attribute is `pk`, without a sort key.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), partition_key: "pk".to_owned(), sort_key: None }
    }

    /// Names the partition key attribute (default `pk`).
    #[must_use]
    pub fn with_partition_key(mut self, attribute: impl Into<String>) -> Self {
        self.partition_key = attribute.into();
        self
    }

    /// Names the sort key attribute; keys must then carry a sort part.
    #[must_use]
    pub fn with_sort_key(mut self, attribute: impl Into<String>) -> Self {
        self.sort_key = Some(attribute.into());
        self
    }

    /// The definition of a table for tenant-isolated items: string `pk` and `sk`.
    pub fn table_def(name: impl Into<String>) -> TableDef {
        TableDef::new(name, KeyAttribute::string("pk")).with_sort_key(KeyAttribute::string("sk"))
    }

    /// The physical table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(&self, tenant: &TenantId, key: &ItemKey) -> Result<Item, TenantError> {
        let mut out = Item::new();
        out.insert(self.partition_key.clone(), AttributeValue::S(partition_key(tenant, &key.id)?));
        match (&self.sort_key, &key.sort) {
            (Some(attr), Some(sort)) => {
                check_id(sort, "sort key", true)?;
                out.insert(attr.clone(), AttributeValue::S(sort.clone()));
            }
            (None, None) => {}
            _ => return Err(TenantError::InvalidId { field: "sort key" }),
        }
        Ok(out)
    }

    fn check_attributes<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Result<(), TenantError> {
        for name in names {
            if name == &self.partition_key || Some(name) == self.sort_key.as_ref() || name == TENANT_ATTRIBUTE
            {
                return Err(TenantError::ReservedAttribute(name.clone()));
            }
        }
        Ok(())
    }

    /// Removes the managed attributes from an item that belongs to `tenant`; `None` (and an
    /// error in the log) for an item of another tenant, which only a write around these
    /// helpers could have made.
    fn owned(&self, tenant: &TenantId, mut item: Item) -> Option<Item> {
        let owner = item.remove(TENANT_ATTRIBUTE);
        if !matches!(&owner, Some(AttributeValue::S(t)) if *t == tenant.0) {
            tracing::error!(table = %self.table, "an item under a tenant's key belongs to another tenant");
            return None;
        }
        item.remove(&self.partition_key);
        Some(item)
    }

    /// The tenant's item with this key, without the managed `pk` and `tenant` attributes.
    pub async fn get(&self, tenant: &TenantId, key: &ItemKey) -> Result<Option<Item>, TenantError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(tenant, key)?))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(out.item.and_then(|item| self.owned(tenant, item)))
    }

    /// Writes the tenant's item (replacing the tenant's item with this key, if any).
    pub async fn put(&self, tenant: &TenantId, key: &ItemKey, item: Item) -> Result<(), TenantError> {
        self.write(tenant, key, item, false).await
    }

    /// Writes the tenant's item unless one with this key exists
    /// ([`TenantError::AlreadyExists`]).
    pub async fn put_new(&self, tenant: &TenantId, key: &ItemKey, item: Item) -> Result<(), TenantError> {
        self.write(tenant, key, item, true).await
    }

    async fn write(
        &self,
        tenant: &TenantId,
        key: &ItemKey,
        mut item: Item,
        new: bool,
    ) -> Result<(), TenantError> {
        self.check_attributes(item.keys())?;
        item.extend(self.key(tenant, key)?);
        item.insert(TENANT_ATTRIBUTE.to_owned(), AttributeValue::S(tenant.0.clone()));
        let condition =
            if new { "attribute_not_exists(#pk)" } else { "attribute_not_exists(#pk) OR #tenant = :tenant" };
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .expression_attribute_names("#pk", &self.partition_key);
        if !new {
            request = request
                .expression_attribute_names("#tenant", TENANT_ATTRIBUTE)
                .expression_attribute_values(":tenant", AttributeValue::S(tenant.0.clone()));
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(if new { TenantError::AlreadyExists } else { TenantError::NotFound })
            }
            Err(err) => Err(dynamo(err)),
        }
    }

    /// Sets attributes of the tenant's existing item and returns it as it is now;
    /// [`TenantError::NotFound`] when the tenant has no item with this key.
    pub async fn update(&self, tenant: &TenantId, key: &ItemKey, set: Item) -> Result<Item, TenantError> {
        if set.is_empty() {
            return Err(TenantError::NothingToUpdate);
        }
        self.check_attributes(set.keys())?;
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key(tenant, key)?))
            .condition_expression("#tenant = :tenant")
            .expression_attribute_names("#tenant", TENANT_ATTRIBUTE)
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.0.clone()))
            .return_values(ReturnValue::AllNew);
        let mut assignments = Vec::with_capacity(set.len());
        for (i, (name, value)) in set.into_iter().enumerate() {
            assignments.push(format!("#a{i} = :v{i}"));
            request = request
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":v{i}"), value);
        }
        let request = request.update_expression(format!("SET {}", assignments.join(", ")));
        match request.send().await {
            Ok(out) => out.attributes.and_then(|item| self.owned(tenant, item)).ok_or(TenantError::NotFound),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(TenantError::NotFound)
            }
            Err(err) => Err(dynamo(err)),
        }
    }

    /// Deletes the tenant's item and returns it; `None` when the tenant has no such item.
    pub async fn delete(&self, tenant: &TenantId, key: &ItemKey) -> Result<Option<Item>, TenantError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(tenant, key)?))
            .condition_expression("#tenant = :tenant")
            .expression_attribute_names("#tenant", TENANT_ATTRIBUTE)
            .expression_attribute_values(":tenant", AttributeValue::S(tenant.0.clone()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => Ok(out.attributes.and_then(|item| self.owned(tenant, item))),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(None)
            }
            Err(err) => Err(dynamo(err)),
        }
    }

    /// Up to `limit` of the tenant's items under partition `id`, in sort key order.
    pub async fn query(&self, tenant: &TenantId, id: &str, limit: usize) -> Result<Vec<Item>, TenantError> {
        let pk = partition_key(tenant, id)?;
        let mut items = Vec::new();
        let mut start = None;
        while items.len() < limit {
            let page_size = i32::try_from(limit - items.len()).unwrap_or(i32::MAX);
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .filter_expression("#tenant = :tenant")
                .expression_attribute_names("#pk", &self.partition_key)
                .expression_attribute_names("#tenant", TENANT_ATTRIBUTE)
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .expression_attribute_values(":tenant", AttributeValue::S(tenant.0.clone()))
                .limit(page_size)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(dynamo)?;
            items.extend(
                out.items.unwrap_or_default().into_iter().filter_map(|item| self.owned(tenant, item)),
            );
            match out.last_evaluated_key {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        items.truncate(limit);
        Ok(items)
    }
}

fn dynamo<E, R>(err: SdkError<E, R>) -> TenantError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    TenantError::DynamoDb(Box::new(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Principal;
    use proptest::prelude::*;

    fn tenant(t: &str) -> TenantId {
        let mut ctx = Context::new("r");
        ctx.set_principal(Principal::new("u", t));
        TenantId::from_context(&ctx).unwrap()
    }

    /// Tenants and ids as generated: anything printable, `#` included, so the refusals are
    /// exercised as much as the keys.
    fn part() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z0-9]{1,8}", "[ab#]{1,4}", "\\PC{0,12}", Just("TENANT".to_owned())]
    }

    proptest! {
        #[test]
        fn keys_are_injective(t1 in part(), i1 in part(), t2 in part(), i2 in part()) {
            let (Ok(a), Ok(b)) = (TenantId::checked(&t1), TenantId::checked(&t2)) else { return Ok(()) };
            if let (Ok(k1), Ok(k2)) = (partition_key(&a, &i1), partition_key(&b, &i2)) {
                prop_assert_eq!(k1 == k2, t1 == t2 && i1 == i2);
            }
        }

        #[test]
        fn no_id_escapes_its_tenant(t in part(), id in part()) {
            let Ok(tenant) = TenantId::checked(&t) else { return Ok(()) };
            match partition_key(&tenant, &id) {
                Ok(key) => {
                    let prefix = format!("TENANT#{t}#");
                    prop_assert!(key.starts_with(&prefix));
                    prop_assert_eq!(key.matches(SEPARATOR).count(), 2);
                    prop_assert_eq!(split_partition_key(&key), Some((t.as_str(), id.as_str())));
                }
                Err(_) => prop_assert!(id.is_empty() || id.contains('#') || id.chars().any(char::is_control)),
            }
        }

        #[test]
        fn split_never_panics(s in "\\PC{0,40}") {
            let _ = split_partition_key(&s);
        }
    }

    #[test]
    fn tenants_come_from_the_principal_only() {
        let mut ctx = Context::new("r");
        ctx.set_tenant("acme");
        assert!(matches!(TenantId::from_context(&ctx), Err(TenantError::NoPrincipal)));
        ctx.set_principal(Principal::new("u", "a#b"));
        assert!(matches!(TenantId::from_context(&ctx), Err(TenantError::InvalidTenant)));
        ctx.set_principal(Principal::new("u", ""));
        assert!(matches!(TenantId::from_context(&ctx), Err(TenantError::InvalidTenant)));
    }

    #[test]
    fn table_keys_and_reserved_attributes() {
        let conf = aws_sdk_dynamodb::Config::builder().behavior_version_latest().build();
        let table = TenantTable::new(Client::from_conf(conf), "t").with_sort_key("sk");
        let t = tenant("acme");
        let key = table.key(&t, &ItemKey::new("p1").with_sort("REFUND#1")).unwrap();
        assert_eq!(key["pk"], AttributeValue::S("TENANT#acme#p1".into()));
        assert_eq!(key["sk"], AttributeValue::S("REFUND#1".into()));
        assert!(table.key(&t, &ItemKey::new("p1")).is_err(), "the sort part is required");
        for reserved in ["pk", "sk", "tenant"] {
            assert!(table.check_attributes([&reserved.to_owned()]).is_err());
        }
        let foreign: Item = [("tenant".to_owned(), AttributeValue::S("globex".into()))].into();
        assert!(table.owned(&t, foreign).is_none());
        assert!(table.owned(&t, Item::new()).is_none(), "an item without an owner is nobody's");
    }

    #[test]
    fn errors_map_to_statuses() {
        assert_eq!(Error::from(TenantError::NoPrincipal).status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Error::from(TenantError::NotFound).status(), StatusCode::NOT_FOUND);
        assert_eq!(Error::from(TenantError::InvalidId { field: "id" }).status(), StatusCode::BAD_REQUEST);
        assert_eq!(Error::from(TenantError::DynamoDb("x".into())).status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
