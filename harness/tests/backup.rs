//! `lift::disaster::backup` on a real DynamoDB Local (and moto's S3 server): a backup, a
//! dropped table and a restore lose no acknowledged write; damaged backups are refused and
//! named; backups changed by someone without the key (a manifest or a chunk index rewritten
//! with its hashes recomputed, copied from another backup, unsigned, or checked with
//! another key) are refused before anything is created; restores never write over a table;
//! a restore to a moment leaves out every later write kind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use lift::disaster::backup::{
    BackupError, BackupKey, BackupTarget, Manifest, PointInTime, Restore, SignatureProblem, StreamArchive,
    TableBackup,
};
use lift::disaster::{Region, RegionConfig, RegionSet};
use lift::store::{KeyAttribute, StreamView, TableDef};
use lift_harness::dynamodb::DynamoDbLocal;

/// A table with a stream, its region, a fresh directory target, and the key that signs.
struct Fixture {
    client: Client,
    region: Region,
    table: String,
    dir: PathBuf,
    key: BackupKey,
}

/// The key the fixtures sign with; [`other_key`] is someone else's.
fn key() -> BackupKey {
    BackupKey::from_secret("the backup tests' signing key, 32+ bytes").unwrap()
}

fn other_key() -> BackupKey {
    BackupKey::from_secret("another team's backup key, also 32+ bytes").unwrap()
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fixture() -> Fixture {
    let local = DynamoDbLocal::shared().await.unwrap_or_else(|e| panic!("no dynamodb local: {e}"));
    let def = TableDef::new("backup", KeyAttribute::string("pk")).with_stream(StreamView::NewAndOldImages);
    let table = local.create_table(&def).await.unwrap();
    let region = RegionSet::builder()
        .region(RegionConfig::new("us-east-1").dynamodb_endpoint(local.endpoint()))
        .build()
        .unwrap()
        .primary()
        .clone();
    let dir = std::env::temp_dir().join(format!("lift-backup-test-{}", uuid::Uuid::new_v4().simple()));
    Fixture { client: local.client().await, region, table, dir, key: key() }
}

impl Fixture {
    fn target(&self) -> BackupTarget {
        BackupTarget::dir(&self.dir)
    }

    async fn put(&self, pk: &str, value: &str) {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(pk.into()))
            .item("value", AttributeValue::S(value.into()))
            .item("n", AttributeValue::N("42".into()))
            .item("tags", AttributeValue::Ss(vec!["a".into(), "b".into()]))
            .send()
            .await
            .unwrap();
    }

    async fn delete(&self, pk: &str) {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk.into()))
            .send()
            .await
            .unwrap();
    }

    async fn backup(&self, segments: u32) -> Manifest {
        TableBackup::builder(self.client.clone(), &self.table)
            .target(self.target())
            .key(self.key.clone())
            .segments(segments)
            .build()
            .unwrap()
            .run()
            .await
            .unwrap()
    }

    /// A restore of the fixture's table from its target, verified with the fixture's key.
    fn restore(&self, into: &str) -> lift::disaster::backup::RestoreBuilder {
        self.restore_from(self.target(), into)
    }

    /// A restore of the fixture's table from `target` (one shared with another table's),
    /// verified with the fixture's key.
    fn restore_from(&self, target: BackupTarget, into: &str) -> lift::disaster::backup::RestoreBuilder {
        Restore::builder(self.client.clone(), target, into).source_table(&self.table).key(self.key.clone())
    }

    /// The stream archive of the fixture's table into its target, signed with its key.
    fn archive(&self) -> lift::disaster::backup::StreamArchiveBuilder {
        self.archive_to(self.target())
    }

    /// The stream archive of the fixture's table into `target` (one shared with another
    /// table's), signed with its key.
    fn archive_to(&self, target: BackupTarget) -> lift::disaster::backup::StreamArchiveBuilder {
        StreamArchive::builder(self.region.clone(), &self.table).target(target).key(self.key.clone())
    }

    fn segment_path(&self, manifest: &Manifest, index: usize) -> PathBuf {
        self.dir.join("backups").join(&manifest.backup_id).join(&manifest.segments[index].file)
    }

    fn manifest_path(&self, manifest: &Manifest) -> PathBuf {
        self.dir.join("backups").join(&manifest.backup_id).join("manifest.json")
    }
}

/// pk → value of every item.
async fn contents(client: &Client, table: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items() {
            let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            out.insert(text("pk"), text("value"));
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return out,
        }
    }
}

async fn exists(client: &Client, table: &str) -> bool {
    client.describe_table().table_name(table).send().await.is_ok()
}

fn restored_name(f: &Fixture) -> String {
    format!("{}-restored-{}", f.table, &uuid::Uuid::new_v4().simple().to_string()[..6])
}

/// Edits a manifest and signs it again with `key`, as its backup would have: the checks
/// that follow the signature's (hashes, counts, definition) are tested on their own.
fn rewrite_manifest(path: &Path, key: &BackupKey, edit: impl FnOnce(&mut Manifest)) {
    let mut manifest: Manifest = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut manifest);
    manifest.sign(key);
    std::fs::write(path, serde_json::to_vec(&manifest).unwrap()).unwrap();
}

/// Edits a manifest as someone with write access to the target but without the key would:
/// the signature is left as it was (or removed by `edit`).
fn tamper_manifest(path: &Path, edit: impl FnOnce(&mut Manifest)) {
    let mut manifest: Manifest = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(path, serde_json::to_vec_pretty(&manifest).unwrap()).unwrap();
}

#[tokio::test]
async fn backup_drop_restore_loses_no_acknowledged_write() {
    let f = fixture().await;
    let archive = f.archive().start().await.unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..60 {
        f.put(&format!("item-{i:03}"), &format!("v1-{i}")).await;
        expected.insert(format!("item-{i:03}"), format!("v1-{i}"));
    }
    let manifest = f.backup(4).await;
    assert_eq!(manifest.item_count, 60);
    assert_eq!(manifest.segments.len(), 4);
    assert!(manifest.started_at_ms <= manifest.ended_at_ms);
    assert_eq!(manifest.definition.key_schema, [("pk".to_owned(), "HASH".to_owned())]);
    // After the backup, every write kind: new items, overwrites, deletes, a delete then a
    // put again of the same item.
    for i in 0..10 {
        f.put(&format!("late-{i}"), "new").await;
        expected.insert(format!("late-{i}"), "new".to_owned());
        f.put(&format!("item-{i:03}"), "v2").await;
        expected.insert(format!("item-{i:03}"), "v2".to_owned());
        f.delete(&format!("item-{:03}", 50 + i)).await;
        expected.remove(&format!("item-{:03}", 50 + i));
    }
    f.delete("item-020").await;
    f.put("item-020", "reborn").await;
    expected.insert("item-020".to_owned(), "reborn".to_owned());
    archive.caught_up().await.unwrap();

    f.client.delete_table().table_name(&f.table).send().await.unwrap();
    let stats = archive.stop().await.unwrap();
    assert!(stats.records >= 91, "{stats:?}");

    let into = restored_name(&f);
    let report = f.restore(&into).build().unwrap().run().await.unwrap();
    assert_eq!(report.backup_id, manifest.backup_id);
    assert!(report.authenticated, "the manifest and every chunk index used are signed");
    assert!(report.chunks_read > 0, "{report:?}");
    assert!(report.not_restored.is_empty(), "{:?}", report.not_restored);
    assert_eq!(report.items_from_backup, 60);
    assert_eq!(
        contents(&f.client, &into).await,
        expected,
        "the restored table differs from what was acknowledged"
    );
    // Attribute types survive (number, string set).
    let item = f
        .client
        .get_item()
        .table_name(&into)
        .key("pk", AttributeValue::S("item-030".into()))
        .send()
        .await
        .unwrap();
    let item = item.item().unwrap();
    assert_eq!(item["n"], AttributeValue::N("42".into()));
    assert_eq!(item["tags"], AttributeValue::Ss(vec!["a".into(), "b".into()]));

    // Without the archive, the changes after the backup are gone: the replay is what keeps them.
    let bare = restored_name(&f);
    f.restore(&bare).replay_archive(false).build().unwrap().run().await.unwrap();
    let restored = contents(&f.client, &bare).await;
    assert_eq!(restored.len(), 60);
    assert_eq!(restored["item-000"], "v1-0");
    assert!(!restored.contains_key("late-0"));
}

#[tokio::test]
async fn a_flipped_byte_in_a_segment_is_named_and_nothing_is_created() {
    let f = fixture().await;
    for i in 0..40 {
        f.put(&format!("p-{i}"), "x").await;
    }
    let manifest = f.backup(3).await;
    let path = f.segment_path(&manifest, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let into = restored_name(&f);
    let err = f.restore(&into).build().unwrap().run().await.unwrap_err();
    match &err {
        BackupError::SegmentCorrupt { segment, backup, .. } => {
            assert_eq!(segment, "segment-00001.jsonl.gz");
            assert_eq!(backup, &manifest.backup_id);
        }
        other => panic!("expected a corrupt segment, got {other:?}"),
    }
    assert!(err.to_string().contains("segment-00001.jsonl.gz"), "{err}");
    assert!(!exists(&f.client, &into).await, "a refused restore created the table");
}

#[tokio::test]
async fn truncated_and_missing_segments_and_wrong_counts_are_refused() {
    let f = fixture().await;
    for i in 0..40 {
        f.put(&format!("t-{i}"), "x").await;
    }
    let manifest = f.backup(2).await;
    let into = restored_name(&f);
    let attempt = || async { f.restore(&into).build().unwrap().run().await.unwrap_err() };

    // Truncated, with the manifest's hash updated to match: the decoder must catch it.
    let path = f.segment_path(&manifest, 0);
    let original = std::fs::read(&path).unwrap();
    let truncated = original[..original.len() - 12].to_vec();
    std::fs::write(&path, &truncated).unwrap();
    let sha = lift_sha256(&truncated);
    rewrite_manifest(&f.manifest_path(&manifest), &f.key, |m| m.segments[0].sha256 = sha);
    match attempt().await {
        BackupError::SegmentUnreadable { segment, .. } => assert_eq!(segment, "segment-00000.jsonl.gz"),
        BackupError::CountMismatch { what, .. } => assert_eq!(what, "segment segment-00000.jsonl.gz"),
        other => panic!("a truncated segment was not refused: {other:?}"),
    }
    std::fs::write(&path, &original).unwrap();
    rewrite_manifest(&f.manifest_path(&manifest), &f.key, |m| {
        m.segments[0].sha256 = manifest.segments[0].sha256.clone()
    });

    // A segment's count off by one.
    rewrite_manifest(&f.manifest_path(&manifest), &f.key, |m| m.segments[1].items += 1);
    match attempt().await {
        BackupError::CountMismatch { what, expected, found, .. } => {
            assert_eq!(what, "segment segment-00001.jsonl.gz");
            assert_eq!(expected, found + 1);
        }
        other => panic!("a wrong segment count was not refused: {other:?}"),
    }
    rewrite_manifest(&f.manifest_path(&manifest), &f.key, |m| m.segments[1].items -= 1);

    // The manifest's total off by one.
    rewrite_manifest(&f.manifest_path(&manifest), &f.key, |m| m.item_count += 1);
    match attempt().await {
        BackupError::CountMismatch { what, expected: 41, found: 40, .. } => assert_eq!(what, "the backup"),
        other => panic!("a wrong total was not refused: {other:?}"),
    }
    rewrite_manifest(&f.manifest_path(&manifest), &f.key, |m| m.item_count -= 1);

    // A segment gone.
    std::fs::remove_file(f.segment_path(&manifest, 1)).unwrap();
    match attempt().await {
        BackupError::SegmentMissing { segment, .. } => assert_eq!(segment, "segment-00001.jsonl.gz"),
        other => panic!("a missing segment was not refused: {other:?}"),
    }
    assert!(!exists(&f.client, &into).await);
}

fn lift_sha256(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn a_restore_never_writes_over_an_existing_table() {
    let f = fixture().await;
    f.put("a", "kept").await;
    f.backup(1).await;
    f.put("a", "changed after the backup").await;
    f.put("b", "new").await;
    let err = f.restore(&f.table).build().unwrap().run().await.unwrap_err();
    assert!(matches!(&err, BackupError::TableExists { table } if table == &f.table), "{err:?}");
    assert!(err.to_string().contains("never writes over"), "{err}");
    let held = contents(&f.client, &f.table).await;
    assert_eq!(held["a"], "changed after the backup", "the existing table was written to");
    assert_eq!(held.len(), 2);
}

#[tokio::test]
async fn a_restore_to_a_moment_leaves_out_every_later_write() {
    let f = fixture().await;
    let archive = f.archive().start().await.unwrap();
    for pk in ["keep", "overwrite", "delete", "delete-then-put"] {
        f.put(pk, "before").await;
    }
    f.backup(2).await;
    // Between the backup and the moment: one change of each kind, kept.
    f.put("after-backup", "before").await;
    f.put("keep", "before-2").await;
    archive.caught_up().await.unwrap();
    let moment = SystemTime::now();
    // A read round after the moment, so later changes are surely placed after it.
    archive.caught_up().await.unwrap();
    f.put("overwrite", "after").await;
    f.delete("delete").await;
    f.delete("delete-then-put").await;
    f.put("delete-then-put", "after").await;
    f.put("born-later", "after").await;
    archive.caught_up().await.unwrap();
    archive.stop().await.unwrap();

    let into = restored_name(&f);
    let report = f.restore(&into).until(PointInTime::Moment(moment)).build().unwrap().run().await.unwrap();
    let expected: BTreeMap<String, String> = [
        ("keep", "before-2"),
        ("overwrite", "before"),
        ("delete", "before"),
        ("delete-then-put", "before"),
        ("after-backup", "before"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(contents(&f.client, &into).await, expected);
    assert_eq!(report.changes_after_moment, 5, "{report:?}");
    assert_eq!(report.changes_near_moment, 0, "{report:?}");
    assert!(report.not_restored.is_empty());

    // The latest state has every later write.
    let latest = restored_name(&f);
    f.restore(&latest).build().unwrap().run().await.unwrap();
    let held = contents(&f.client, &latest).await;
    assert_eq!(held["overwrite"], "after");
    assert!(!held.contains_key("delete"));
    assert_eq!(held["delete-then-put"], "after");
    assert_eq!(held["born-later"], "after");

    // A moment before the backup ended has no backup to start from.
    let early =
        f.restore(&restored_name(&f)).until(PointInTime::Moment(SystemTime::UNIX_EPOCH)).build().unwrap();
    assert!(matches!(early.run().await.unwrap_err(), BackupError::NoBackup { .. }));
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn s3_round_trip_on_moto() {
    let f = fixture().await;
    let moto = lift_harness::backup::MotoS3::start().await.unwrap_or_else(|e| panic!("{e}"));
    let s3 = moto.client().await;
    s3.create_bucket().bucket("lift-backups").send().await.unwrap();
    let target = BackupTarget::s3(s3.clone(), "lift-backups", "orders/prod");
    let archive = StreamArchive::builder(f.region.clone(), &f.table)
        .target(target.clone())
        .key(f.key.clone())
        .start()
        .await
        .unwrap();
    for i in 0..30 {
        f.put(&format!("s3-{i}"), "x").await;
    }
    let manifest = TableBackup::builder(f.client.clone(), &f.table)
        .target(target.clone())
        .key(f.key.clone())
        .segments(3)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    f.put("s3-after", "y").await;
    f.delete("s3-0").await;
    archive.caught_up().await.unwrap();
    archive.stop().await.unwrap();
    let listed = s3.list_objects_v2().bucket("lift-backups").prefix("orders/prod/").send().await.unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(
        keys.contains(&format!("orders/prod/backups/{}/manifest.json", manifest.backup_id).as_str()),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("orders/prod/stream/chunk-")), "{keys:?}");

    let into = restored_name(&f);
    let report = Restore::builder(f.client.clone(), target.clone(), &into)
        .source_table(&f.table)
        .key(f.key.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(report.not_restored.is_empty());
    let held = contents(&f.client, &into).await;
    assert_eq!(held.len(), 30);
    assert_eq!(held.get("s3-after").map(String::as_str), Some("y"));
    assert!(!held.contains_key("s3-0"));

    // A changed object in S3 is named as well.
    let key = format!("orders/prod/backups/{}/segment-00002.jsonl.gz", manifest.backup_id);
    s3.put_object().bucket("lift-backups").key(&key).body(b"tampered".to_vec().into()).send().await.unwrap();
    let err = Restore::builder(f.client.clone(), target, restored_name(&f))
        .source_table(&f.table)
        .key(f.key.clone())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackupError::SegmentCorrupt { segment, .. } if segment == "segment-00002.jsonl.gz"),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_cli_backs_up_and_restores_and_refuses_an_existing_table() {
    let f = fixture().await;
    for i in 0..12 {
        f.put(&format!("cli-{i}"), "x").await;
    }
    let endpoint = DynamoDbLocal::shared().await.unwrap().endpoint().to_owned();
    const SECRET: &str = "the cli test's backup key, 32 bytes or more";
    let with_key = |key: Option<&str>, args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_lift-harness"));
        command.args(args).env("LIFT_DYNAMODB_ENDPOINT", &endpoint).env_remove("LIFT_BACKUP_KEY");
        if let Some(key) = key {
            command.env("LIFT_BACKUP_KEY", key);
        }
        command.output().unwrap()
    };
    let cli = |args: &[&str]| with_key(Some(SECRET), args);
    let dir = f.dir.to_str().unwrap();
    // No key: refused before anything is written, with what to set.
    let out = with_key(None, &["backup", "--table", &f.table, "--to", dir]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no backup key") && stderr.contains("LIFT_BACKUP_KEY"), "{stderr}");
    assert!(!f.dir.join("backups").exists(), "a backup without a key wrote something");
    let out = with_key(Some("too short"), &["backup", "--table", &f.table, "--to", dir]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("at least 32 bytes") && !stderr.contains("too short"),
        "{stderr}"
    );

    let out = cli(&["backup", "--table", &f.table, "--to", dir, "--segments", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("12 items in 2 segments"));
    // Another key, or none, is refused; the key in a file is the same key.
    let wrong = with_key(
        Some("somebody else's key, 32 bytes or more"),
        &["restore", "--source-table", &f.table, "--from", dir, "--into", "x-new", "--no-replay"],
    );
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success() && stderr.contains("not signed by the backup key"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    let none = with_key(
        None,
        &["restore", "--source-table", &f.table, "--from", dir, "--into", "x-new", "--no-replay"],
    );
    assert!(String::from_utf8_lossy(&none.stderr).contains("no backup key"));
    assert!(!exists(&f.client, "x-new").await);
    // The table the backup was taken of is stated, never taken from the backup itself:
    // without it the restore is refused before anything is read; another table's name is
    // refused once the manifest's signed table is known, before anything is created.
    let unnamed = cli(&["restore", "--from", dir, "--into", "x-new", "--no-replay"]);
    let stderr = String::from_utf8_lossy(&unnamed.stderr);
    assert!(!unnamed.status.success() && stderr.contains("--source-table"), "{stderr}");
    let other =
        cli(&["restore", "--source-table", "patients", "--from", dir, "--into", "x-new", "--no-replay"]);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("is a backup of table {}, not of patients", f.table)), "{stderr}");
    assert!(!exists(&f.client, "x-new").await);
    let into = restored_name(&f);
    // No stream archive ran: a restore that replays it is refused, the backup alone restores.
    let out =
        cli(&["restore", "--source-table", &f.table, "--from", dir, "--into", &into, "--until", "latest"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("there is no stream archive"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Kept apart from the target, as a key should be.
    let key_path = std::env::temp_dir().join(format!("lift-backup-key-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&key_path, format!("{SECRET}\n")).unwrap();
    let key_file = key_path.to_str().unwrap();
    let out = with_key(
        None,
        &[
            "restore",
            "--source-table",
            &f.table,
            "--from",
            dir,
            "--into",
            &into,
            "--until",
            "latest",
            "--no-replay",
            "--key-file",
            key_file,
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(contents(&f.client, &into).await.len(), 12);
    let out = cli(&["restore", "--source-table", &f.table, "--from", dir, "--into", &into, "--no-replay"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&[
        "restore",
        "--source-table",
        &f.table,
        "--from",
        dir,
        "--into",
        "x-new",
        "--until",
        "yesterday",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not `latest`, RFC 3339 or epoch milliseconds"));

    // A backup written before signing restores only with --allow-unsigned, with a warning.
    let id = std::fs::read_dir(f.dir.join("backups")).unwrap().next().unwrap().unwrap().file_name();
    let manifest_path = f.dir.join("backups").join(id).join("manifest.json");
    tamper_manifest(&manifest_path, |m| m.signature = None);
    let unsigned = restored_name(&f);
    let out =
        cli(&["restore", "--source-table", &f.table, "--from", dir, "--into", &unsigned, "--no-replay"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("has no signature"), "{stderr}");
    let out = with_key(
        None,
        &[
            "restore",
            "--source-table",
            &f.table,
            "--from",
            dir,
            "--into",
            &unsigned,
            "--no-replay",
            "--allow-unsigned",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("not authenticated"), "{stderr}");
    assert_eq!(contents(&f.client, &unsigned).await.len(), 12);
    let _ = std::fs::remove_file(key_path);
}

/// The TTL attribute of `table` when TTL is on.
async fn ttl_of(client: &Client, table: &str) -> Option<String> {
    let out = client.describe_time_to_live().table_name(table).send().await.unwrap();
    let description = out.time_to_live_description()?;
    let on = matches!(
        description.time_to_live_status(),
        Some(
            aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled
                | aws_sdk_dynamodb::types::TimeToLiveStatus::Enabling
        )
    );
    on.then(|| description.attribute_name().unwrap_or_default().to_owned())
}

/// A table whose retention is enforced by TTL keeps it when restored: a restored table
/// without it would keep expired records (PHI past retention) for good. A table without
/// TTL is restored without it, and a manifest written before TTL was recorded still restores.
#[tokio::test]
async fn a_restored_table_keeps_its_time_to_live() {
    let local = DynamoDbLocal::shared().await.unwrap();
    let def = TableDef::new("backup-ttl", KeyAttribute::string("pk")).with_ttl("expires_at");
    let mut f = fixture().await;
    f.table = local.create_table(&def).await.unwrap();
    assert_eq!(ttl_of(&f.client, &f.table).await.as_deref(), Some("expires_at"));
    f.put("item-1", "v1").await;
    let manifest = f.backup(1).await;
    assert_eq!(manifest.definition.ttl_attribute.as_deref(), Some("expires_at"));
    let into = restored_name(&f);
    f.restore(&into).replay_archive(false).build().unwrap().run().await.unwrap();
    assert_eq!(ttl_of(&f.client, &into).await.as_deref(), Some("expires_at"), "the restore dropped the TTL");
    assert_eq!(contents(&f.client, &into).await.len(), 1);

    // An older manifest has no TTL recorded: it restores, without TTL.
    rewrite_manifest(&f.manifest_path(&manifest), &f.key, |m| m.definition.ttl_attribute = None);
    let text = std::fs::read_to_string(f.manifest_path(&manifest)).unwrap();
    assert!(!text.contains("ttl_attribute"), "{text}");
    let old = restored_name(&f);
    f.restore(&old).replay_archive(false).build().unwrap().run().await.unwrap();
    assert_eq!(ttl_of(&f.client, &old).await, None);

    // The fixture's own table has no TTL, and neither has its restored copy.
    let plain = fixture().await;
    plain.put("item-1", "v1").await;
    let manifest = plain.backup(1).await;
    assert_eq!(manifest.definition.ttl_attribute, None);
    let into = restored_name(&plain);
    plain.restore(&into).replay_archive(false).build().unwrap().run().await.unwrap();
    assert_eq!(ttl_of(&plain.client, &into).await, None);
}

/// The chunk indexes of the archive in `dir`: (file stem, record count), in name order.
fn chunk_indexes(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out: Vec<(PathBuf, u64)> = std::fs::read_dir(dir.join("stream"))
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let stem = path.to_str()?.strip_suffix(".json")?.to_owned();
            let index: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            Some((PathBuf::from(stem), index["records"].as_u64().unwrap()))
        })
        .collect();
    out.sort();
    out
}

/// A chunk deleted from the target (index and all, as one with access to the bucket would)
/// leaves its writes out of the archive: the restore refuses, naming the chunk, rather than
/// restore a table that lacks them.
#[tokio::test]
async fn a_restore_refuses_an_archive_with_a_chunk_missing() {
    let f = fixture().await;
    let archive = f.archive().start().await.unwrap();
    f.put("before", "x").await;
    f.backup(1).await;
    f.put("lost", "x").await;
    archive.caught_up().await.unwrap();
    let (lost, records) = chunk_indexes(&f.dir).into_iter().rev().find(|(_, n)| *n > 0).unwrap();
    f.put("after", "x").await;
    archive.caught_up().await.unwrap();
    archive.stop().await.unwrap();
    assert!(records >= 1);
    std::fs::remove_file(lost.with_extension("jsonl.gz")).unwrap();
    std::fs::remove_file(lost.with_extension("json")).unwrap();

    let into = restored_name(&f);
    let err = f.restore(&into).build().unwrap().run().await.unwrap_err();
    match &err {
        BackupError::ArchiveIncomplete { reason, to_ms: None, .. } => {
            assert!(reason.contains("is missing"), "{reason}")
        }
        other => panic!("a restore over a lost chunk was not refused: {other:?}"),
    }
    let moment = f.restore(&into).until(PointInTime::Moment(SystemTime::now())).build().unwrap();
    assert!(matches!(moment.run().await.unwrap_err(), BackupError::ArchiveIncomplete { .. }));
    assert!(!exists(&f.client, &into).await, "a refused restore created the table");
    // The backup alone still restores, when asked for.
    f.restore(&into).replay_archive(false).build().unwrap().run().await.unwrap();
    assert_eq!(contents(&f.client, &into).await.len(), 1);
}

/// An archive started after the backup, or stopped before the moment, holds nothing of the
/// time in between: a restore across that time is refused.
#[tokio::test]
async fn a_restore_refuses_time_the_archive_did_not_cover() {
    let f = fixture().await;
    f.put("before", "x").await;
    f.backup(1).await;
    f.put("unarchived", "x").await;
    let archive = f.archive().start().await.unwrap();
    f.put("archived", "x").await;
    archive.caught_up().await.unwrap();
    archive.stop().await.unwrap();
    let into = restored_name(&f);
    let err = f.restore(&into).build().unwrap().run().await.unwrap_err();
    assert!(
        matches!(&err, BackupError::ArchiveIncomplete { reason, .. } if reason.contains("after the backup started")),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not cover the backup's start"), "{err}");

    // A backup inside a second run of the archive, and a moment after the archive stopped.
    let archive = f.archive().start().await.unwrap();
    archive.caught_up().await.unwrap();
    f.backup(1).await;
    archive.stop().await.unwrap();
    f.put("after the archive stopped", "x").await;
    let moment = PointInTime::Moment(SystemTime::now());
    let err = f.restore(&into).until(moment).build().unwrap().run().await.unwrap_err();
    assert!(
        matches!(&err, BackupError::ArchiveIncomplete { reason, to_ms: Some(_), .. } if reason.contains("only until")),
        "{err:?}"
    );
    assert!(!exists(&f.client, &into).await);
}

/// `stop` returns only once every shard was read to its end: when the stream cannot be
/// read, it says so rather than leave changes made before it out of the archive.
#[tokio::test]
async fn stop_fails_when_the_stream_cannot_be_read_to_its_end() {
    use lift_harness::faults::{AwsFaultProxy, DynamoDbFault};
    let f = fixture().await;
    let local = DynamoDbLocal::shared().await.unwrap();
    let proxy = AwsFaultProxy::start(local.endpoint()).await.unwrap();
    let region = RegionSet::builder()
        .region(RegionConfig::new("us-east-1").dynamodb_endpoint(proxy.endpoint()))
        .build()
        .unwrap()
        .primary()
        .clone();
    let archive =
        StreamArchive::builder(region, &f.table).target(f.target()).key(f.key.clone()).start().await.unwrap();
    f.put("read", "x").await;
    archive.caught_up().await.unwrap();
    proxy.inject("DynamoDBStreams_20120810.GetRecords", DynamoDbFault::InternalServerError, 1.0);
    f.put("never read", "x").await;
    let err = archive.stop().await.unwrap_err();
    assert!(err.to_string().contains("read to its end"), "{err}");
    assert!(proxy.stats("DynamoDBStreams_20120810.GetRecords").injected > 0);
}

/// DynamoDB may take a `BatchWriteItem` and hand writes back unprocessed (it does when a
/// table is throttled; DynamoDB Local never does). A restore writes them again, and the
/// restored table is whole. When DynamoDB keeps handing them back, the restore names every
/// item it never wrote, with the reason, and counts none of them restored: a broken loop that
/// took the 200 for "written" would report a complete table with items missing.
#[tokio::test]
async fn a_restore_writes_again_what_dynamodb_left_unprocessed_and_names_what_it_never_wrote() {
    use lift_harness::faults::AwsFaultProxy;
    let f = fixture().await;
    // Two batches: 25 items and 5.
    for i in 0..30 {
        f.put(&format!("item-{i:02}"), "x").await;
    }
    f.backup(1).await;
    let local = DynamoDbLocal::shared().await.unwrap();
    let proxy = AwsFaultProxy::start(local.endpoint()).await.unwrap();
    let through_proxy = lift_harness::dynamodb::client_for(&proxy.endpoint(), "us-east-1");
    let restore = |into: &str| {
        Restore::builder(through_proxy.clone(), f.target(), into)
            .source_table(&f.table)
            .key(f.key.clone())
            .replay_archive(false)
            .concurrency(1)
            .build()
            .unwrap()
    };

    proxy.leave_unprocessed("BatchWriteItem", 3);
    let into = restored_name(&f);
    let report = restore(&into).run().await.unwrap();
    assert!(report.not_restored.is_empty(), "{:?}", report.not_restored);
    assert_eq!(report.items_from_backup, 30);
    assert_eq!(contents(&f.client, &into).await, contents(&f.client, &f.table).await);
    assert_eq!(proxy.stats("BatchWriteItem").injected, 3, "the writes handed back were sent again");

    // Part of a batch handed back, twice: 13 of the first 25 written, then 6 of the 12 sent
    // again, then the rest.
    proxy.hand_back_part("BatchWriteItem", 2);
    let into = restored_name(&f);
    let report = restore(&into).run().await.unwrap();
    assert!(report.not_restored.is_empty(), "{:?}", report.not_restored);
    assert_eq!(contents(&f.client, &into).await, contents(&f.client, &f.table).await);
    assert_eq!(proxy.stats("BatchWriteItem").injected, 5);

    // Handed back on every attempt of the first batch (8), then written.
    proxy.leave_unprocessed("BatchWriteItem", 8);
    let into = restored_name(&f);
    let report = restore(&into).run().await.unwrap();
    assert_eq!(report.items_from_backup, 5, "only the second batch was written: {report:?}");
    assert_eq!(report.not_restored.len(), 25, "{:?}", report.not_restored);
    for missing in &report.not_restored {
        assert!(missing.reason.contains("left unprocessed"), "{missing:?}");
        assert!(missing.key.contains("item-"), "the item is named by its key: {missing:?}");
    }
    let held = contents(&f.client, &into).await;
    assert_eq!(held.len(), 5, "{held:?}");
    let named: std::collections::BTreeSet<&str> =
        report.not_restored.iter().map(|n| n.key.as_str()).collect();
    assert_eq!(named.len(), 25, "every missing item named once");
    for pk in contents(&f.client, &f.table).await.keys() {
        assert!(
            held.contains_key(pk) != named.iter().any(|k| k.contains(pk.as_str())),
            "{pk} is either restored or named as not restored"
        );
    }
}

/// A time attribute outside what the archive observed of a change (a wrong clock, or a
/// forged value) does not move the change across the moment: a write made before the
/// moment that claims tomorrow is kept, one made after it that claims 1970 is left out, and
/// both are in the latest state.
#[tokio::test]
async fn a_time_attribute_outside_what_the_archive_observed_is_not_believed() {
    let f = fixture().await;
    let archive = StreamArchive::builder(f.region.clone(), &f.table)
        .target(f.target())
        .key(f.key.clone())
        .time_attribute("written_ms")
        .start()
        .await
        .unwrap();
    let put_at = |pk: &'static str, written_ms: u64| {
        f.client
            .put_item()
            .table_name(&f.table)
            .item("pk", AttributeValue::S(pk.into()))
            .item("value", AttributeValue::S("x".into()))
            .item("written_ms", AttributeValue::N(written_ms.to_string()))
            .send()
    };
    f.put("seed", "x").await;
    f.backup(1).await;
    let tomorrow =
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64 + 86_400_000;
    put_at("before, claims tomorrow", tomorrow).await.unwrap();
    archive.caught_up().await.unwrap();
    let moment = SystemTime::now();
    archive.caught_up().await.unwrap();
    put_at("after, claims 1970", 1).await.unwrap();
    archive.caught_up().await.unwrap();
    archive.stop().await.unwrap();

    let into = restored_name(&f);
    f.restore(&into).until(PointInTime::Moment(moment)).build().unwrap().run().await.unwrap();
    let held = contents(&f.client, &into).await;
    assert!(held.contains_key("before, claims tomorrow"), "{held:?}");
    assert!(!held.contains_key("after, claims 1970"), "{held:?}");
    let latest = restored_name(&f);
    f.restore(&latest).build().unwrap().run().await.unwrap();
    let held = contents(&f.client, &latest).await;
    assert_eq!(held.len(), 3, "{held:?}");
}

/// The lines of a gzip JSON-lines file (a segment, or a chunk of the archive).
fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    use std::io::BufRead as _;
    let bytes = std::fs::read(path).unwrap();
    std::io::BufReader::new(flate2::read::GzDecoder::new(&bytes[..]))
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect()
}

/// Writes `lines` as gzip JSON lines to `path` and returns the bytes written.
fn write_lines(path: &Path, lines: &[serde_json::Value]) -> Vec<u8> {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for line in lines {
        serde_json::to_writer(&mut gz, line).unwrap();
        gz.write_all(b"\n").unwrap();
    }
    let bytes = gz.finish().unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

/// Someone who can write the target but does not hold the key changes an item in a segment
/// and recomputes the segment's SHA-256 and size in the manifest: the manifest's signature
/// no longer matches, and the restore refuses before it creates anything. The error names
/// the manifest, never the key or the signature it expected.
#[tokio::test]
async fn an_item_changed_with_its_checksum_recomputed_is_refused() {
    let f = fixture().await;
    for i in 0..20 {
        f.put(&format!("c-{i:02}"), "genuine").await;
    }
    let manifest = f.backup(1).await;
    let path = f.segment_path(&manifest, 0);
    let mut lines = read_lines(&path);
    lines[0]["value"] = serde_json::json!({"S": "forged"});
    let bytes = write_lines(&path, &lines);
    tamper_manifest(&f.manifest_path(&manifest), |m| {
        m.segments[0].sha256 = lift_sha256(&bytes);
        m.segments[0].bytes = bytes.len() as u64;
    });

    let into = restored_name(&f);
    let err = f.restore(&into).replay_archive(false).build().unwrap().run().await.unwrap_err();
    match &err {
        BackupError::Unauthenticated { what, problem: SignatureProblem::Mismatch } => {
            assert_eq!(what, &format!("manifest of backup {}", manifest.backup_id))
        }
        other => panic!("a manifest changed without the key was accepted: {other:?}"),
    }
    let text = format!("{err} {err:?}");
    assert!(text.contains("changed after it was signed"), "{text}");
    assert!(
        !text.contains(&manifest.signature.as_ref().unwrap().mac),
        "the error shows the expected mac: {text}"
    );
    assert!(!exists(&f.client, &into).await, "a refused restore created the table");
}

/// A manifest copied over another backup's (the signed manifest of an older backup put
/// where the newest one was, so that a restore of the latest brings back older data) is
/// refused, and so is one whose backup id was rewritten to fit where it lies.
#[tokio::test]
async fn a_manifest_from_another_backup_is_refused() {
    let f = fixture().await;
    f.put("a", "old").await;
    let old = f.backup(1).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    f.put("a", "new").await;
    let new = f.backup(1).await;
    assert!(new.backup_id > old.backup_id, "{} {}", new.backup_id, old.backup_id);

    std::fs::copy(f.manifest_path(&old), f.manifest_path(&new)).unwrap();
    let into = restored_name(&f);
    for restore in [f.restore(&into), f.restore(&into).backup(&new.backup_id)] {
        let err = restore.replay_archive(false).build().unwrap().run().await.unwrap_err();
        assert!(
            matches!(&err, BackupError::Unauthenticated { problem: SignatureProblem::OtherBackup { names }, .. }
                if names == &old.backup_id),
            "the manifest of another backup was accepted: {err:?}"
        );
        assert!(err.to_string().contains(&format!("manifest of backup {}", new.backup_id)), "{err}");
    }

    // Its id rewritten to the backup it was copied over: the signature covers the id.
    tamper_manifest(&f.manifest_path(&new), |m| m.backup_id = new.backup_id.clone());
    let err = f.restore(&into).replay_archive(false).build().unwrap().run().await.unwrap_err();
    assert!(
        matches!(&err, BackupError::Unauthenticated { problem: SignatureProblem::Mismatch, .. }),
        "{err:?}"
    );
    assert!(!exists(&f.client, &into).await);
    // The older backup itself, where it belongs, still restores.
    let report =
        f.restore(&into).backup(&old.backup_id).replay_archive(false).build().unwrap().run().await.unwrap();
    assert_eq!(report.backup_id, old.backup_id);
    assert_eq!(contents(&f.client, &into).await["a"], "old");
}

/// One key signs the backups of several tables. A validly signed backup of `orders`, put
/// where a restore of `patients` looks (by someone who can write the target, or by an
/// operator's mistyped path), is refused: asked for by id or as the latest, the restore
/// names both tables, and nothing is created. A restore must say which table it expects.
#[tokio::test]
async fn a_signed_backup_of_another_table_is_refused() {
    let orders = fixture().await;
    let patients = fixture().await;
    orders.put("a", "an order").await;
    let manifest = orders.backup(1).await;
    assert_eq!(manifest.table, orders.table);

    let into = restored_name(&patients);
    let restore = || {
        Restore::builder(patients.client.clone(), orders.target(), &into)
            .source_table(&patients.table)
            .key(key())
            .replay_archive(false)
    };
    for restore in [restore(), restore().backup(&manifest.backup_id)] {
        let err = restore.build().unwrap().run().await.unwrap_err();
        match &err {
            BackupError::WrongTable { expected, found, backup } => {
                assert_eq!((expected, found, backup), (&patients.table, &orders.table, &manifest.backup_id))
            }
            other => panic!("a signed backup of another table was accepted: {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(&orders.table) && text.contains(&patients.table), "{text}");
    }
    assert!(!exists(&patients.client, &into).await, "a refused restore created the table");

    // A restore that does not say which table it expects is refused before it reads anything.
    let unnamed = Restore::builder(patients.client.clone(), orders.target(), &into).key(key()).build();
    let err = unnamed.unwrap_err();
    assert!(matches!(&err, BackupError::Config(_)) && err.to_string().contains("no source table"), "{err}");
    // The backup restores as what it is.
    let report = orders.restore(&into).replay_archive(false).build().unwrap().run().await.unwrap();
    assert_eq!(report.backup_id, manifest.backup_id);
}

/// Two tables back up, and archive their streams, into one target under one key. A restore
/// of the table backed up first (so the other's backup is the newest there) restores its
/// own backup and replays its own archive only, to the latest moment and to a moment after
/// the other's backup; never the other table's items or changes.
#[tokio::test]
async fn backups_of_two_tables_in_one_target_restore_each_its_own() {
    let orders = fixture().await;
    let patients = fixture().await;
    let shared = orders.target();
    let orders_archive = orders.archive().start().await.unwrap();
    let patients_archive = patients.archive_to(shared.clone()).start().await.unwrap();
    let backup = |f: &Fixture| {
        TableBackup::builder(f.client.clone(), &f.table).target(shared.clone()).key(key()).build().unwrap()
    };
    let mut expected_orders = BTreeMap::new();
    for i in 0..5 {
        orders.put(&format!("order-{i}"), "before").await;
        expected_orders.insert(format!("order-{i}"), "before".to_owned());
    }
    let orders_backup = backup(&orders).run().await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    for i in 0..7 {
        patients.put(&format!("patient-{i}"), "before").await;
    }
    let patients_backup = backup(&patients).run().await.unwrap();
    assert!(patients_backup.backup_id > orders_backup.backup_id);
    orders.put("order-late", "after").await;
    expected_orders.insert("order-late".to_owned(), "after".to_owned());
    patients.put("patient-late", "after").await;
    orders_archive.caught_up().await.unwrap();
    patients_archive.caught_up().await.unwrap();
    let moment = SystemTime::now();
    orders_archive.stop().await.unwrap();
    patients_archive.stop().await.unwrap();

    for until in [PointInTime::Latest, PointInTime::Moment(moment)] {
        let into = restored_name(&orders);
        let report = orders.restore(&into).until(until).build().unwrap().run().await.unwrap();
        assert_eq!(report.backup_id, orders_backup.backup_id, "{until:?}: another table's backup was chosen");
        assert!(report.authenticated && report.not_restored.is_empty(), "{report:?}");
        assert_eq!(
            contents(&orders.client, &into).await,
            expected_orders,
            "{until:?}: the restore holds another table's items or changes"
        );
    }
    let into = restored_name(&patients);
    let report = patients.restore_from(shared, &into).build().unwrap().run().await.unwrap();
    assert_eq!(report.backup_id, patients_backup.backup_id);
    let held = contents(&patients.client, &into).await;
    assert_eq!(held.len(), 8, "{held:?}");
    assert!(held.keys().all(|k| k.starts_with("patient-")), "{held:?}");
}

/// A manifest without a signature (written before backups were signed, or stripped) is
/// refused by default, and restores only with `allow_unsigned`, which the report records.
#[tokio::test]
async fn an_unsigned_manifest_is_refused_unless_allowed() {
    let f = fixture().await;
    f.put("a", "x").await;
    f.put("b", "y").await;
    let manifest = f.backup(1).await;
    tamper_manifest(&f.manifest_path(&manifest), |m| m.signature = None);
    let text = std::fs::read_to_string(f.manifest_path(&manifest)).unwrap();
    assert!(!text.contains("signature"), "{text}");

    let into = restored_name(&f);
    let err = f.restore(&into).replay_archive(false).build().unwrap().run().await.unwrap_err();
    assert!(
        matches!(&err, BackupError::Unauthenticated { problem: SignatureProblem::Missing, .. }),
        "an unsigned manifest was accepted by default: {err:?}"
    );
    assert!(err.to_string().contains("allow_unsigned"), "{err}");
    assert!(!exists(&f.client, &into).await);
    // A restore needs a key unless it allows unsigned backups.
    let unkeyed =
        Restore::builder(f.client.clone(), f.target(), &into).source_table(&f.table).build().unwrap_err();
    assert!(unkeyed.to_string().contains("no backup key"), "{unkeyed}");

    let report =
        f.restore(&into).allow_unsigned(true).replay_archive(false).build().unwrap().run().await.unwrap();
    assert!(!report.authenticated);
    assert_eq!(contents(&f.client, &into).await.len(), 2);
    let keyless = restored_name(&f);
    let report = Restore::builder(f.client.clone(), f.target(), &keyless)
        .source_table(&f.table)
        .allow_unsigned(true)
        .replay_archive(false)
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    assert!(!report.authenticated);

    // Signed again, it is authenticated whatever the layout of the file.
    rewrite_manifest(&f.manifest_path(&manifest), &f.key, |_| {});
    let signed = restored_name(&f);
    let report = f.restore(&signed).replay_archive(false).build().unwrap().run().await.unwrap();
    assert!(report.authenticated);
}

/// A restore with another key than the backup's is refused and says so, without showing
/// either key or the signature; a key id forged to the restore's does not help.
#[tokio::test]
async fn a_restore_with_the_wrong_key_is_refused() {
    let f = fixture().await;
    f.put("a", "x").await;
    let manifest = f.backup(1).await;
    let into = restored_name(&f);
    let wrong = || {
        Restore::builder(f.client.clone(), f.target(), &into)
            .source_table(&f.table)
            .key(other_key())
            .replay_archive(false)
    };
    let err = wrong().build().unwrap().run().await.unwrap_err();
    match &err {
        BackupError::Unauthenticated {
            problem: SignatureProblem::OtherKey { signed_by, key: used }, ..
        } => {
            assert_eq!(signed_by, key().id());
            assert_eq!(used, other_key().id());
        }
        other => panic!("a restore with another key was accepted: {other:?}"),
    }
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&manifest.signature.as_ref().unwrap().mac), "{text}");
    assert!(!text.contains("backup tests' signing key") && !text.contains("another team"), "{text}");

    tamper_manifest(&f.manifest_path(&manifest), |m| {
        m.signature.as_mut().unwrap().key_id = other_key().id().to_owned()
    });
    let err = wrong().build().unwrap().run().await.unwrap_err();
    assert!(
        matches!(&err, BackupError::Unauthenticated { problem: SignatureProblem::Mismatch, .. }),
        "{err:?}"
    );
    assert!(!exists(&f.client, &into).await);
}

/// The chunk of the archive holding `pk`'s change: its path (without extension) and lines.
fn chunk_holding(dir: &Path, pk: &str) -> (PathBuf, Vec<serde_json::Value>) {
    for (stem, records) in chunk_indexes(dir) {
        if records == 0 {
            continue;
        }
        let lines = read_lines(&stem.with_extension("jsonl.gz"));
        if lines.iter().any(|l| l["keys"]["pk"]["S"] == pk) {
            return (stem, lines);
        }
    }
    panic!("no chunk holds {pk}");
}

/// The point-in-time restore trusts the archive's chunk indexes: a chunk changed with the
/// SHA-256 in its index recomputed is refused (the index's signature no longer matches),
/// and an index whose signature was removed is not trusted, so the gap it leaves is
/// refused, unless unsigned chunks are allowed.
#[tokio::test]
async fn an_edited_chunk_index_is_refused() {
    let f = fixture().await;
    let archive = f.archive().start().await.unwrap();
    f.put("seed", "x").await;
    f.backup(1).await;
    f.put("after", "genuine").await;
    archive.caught_up().await.unwrap();
    // A later chunk, so the one holding `after` is not the run's last.
    f.put("later", "x").await;
    archive.caught_up().await.unwrap();
    archive.stop().await.unwrap();

    let (stem, mut lines) = chunk_holding(&f.dir, "after");
    let chunk_path = stem.with_extension("jsonl.gz");
    let index_path = stem.with_extension("json");
    let (original_chunk, original_index) =
        (std::fs::read(&chunk_path).unwrap(), std::fs::read(&index_path).unwrap());
    for line in lines.iter_mut().filter(|l| l["keys"]["pk"]["S"] == "after") {
        line["image"]["value"] = serde_json::json!({"S": "forged"});
    }
    let bytes = write_lines(&chunk_path, &lines);
    let mut index: serde_json::Value = serde_json::from_slice(&original_index).unwrap();
    index["sha256"] = lift_sha256(&bytes).into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();

    let into = restored_name(&f);
    let err = f.restore(&into).build().unwrap().run().await.unwrap_err();
    let name = stem.file_name().unwrap().to_str().unwrap();
    match &err {
        BackupError::Unauthenticated { what, problem: SignatureProblem::Mismatch } => {
            assert!(what.contains(name), "{what}")
        }
        other => panic!("a chunk changed with its index recomputed was accepted: {other:?}"),
    }
    assert!(!exists(&f.client, &into).await, "a refused restore created the table");

    // The genuine chunk, its index's signature removed: left out, and the gap is refused.
    std::fs::write(&chunk_path, &original_chunk).unwrap();
    let mut index: serde_json::Value = serde_json::from_slice(&original_index).unwrap();
    index.as_object_mut().unwrap().remove("signature").expect("the index was signed");
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let err = f.restore(&into).build().unwrap().run().await.unwrap_err();
    match &err {
        BackupError::ArchiveIncomplete { reason, .. } => {
            assert!(reason.contains("is missing") && reason.contains("without a signature"), "{reason}")
        }
        other => panic!("an unsigned chunk index was trusted: {other:?}"),
    }
    assert!(!exists(&f.client, &into).await);
    let report = f.restore(&into).allow_unsigned(true).build().unwrap().run().await.unwrap();
    assert!(!report.authenticated);
    let held = contents(&f.client, &into).await;
    assert_eq!(held.get("after").map(String::as_str), Some("genuine"), "{held:?}");
    assert!(held.contains_key("later"), "{held:?}");
}

/// The chunks of the archive in `dir` whose index names `table`: (file stem, record count),
/// in name order.
fn chunks_of(dir: &Path, table: &str) -> Vec<(PathBuf, u64)> {
    chunk_indexes(dir)
        .into_iter()
        .filter(|(stem, _)| {
            let index: serde_json::Value =
                serde_json::from_slice(&std::fs::read(stem.with_extension("json")).unwrap()).unwrap();
            index["table"] == table
        })
        .collect()
}

/// Two tables back up and archive their streams into one target under one key, and the
/// other table's archive is damaged: a chunk deleted, a chunk changed, an index deleted.
/// This table's restore replays its own archive all the same and holds every acknowledged
/// write, whether its source is named by name or by the table's ARN. A chunk of this table
/// deleted or changed still refuses its restore, naming the chunk, and so does its index
/// rewritten to name the other table (the signature no longer matches); nothing is created.
#[tokio::test]
async fn another_tables_damaged_archive_does_not_stop_a_restore_but_this_tables_does() {
    let orders = fixture().await;
    let patients = fixture().await;
    let shared = orders.target();
    let orders_archive = orders.archive().start().await.unwrap();
    let patients_archive = patients.archive_to(shared.clone()).start().await.unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..5 {
        orders.put(&format!("order-{i}"), "before").await;
        expected.insert(format!("order-{i}"), "before".to_owned());
        patients.put(&format!("patient-{i}"), "before").await;
    }
    let manifest = orders.backup(1).await;
    TableBackup::builder(patients.client.clone(), &patients.table)
        .target(shared.clone())
        .key(key())
        .build()
        .unwrap()
        .run()
        .await
        .unwrap();
    // Several chunks of each table after the backup, each holding writes.
    for round in 0..4 {
        orders.put(&format!("order-late-{round}"), "after").await;
        expected.insert(format!("order-late-{round}"), "after".to_owned());
        orders.delete(&format!("order-{round}")).await;
        expected.remove(&format!("order-{round}"));
        patients.put(&format!("patient-late-{round}"), "after").await;
        orders_archive.caught_up().await.unwrap();
        patients_archive.caught_up().await.unwrap();
    }
    let moment = SystemTime::now();
    orders_archive.stop().await.unwrap();
    patients_archive.stop().await.unwrap();

    let theirs: Vec<PathBuf> =
        chunks_of(&orders.dir, &patients.table).into_iter().filter(|(_, n)| *n > 0).map(|(s, _)| s).collect();
    assert!(theirs.len() >= 3, "{theirs:?}");
    std::fs::remove_file(theirs[0].with_extension("jsonl.gz")).unwrap();
    let mut bytes = std::fs::read(theirs[1].with_extension("jsonl.gz")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(theirs[1].with_extension("jsonl.gz"), &bytes).unwrap();
    std::fs::remove_file(theirs[2].with_extension("json")).unwrap();

    let into = restored_name(&orders);
    let report = orders
        .restore(&into)
        .build()
        .unwrap()
        .run()
        .await
        .expect("another table's damaged archive stopped this table's restore");
    assert_eq!(report.backup_id, manifest.backup_id);
    assert!(report.authenticated && report.not_restored.is_empty() && report.chunks_read > 0, "{report:?}");
    assert_eq!(contents(&orders.client, &into).await, expected, "acknowledged writes were lost");
    // The same table named by its ARN (as DescribeTable gives it).
    let described = orders.client.describe_table().table_name(&orders.table).send().await.unwrap();
    let arn = described
        .table()
        .and_then(|t| t.table_arn())
        .expect("DescribeTable gives the table's arn")
        .to_owned();
    let by_arn = restored_name(&orders);
    Restore::builder(orders.client.clone(), shared.clone(), &by_arn)
        .source_table(&arn)
        .key(key())
        .until(PointInTime::Moment(moment))
        .build()
        .unwrap()
        .run()
        .await
        .unwrap_or_else(|e| panic!("a restore of {arn} from a backup of {}: {e}", orders.table));
    assert_eq!(contents(&orders.client, &by_arn).await, expected);

    // This table's own chunk, damaged: refused and named.
    let stem = chunks_of(&orders.dir, &orders.table)
        .into_iter()
        .filter(|(_, records)| *records > 0)
        .map(|(stem, _)| stem)
        .find(|stem| {
            read_lines(&stem.with_extension("jsonl.gz"))
                .iter()
                .any(|l| l["keys"]["pk"]["S"] == "order-late-1")
        })
        .expect("a chunk of the table holds order-late-1");
    let name = stem.file_name().unwrap().to_str().unwrap().to_owned();
    let (chunk_path, index_path) = (stem.with_extension("jsonl.gz"), stem.with_extension("json"));
    let (chunk, index) = (std::fs::read(&chunk_path).unwrap(), std::fs::read(&index_path).unwrap());
    let refused = || async {
        let into = restored_name(&orders);
        let err = orders.restore(&into).build().unwrap().run().await.unwrap_err();
        assert!(!exists(&orders.client, &into).await, "a refused restore created the table");
        err
    };
    std::fs::remove_file(&chunk_path).unwrap();
    match refused().await {
        BackupError::ArchiveCorrupt { chunk, reason } => {
            assert!(chunk.contains(&name) && reason.contains("the chunk is missing"), "{chunk}: {reason}")
        }
        other => panic!("a restore without a chunk of its own table was not refused: {other:?}"),
    }
    let mut changed = chunk.clone();
    changed[chunk.len() / 2] ^= 0x40;
    std::fs::write(&chunk_path, &changed).unwrap();
    match refused().await {
        BackupError::ArchiveCorrupt { chunk, reason } => {
            assert!(chunk.contains(&name) && reason.contains("sha-256"), "{chunk}: {reason}")
        }
        other => panic!("a changed chunk of its own table was replayed: {other:?}"),
    }
    // Someone without the key passes the damaged chunk off as the other table's.
    let mut claimed: serde_json::Value = serde_json::from_slice(&index).unwrap();
    claimed["table"] = patients.table.clone().into();
    std::fs::write(&index_path, serde_json::to_vec(&claimed).unwrap()).unwrap();
    match refused().await {
        BackupError::Unauthenticated { what, problem: SignatureProblem::Mismatch } => {
            assert!(what.contains(&name), "{what}")
        }
        other => panic!("a chunk passed off as another table's was left out: {other:?}"),
    }
    std::fs::write(&chunk_path, &chunk).unwrap();
    std::fs::write(&index_path, &index).unwrap();

    // The damaged table's own restore is refused, naming one of its chunks.
    let into = restored_name(&patients);
    let err = patients.restore_from(shared, &into).build().unwrap().run().await.unwrap_err();
    let text = err.to_string();
    assert!(theirs[..3].iter().any(|s| text.contains(s.file_name().unwrap().to_str().unwrap())), "{text}");
}
