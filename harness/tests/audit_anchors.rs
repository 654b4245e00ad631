//! The anchored audit trail on real DynamoDB Local: signed checkpoints in their own table,
//! and a verifier in a fresh process (a new `AuditTrail`) that names each way someone with
//! write access to both tables, but not the key, can tamper: a missing tail, a deleted
//! prefix, a deleted chain, a re-hashed rewrite and a forged checkpoint. Plus what the
//! tables alone cannot show (tail and checkpoints deleted together) caught by an anchor kept
//! elsewhere, legitimate expiry not called tampering, and a write whose answer was lost
//! stored once.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use lift::security::audit::{
    AuditEntry, AuditError, AuditQuery, AuditTrail, ChainBreak, Checkpoint, CheckpointKey, Outcome,
    SealedEntry,
};
use lift_harness::aws::AwsMocks;
use lift_harness::dynamodb::DynamoDbLocal;
use lift_harness::faults::{AwsFaultProxy, DynamoDbFault};

const KEY: [u8; 32] = *b"checkpoint-key-for-tests-0123456";

struct Env {
    client: Client,
    endpoint: String,
    entries: String,
    checkpoints: String,
}

async fn env() -> Env {
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|err| panic!("no dynamodb local: {err}"));
    let entries = local.create_table(&lift::store::tables::audit()).await.expect("the audit table");
    let checkpoints =
        local.create_table(&lift::store::tables::audit_checkpoints()).await.expect("the checkpoint table");
    Env { client: local.client().await, endpoint: local.endpoint().to_owned(), entries, checkpoints }
}

impl Env {
    /// A new trail (a fresh process, as far as the chain is concerned) with `key`.
    fn trail_with(&self, client: &Client, key: [u8; 32]) -> AuditTrail {
        AuditTrail::builder()
            .client(client.clone())
            .table(&self.entries)
            .checkpoint_key(CheckpointKey::new(key).unwrap())
            .checkpoint_table(&self.checkpoints)
            .build()
            .expect("a valid trail")
    }

    fn trail(&self) -> AuditTrail {
        self.trail_with(&self.client, KEY)
    }

    /// Six entries for `acme`, flushed as 3 + 3: checkpoints 1 (seq 3) and 2 (seq 6).
    async fn six_entries(&self) -> AuditTrail {
        let trail = self.trail();
        for batch in 0..2u64 {
            for i in 0..3u64 {
                trail.try_append(entry("acme", batch * 3 + i)).unwrap();
            }
            trail.flush().await.unwrap();
        }
        let verified = self.trail().verify("acme").await.unwrap();
        assert_eq!((verified.entries, verified.checkpoints, verified.head.0), (6, 2, 6));
        trail
    }

    async fn delete_entry(&self, seq: u64) {
        self.client
            .delete_item()
            .table_name(&self.entries)
            .key("pk", AttributeValue::S("AUDIT#acme".into()))
            .key("seq", AttributeValue::N(seq.to_string()))
            .send()
            .await
            .unwrap();
    }

    /// Deletes the tail of [`six_entries`](Self::six_entries) (entries 4 to 6) and its
    /// checkpoint (2), as someone with write access to both tables could.
    async fn cut_the_tail(&self) {
        for seq in 4..=6 {
            self.delete_entry(seq).await;
        }
        self.delete_checkpoint(2).await;
    }

    async fn delete_checkpoint(&self, number: u64) {
        self.client
            .delete_item()
            .table_name(&self.checkpoints)
            .key("pk", AttributeValue::S("CKPT#acme".into()))
            .key("number", AttributeValue::N(number.to_string()))
            .send()
            .await
            .unwrap();
    }

    async fn checkpoint_items(&self) -> Vec<HashMap<String, AttributeValue>> {
        let out =
            self.client.scan().table_name(&self.checkpoints).consistent_read(true).send().await.unwrap();
        out.items().to_vec()
    }

    async fn fresh_verify(&self) -> Result<(), ChainBreak> {
        match self.trail().verify("acme").await {
            Ok(_) => Ok(()),
            Err(AuditError::Broken { tenant, broken }) => {
                assert_eq!(tenant, "acme");
                Err(broken)
            }
            Err(other) => panic!("verify failed otherwise: {other}"),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// An entry of now (plus `i` ms, so entries keep their order).
fn entry(tenant: &str, i: u64) -> AuditEntry {
    AuditEntry::new(tenant, "alice", "records.read", format!("record/{i}"), Outcome::Success)
        .at(now_ms() + i)
        .request_id(format!("req-{i}"))
}

#[tokio::test]
async fn a_missing_tail_is_named_by_a_fresh_reader() {
    let env = env().await;
    env.six_entries().await;
    env.delete_entry(6).await;
    assert_eq!(env.fresh_verify().await, Err(ChainBreak::MissingTail { seq: 6 }));
    env.delete_entry(5).await;
    env.delete_entry(4).await;
    assert_eq!(env.fresh_verify().await, Err(ChainBreak::MissingTail { seq: 6 }));
    // A fresh writer refuses to extend the cut chain rather than hide the cut under new entries.
    let writer = env.trail();
    writer.try_append(entry("acme", 99)).unwrap();
    assert!(matches!(
        writer.flush().await,
        Err(AuditError::Broken { broken: ChainBreak::MissingTail { seq: 6 }, .. })
    ));
}

#[tokio::test]
async fn a_deleted_prefix_is_named_even_with_its_checkpoints_gone() {
    let env = env().await;
    env.six_entries().await;
    for seq in 1..=3 {
        env.delete_entry(seq).await;
    }
    assert_eq!(env.fresh_verify().await, Err(ChainBreak::DeletedPrefix { seq: 3 }));
    // The first checkpoint deleted too: the second still carries its signed predecessor.
    env.delete_checkpoint(1).await;
    assert_eq!(env.fresh_verify().await, Err(ChainBreak::DeletedPrefix { seq: 3 }));
}

#[tokio::test]
async fn a_deleted_chain_is_named() {
    let env = env().await;
    env.six_entries().await;
    for seq in 1..=6 {
        env.delete_entry(seq).await;
    }
    assert_eq!(env.fresh_verify().await, Err(ChainBreak::DeletedChain { seq: 6 }));
}

#[tokio::test]
async fn a_rewritten_and_rehashed_chain_is_named() {
    let env = env().await;
    env.six_entries().await;
    // Someone with table access changes who read record 4 and re-hashes 4..6, so the chain
    // alone is consistent again.
    let stored = env.trail().query(AuditQuery::tenant("acme")).await.unwrap();
    let mut prev = stored[2].hash;
    for old in &stored[3..] {
        let mut e = old.entry.clone();
        if old.seq == 4 {
            e.actor = "mallory".into();
        }
        let resealed = SealedEntry::seal(old.seq, e, prev);
        prev = resealed.hash;
        let hex = |h: &[u8; 32]| h.iter().map(|b| format!("{b:02x}")).collect::<String>();
        env.client
            .update_item()
            .table_name(&env.entries)
            .key("pk", AttributeValue::S("AUDIT#acme".into()))
            .key("seq", AttributeValue::N(old.seq.to_string()))
            .update_expression("SET actor = :a, #h = :h, prev_hash = :p")
            .expression_attribute_names("#h", "hash")
            .expression_attribute_values(":a", AttributeValue::S(resealed.entry.actor.clone()))
            .expression_attribute_values(":h", AttributeValue::S(hex(&resealed.hash)))
            .expression_attribute_values(":p", AttributeValue::S(hex(&resealed.prev_hash)))
            .send()
            .await
            .unwrap();
    }
    let unanchored = AuditTrail::builder().client(env.client.clone()).table(&env.entries).build().unwrap();
    assert!(unanchored.verify("acme").await.is_ok(), "the re-hashed chain is self-consistent");
    assert_eq!(env.fresh_verify().await, Err(ChainBreak::Rewritten { seq: 6 }));
}

#[tokio::test]
async fn forged_and_altered_checkpoints_are_named() {
    let env = env().await;
    env.six_entries().await;
    // An attacker signs a checkpoint of a truncated head with a key of their own.
    let items = env.checkpoint_items().await;
    let second = items.iter().find(|i| i["number"].as_n().unwrap() == "2").unwrap().clone();
    let mut forged = second.clone();
    forged.insert("number".into(), AttributeValue::N("3".into()));
    forged.insert("signature".into(), AttributeValue::S("00".repeat(32)));
    env.client.put_item().table_name(&env.checkpoints).set_item(Some(forged)).send().await.unwrap();
    assert_eq!(env.fresh_verify().await, Err(ChainBreak::ForgedCheckpoint { number: 3 }));
    env.delete_checkpoint(3).await;
    env.fresh_verify().await.unwrap();

    // Or moves a real checkpoint back to a shorter head.
    let mut altered = second;
    altered.insert("seq".into(), AttributeValue::N("5".into()));
    env.client.put_item().table_name(&env.checkpoints).set_item(Some(altered)).send().await.unwrap();
    assert_eq!(env.fresh_verify().await, Err(ChainBreak::ForgedCheckpoint { number: 2 }));

    // A verifier with another key trusts none of them.
    let stranger = env.trail_with(&env.client, [9; 32]);
    assert!(matches!(
        stranger.verify("acme").await,
        Err(AuditError::Broken { broken: ChainBreak::ForgedCheckpoint { number: 1 }, .. })
    ));
}

#[tokio::test]
async fn a_tail_deleted_with_its_checkpoints_is_caught_by_an_anchor_kept_elsewhere() {
    let env = env().await;
    env.six_entries().await;
    let anchor: Checkpoint = env.trail().verify("acme").await.unwrap().latest_checkpoint.unwrap();
    assert_eq!((anchor.number, anchor.seq), (2, 6));
    env.cut_the_tail().await;
    // The tables alone now hold an older valid state (the documented limit) ...
    env.fresh_verify().await.unwrap();
    // ... which the anchor kept outside them names.
    assert!(matches!(
        env.trail().verify_against("acme", &anchor).await,
        Err(AuditError::Broken { broken: ChainBreak::MissingTail { seq: 6 }, .. })
    ));
    let mut tampered = anchor.clone();
    tampered.seq = 3;
    assert!(matches!(
        env.trail().verify_against("acme", &tampered).await,
        Err(AuditError::Broken { broken: ChainBreak::ForgedCheckpoint { number: 2 }, .. })
    ));
}

/// After the tail and its checkpoint are cut, the service's next write grows the chain
/// again: a new checkpoint of the cut one's number, signed with the key and linked to the
/// last one left. The anchor kept elsewhere is not outvoted by it, nor by a later one.
#[tokio::test]
async fn an_anchor_is_not_outvoted_by_a_regrown_checkpoint_of_its_number() {
    let env = env().await;
    env.six_entries().await;
    let anchor: Checkpoint = env.trail().verify("acme").await.unwrap().latest_checkpoint.unwrap();
    assert_eq!((anchor.number, anchor.seq), (2, 6));
    env.cut_the_tail().await;
    let service = env.trail();
    service.try_append(entry("acme", 10)).unwrap();
    service.flush().await.unwrap();
    let regrown = env.trail().verify("acme").await.unwrap();
    assert_eq!((regrown.head.0, regrown.latest_checkpoint.as_ref().map(|c| c.number)), (4, Some(2)));
    assert!(
        matches!(
            env.trail().verify_against("acme", &anchor).await,
            Err(AuditError::Broken { broken: ChainBreak::ForgedCheckpoint { number: 2 }, .. })
        ),
        "a regrown checkpoint 2 stood in for the anchor"
    );
    // Grown further, past the anchor's seq and number.
    for i in 0..3 {
        service.try_append(entry("acme", 20 + i)).unwrap();
        service.flush().await.unwrap();
    }
    assert_eq!(env.trail().verify("acme").await.unwrap().head.0, 7);
    assert!(matches!(
        env.trail().verify_against("acme", &anchor).await,
        Err(AuditError::Broken { broken: ChainBreak::ForgedCheckpoint { number: 2 }, .. })
    ));
}

#[tokio::test]
async fn expired_entries_are_not_called_deleted() {
    let env = env().await;
    let retention = Duration::from_secs(30 * 24 * 3600);
    let trail = AuditTrail::builder()
        .client(env.client.clone())
        .table(&env.entries)
        .checkpoint_key(CheckpointKey::new(KEY).unwrap())
        .checkpoint_table(&env.checkpoints)
        .retention(retention)
        .build()
        .unwrap();
    let old = now_ms() - 40 * 24 * 3600 * 1000;
    for i in 0..3 {
        trail.try_append(entry("acme", i).at(old + i)).unwrap();
    }
    trail.flush().await.unwrap();
    for i in 3..6 {
        trail.try_append(entry("acme", i)).unwrap();
    }
    trail.flush().await.unwrap();
    // TTL removed the old entries and their checkpoint: not tampering.
    for seq in 1..=3 {
        env.delete_entry(seq).await;
    }
    env.delete_checkpoint(1).await;
    let fresh = AuditTrail::builder()
        .client(env.client.clone())
        .table(&env.entries)
        .checkpoint_key(CheckpointKey::new(KEY).unwrap())
        .checkpoint_table(&env.checkpoints)
        .retention(retention)
        .build()
        .unwrap();
    let verified = fresh.verify("acme").await.unwrap();
    assert_eq!((verified.first_seq, verified.head.0, verified.checkpoints), (4, 6, 1));
    // The recent prefix is still guarded.
    env.delete_entry(4).await;
    assert!(matches!(fresh.verify("acme").await, Err(AuditError::Broken { .. })));
}

#[tokio::test]
async fn a_write_whose_answer_was_lost_is_stored_once() {
    let env = env().await;
    let proxy = AwsFaultProxy::start(&env.endpoint).await.expect("the fault proxy");
    let client =
        lift_harness::dynamodb::client_for(&proxy.endpoint(), &lift_harness::dynamodb::default_region());
    let trail = env.trail_with(&client, KEY);

    // DynamoDB stores the entry; the answer is lost once, and the SDK's own retry meets
    // its own item (a failed condition).
    proxy.lose_answers("PutItem", DynamoDbFault::InternalServerError, 1);
    trail.try_append(entry("acme", 1)).unwrap();
    trail.flush().await.expect("the retry finds its own entry");

    // Every attempt's answer lost: the flush fails, and the next one finds the entry.
    proxy.lose_answers("PutItem", DynamoDbFault::InternalServerError, 10);
    trail.try_append(entry("acme", 2)).unwrap();
    assert!(trail.flush().await.is_err());
    assert_eq!(trail.pending(), 1, "nothing is lost");
    proxy.lose_answers("PutItem", DynamoDbFault::InternalServerError, 0);
    trail.flush().await.unwrap();
    assert_eq!(trail.pending(), 0);

    let stored = env.trail().query(AuditQuery::tenant("acme")).await.unwrap();
    let resources: Vec<_> = stored.iter().map(|s| s.entry.resource.as_str()).collect();
    assert_eq!(resources, ["record/1", "record/2"], "no entry was sealed twice");
    let verified = env.trail().verify("acme").await.unwrap();
    assert_eq!((verified.head.0, verified.checkpoints), (2, 2));
}

#[tokio::test]
async fn a_checkpoint_key_derived_through_kms_signs_alike_after_reload() {
    let env = env().await;
    let mocks = AwsMocks::start().await.expect("the AWS mocks");
    let kms = lift::security::protection::AwsKmsClient::endpoint(&mocks.kms.uri(), mocks.region())
        .expect("a kms client");
    let (key, blob) = CheckpointKey::generate_with_kms(&kms, "alias/lift-default").await.unwrap();
    assert!(!blob.is_empty());
    let writer = AuditTrail::builder()
        .client(env.client.clone())
        .table(&env.entries)
        .checkpoint_key(key)
        .checkpoint_table(&env.checkpoints)
        .build()
        .unwrap();
    writer.try_append(entry("acme", 1)).unwrap();
    writer.flush().await.unwrap();
    // A verifier elsewhere loads the key from the blob through KMS.
    let reloaded = CheckpointKey::from_kms_blob(&kms, &blob).await.unwrap();
    let verifier = AuditTrail::builder()
        .client(env.client.clone())
        .table(&env.entries)
        .checkpoint_key(reloaded)
        .checkpoint_table(&env.checkpoints)
        .build()
        .unwrap();
    assert_eq!(verifier.verify("acme").await.unwrap().checkpoints, 1);
    let mut corrupt = blob.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 1;
    assert!(CheckpointKey::from_kms_blob(&kms, &corrupt).await.is_err(), "a corrupt blob is refused");
}

#[tokio::test]
async fn two_writers_of_one_tenant_keep_one_chain_of_checkpoints() {
    let env = env().await;
    let (a, b) = (env.trail(), env.trail());
    for round in 0..4u64 {
        let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        first.try_append(entry("acme", round * 10)).unwrap();
        second.try_append(entry("acme", round * 10 + 1)).unwrap();
        // Each writer flushes on a stale view of the head and of the newest checkpoint.
        first.flush().await.unwrap();
        second.flush().await.unwrap();
    }
    let verified = env.trail().verify("acme").await.unwrap();
    assert_eq!(verified.head.0, 8, "one chain, no entry lost or sealed twice");
    assert!(verified.checkpoints >= 2, "{verified:?}");
    let latest = verified.latest_checkpoint.unwrap();
    assert_eq!((latest.seq, latest.head), verified.head, "the newest checkpoint certifies the head");
    let numbers: Vec<u64> = {
        let mut n: Vec<u64> = env
            .checkpoint_items()
            .await
            .iter()
            .map(|i| i["number"].as_n().unwrap().parse().unwrap())
            .collect();
        n.sort_unstable();
        n
    };
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>(), "checkpoints numbered without a gap");
}

impl Env {
    /// A trail with a heartbeat every `every`.
    fn beating(&self, client: &Client, every: Duration) -> AuditTrail {
        AuditTrail::builder()
            .client(client.clone())
            .table(&self.entries)
            .checkpoint_key(CheckpointKey::new(KEY).unwrap())
            .checkpoint_table(&self.checkpoints)
            .checkpoint_every(every)
            .build()
            .expect("a valid trail")
    }

    /// The stored checkpoints of `acme`, by number: (number, seq).
    async fn checkpoints_of_acme(&self) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = self
            .checkpoint_items()
            .await
            .iter()
            .filter(|i| i["pk"].as_s().unwrap() == "CKPT#acme")
            .map(|i| {
                (i["number"].as_n().unwrap().parse().unwrap(), i["seq"].as_n().unwrap().parse().unwrap())
            })
            .collect();
        out.sort();
        out
    }
}

#[tokio::test]
async fn a_heartbeat_recertifies_an_idle_chain_once_its_interval_passed() {
    let env = env().await;
    // Not due within the hour: a flush's own checkpoint counts as the last certification.
    let idle = env.beating(&env.client, Duration::from_secs(3600));
    idle.try_append(entry("acme", 1)).unwrap();
    idle.flush().await.unwrap();
    assert_eq!(idle.heartbeat().await.unwrap(), 0);
    assert_eq!(env.checkpoints_of_acme().await, [(1, 1)]);

    // Due after 30 ms: the same head, certified again under the next number.
    let beating = env.beating(&env.client, Duration::from_millis(30));
    beating.try_append(entry("acme", 2)).unwrap();
    beating.flush().await.unwrap();
    assert_eq!(env.checkpoints_of_acme().await, [(1, 1), (2, 2)]);
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert_eq!(beating.heartbeat().await.unwrap(), 1);
    assert_eq!(env.checkpoints_of_acme().await, [(1, 1), (2, 2), (3, 2)]);
    let latest = env.trail().verify("acme").await.unwrap().latest_checkpoint.unwrap();
    assert_eq!((latest.number, latest.seq, latest.prev_seq), (3, 2, 2));
    // A flush after the interval writes its heartbeats too; entries after a heartbeat are
    // checkpointed as usual, and a fresh reader still finds every tamper.
    tokio::time::sleep(Duration::from_millis(40)).await;
    beating.flush().await.unwrap();
    assert_eq!(env.checkpoints_of_acme().await.last(), Some(&(4, 2)));
    beating.try_append(entry("acme", 3)).unwrap();
    beating.flush().await.unwrap();
    assert_eq!(env.checkpoints_of_acme().await.last().map(|c| c.1), Some(3));
    env.fresh_verify().await.unwrap();
    env.delete_entry(3).await;
    assert_eq!(env.fresh_verify().await, Err(ChainBreak::MissingTail { seq: 3 }));
}

#[tokio::test]
async fn the_spawned_heartbeat_beats_until_the_trail_is_dropped() {
    let env = env().await;
    let trail = env.beating(&env.client, Duration::from_millis(20));
    trail.try_append(entry("acme", 1)).unwrap();
    trail.flush().await.unwrap();
    let handle = trail.spawn_heartbeat().expect("an interval is set");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while env.checkpoints_of_acme().await.len() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no heartbeat checkpoint was written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(env.checkpoints_of_acme().await.iter().all(|(_, seq)| *seq == 1), "the same head, re-dated");
    drop(trail);
    tokio::time::timeout(Duration::from_secs(20), handle).await.expect("the task ends").unwrap();
    env.fresh_verify().await.unwrap();
    // Without an interval there is nothing to spawn.
    assert!(env.trail().spawn_heartbeat().is_none());
}

#[tokio::test]
async fn a_checkpoint_reads_no_entry_the_trail_stored_itself() {
    let env = env().await;
    let proxy = AwsFaultProxy::start(&env.endpoint).await.expect("the fault proxy");
    let client =
        lift_harness::dynamodb::client_for(&proxy.endpoint(), &lift_harness::dynamodb::default_region());
    let trail = env.trail_with(&client, KEY);
    for batch in 0..3u64 {
        for i in 0..3u64 {
            trail.try_append(entry("acme", batch * 3 + i)).unwrap();
        }
        trail.flush().await.unwrap();
    }
    assert_eq!(env.checkpoints_of_acme().await.len(), 3);
    assert_eq!(proxy.stats("GetItem").forwarded, 0, "three checkpoints, no entry read back");
    env.fresh_verify().await.unwrap();
    // Another writer's entries come first: that time is read back (and checked to link).
    let other = env.trail();
    other.try_append(entry("acme", 10)).unwrap();
    other.flush().await.unwrap();
    trail.try_append(entry("acme", 11)).unwrap();
    trail.flush().await.unwrap();
    assert_eq!(env.checkpoints_of_acme().await.last(), Some(&(5, 11)));
    env.fresh_verify().await.unwrap();
}

#[test]
fn the_heartbeat_interval_comes_from_the_builder_or_the_environment() {
    let client = || {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        Client::from_conf(config)
    };
    let key = || CheckpointKey::new(KEY).unwrap();
    let env = |v: &'static str| {
        move |name: &str| (name == lift::security::audit::CHECKPOINT_INTERVAL_ENV).then(|| v.to_owned())
    };
    let built =
        |b: lift::security::audit::AuditTrailBuilder| b.client(client()).checkpoint_key(key()).build();
    assert!(built(AuditTrail::builder().checkpoint_every(Duration::from_secs(60))).is_ok());
    assert!(built(lift::security::audit::AuditTrailBuilder::from_env_vars(env("60000"))).is_ok());
    let err = built(lift::security::audit::AuditTrailBuilder::from_env_vars(env("1 minute"))).unwrap_err();
    assert!(err.to_string().contains("LIFT_AUDIT_CHECKPOINT_INTERVAL_MS"), "{err}");
    let err = built(AuditTrail::builder().checkpoint_every(Duration::ZERO)).unwrap_err();
    assert!(err.to_string().contains("positive"), "{err}");
    let unsigned = AuditTrail::builder().client(client()).checkpoint_every(Duration::from_secs(1)).build();
    assert!(unsigned.unwrap_err().to_string().contains("needs a checkpoint key"));
}
