//! Writes that meet a transaction running on their item: a join or a leave is a transaction
//! on the group item with a check on the alarm item, and DynamoDB refuses any other write
//! to either item while it runs. The router tries such a write again, a bounded number of
//! times, and reads a group once per join.
//!
//! DynamoDB Local carries out one request at a time, so no write of its ever meets a
//! running transaction: a proxy in front of it answers chosen requests with DynamoDB's own
//! conflict answers ([`support::conflicts`]), and forwards the rest.

mod support;

use std::num::NonZeroU32;
use std::time::Duration;

use alert_router::alarm::AlarmChange;
use alert_router::store::{ConflictRetry, StoreError};
use alert_router::{AlertRouter, AlertStore, RouterError};
use lift_harness::dynamodb::{client_for, default_region};
use support::conflicts::{Answer, ConflictProxy};
use support::*;

/// A router whose DynamoDB requests go through a conflict proxy, retrying as `retry` says
/// (the default when `None`).
async fn through_proxy(env: &Env, retry: Option<ConflictRetry>) -> (ConflictProxy, AlertRouter) {
    let proxy = ConflictProxy::start(env.ddb.endpoint()).await;
    let mut store = AlertStore::new(client_for(proxy.endpoint(), &default_region()), &env.table);
    if let Some(retry) = retry {
        store = store.with_conflict_retry(retry);
    }
    let router = env.instance_over(store);
    (proxy, router)
}

fn fingerprint() -> String {
    AlarmChange::from_eventbridge(&fixture(EB_ALARM)).unwrap().fingerprint()
}

/// The alarm's ALARM and its OK each meet a join's transaction on the alarm item twice:
/// recorded all the same, paged and resolved once. Without a retry the event failed, to be
/// redelivered by Lambda a minute later, or parked after two more failures.
#[tokio::test]
async fn alarm_changes_that_meet_a_transaction_on_the_alarm_item_are_tried_again_and_applied() {
    let env = env().await;
    let (proxy, router) = through_proxy(&env, None).await;
    let fp = fingerprint();
    proxy.answer("UpdateItem", &fp, 2, Answer::Conflict);
    let report = router.handle_event(&fixture(EB_ALARM)).await.expect("the ALARM is applied");
    assert_eq!(proxy.answered(), 2, "both conflicts were met");
    assert_eq!(report.delivered.len(), 2, "{report:?}");
    assert_eq!(env.pagerduty("trigger").await.len(), 1);

    env.clock.set(T0 + Duration::from_secs(60));
    proxy.answer("UpdateItem", &fp, 2, Answer::Conflict);
    router.handle_event(&fixture(EB_OK)).await.expect("the OK is applied");
    assert_eq!(proxy.answered(), 4);
    assert_eq!(env.pagerduty("resolve").await.len(), 1);
    // The group closed, though the writes to its alarm conflicted first.
    let group = group_of(&env.pagerduty("trigger").await[0]);
    assert!(!env.router.store().group(&group).await.unwrap().expect("the group").open);
}

/// An acknowledgement whose update meets a leave's transaction on the group item twice is
/// taken, not answered 503.
#[tokio::test]
async fn an_acknowledgement_that_meets_a_transaction_on_the_group_item_is_tried_again_and_taken() {
    let env = env().await;
    env.function.invoke(fixture(EB_ALARM)).await.unwrap();
    let group = group_of(&env.pagerduty("trigger").await[0]);
    let (proxy, router) = through_proxy(&env, None).await;
    proxy.answer("UpdateItem", "acked_by", 2, Answer::Conflict);
    router.acknowledge(&group, 1, "alice").await.expect("the acknowledgement is taken");
    assert_eq!(proxy.answered(), 2);
    assert_eq!(env.pagerduty("acknowledge").await.len(), 1);
    let stored = env.router.store().group(&group).await.unwrap().expect("the group");
    assert_eq!(stored.acked_by.as_deref(), Some("alice"));
}

/// A join cancelled for a conflict on one of its items (the reasons read by the one
/// parser) is tried again.
#[tokio::test]
async fn a_join_cancelled_for_a_conflict_is_tried_again() {
    let env = env().await;
    let (proxy, router) = through_proxy(&env, None).await;
    proxy.answer("TransactWriteItems", &fingerprint(), 2, Answer::Cancelled);
    router.handle_event(&fixture(EB_ALARM)).await.expect("the ALARM joins");
    assert_eq!(proxy.answered(), 2);
    assert_eq!(env.pagerduty("trigger").await.len(), 1);
}

/// A write that meets a transaction at every try gives up after its bound, with an error
/// that says so, and writes nothing: the event fails whole, for Lambda to deliver again.
#[tokio::test]
async fn a_write_that_meets_a_transaction_at_every_try_gives_up_after_its_bound() {
    let env = env().await;
    let retry = ConflictRetry::new(NonZeroU32::new(3).unwrap(), Duration::from_millis(1));
    let (proxy, router) = through_proxy(&env, Some(retry)).await;
    let fp = fingerprint();
    proxy.answer("UpdateItem", &fp, u32::MAX, Answer::Conflict);
    let err = router.handle_event(&fixture(EB_ALARM)).await.expect_err("it gives up");
    assert!(
        matches!(err, RouterError::Store(StoreError::Conflict { operation: "UpdateItem", attempts: 3 })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "dynamodb UpdateItem conflicted with a transaction on its item at each of 3 tries"
    );
    assert_eq!(proxy.seen("UpdateItem", &fp), 3, "three tries, no more");
    assert_eq!(env.table_text().await.0, 0, "nothing written: {}", env.table_text().await.1);
    assert!(env.pagerduty("trigger").await.is_empty());
}

/// A join reads its group once, after its transaction, and the drive that follows uses
/// what the join saw; an acknowledgement's update answers with the group, and nothing
/// reads it again.
#[tokio::test]
async fn a_join_reads_its_group_once_and_an_acknowledgement_not_at_all() {
    let env = env().await;
    let (proxy, router) = through_proxy(&env, None).await;
    let report = router.handle_event(&fixture(EB_ALARM)).await.unwrap();
    assert_eq!(env.pagerduty("trigger").await.len(), 1);
    // The page goes to two routes (PagerDuty, then Slack): two groups, one read each.
    assert_eq!(report.groups, 2, "{report:?}");
    assert_eq!(proxy.seen("GetItem", "GROUP"), 2, "one read per group joined");
    let group = group_of(&env.pagerduty("trigger").await[0]);
    router.acknowledge(&group, 1, "alice").await.unwrap();
    assert_eq!(env.pagerduty("acknowledge").await.len(), 1);
    assert_eq!(proxy.seen("GetItem", "GROUP"), 2, "no read for the acknowledgement");
}

/// Writes whose answers are lost are sent again by the SDK after DynamoDB carried them out:
/// an episode's open (refused the second time, as it is open), the alarm change and the
/// acknowledgement (admitted again) neither fail nor apply twice.
#[tokio::test]
async fn writes_sent_again_after_a_lost_answer_neither_fail_nor_apply_twice() {
    let env = env().await;
    let (proxy, router) = through_proxy(&env, None).await;
    proxy.answer("UpdateItem", &fingerprint(), 1, Answer::Lost);
    proxy.answer("UpdateItem", ":next", 1, Answer::Lost);
    router.handle_event(&fixture(EB_ALARM)).await.expect("the ALARM is applied");
    assert_eq!(proxy.answered(), 2);
    assert_eq!(env.pagerduty("trigger").await.len(), 1);
    let group = group_of(&env.pagerduty("trigger").await[0]);
    let stored = env.router.store().group(&group).await.unwrap().expect("the group");
    assert_eq!((stored.open, stored.episode), (true, 1), "opened once");

    proxy.answer("UpdateItem", "acked_by", 1, Answer::Lost);
    router.acknowledge(&group, 1, "alice").await.expect("the acknowledgement is taken");
    router.acknowledge(&group, 1, "bob").await.expect("a second one is no error");
    assert_eq!(proxy.answered(), 3);
    let stored = env.router.store().group(&group).await.unwrap().expect("the group");
    assert_eq!(stored.acked_by.as_deref(), Some("alice"), "the first acknowledger is kept");
    assert_eq!(env.pagerduty("acknowledge").await.len(), 1);
}
