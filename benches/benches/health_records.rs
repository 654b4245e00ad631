//! The cost of one read of a patient's record in the health-records example, without the
//! DynamoDB round trip: its three stored items (demographics, an encounter, an observation)
//! opened, checked to be this tenant's, patient's and entry's, and filtered to what the
//! caller's role may see (minimum necessary), then serialized as the answer.
//!
//! - Group `health_record_read`: `bare` clones the three items (what the query hands back);
//!   `layer` clones them, opens them (AES-256-GCM under a data key already in hand: what a
//!   data-key cache hit costs, without the KMS round trip, as in `aes_gcm_1kb`), filters
//!   them to the billing view and serializes the answer.

use std::time::SystemTime;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use futures_util::future::BoxFuture;
use health_records::access::{filter, View};
use health_records::model::{Encounter, Observation, Patient};
use health_records::store::{open_record, seal_entry, Entry};
use health_records::{PhiCipher, Retention};
use lift::security::protection::{DataKey, Envelope, KmsClient, ProtectionError};

/// A KMS that hands out one fixed data key (benches only: no network, nothing to protect).
struct FixedKey;

impl KmsClient for FixedKey {
    fn generate_data_key<'a>(
        &'a self,
        _key_id: &'a str,
        _context: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<DataKey, ProtectionError>> {
        Box::pin(async { Ok(DataKey { plaintext: [7u8; 32], blob: vec![9u8; 150] }) })
    }

    fn decrypt<'a>(
        &'a self,
        _blob: &'a [u8],
        _context: &'a [(&'a str, &'a str)],
    ) -> BoxFuture<'a, Result<[u8; 32], ProtectionError>> {
        Box::pin(async { Ok([7u8; 32]) })
    }
}

fn read(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let cipher = PhiCipher::Envelope(Envelope::new(FixedKey, "alias/bench"));
    let patient = Patient {
        id: "p-1".into(),
        name: "Ada Lovelace".into(),
        date_of_birth: "1815-12-10".into(),
        member_id: Some("M-4471".into()),
    };
    let encounter = Encounter {
        id: Some("enc_1".into()),
        date: Some("2026-03-01".into()),
        diagnoses: vec!["J45.909".into(), "R06.2".into()],
        procedures: vec!["94010".into()],
        medications: vec!["salbutamol 100 mcg".into()],
        notes: Some("Night-time wheezing for three weeks since moving flats; damp in the bedroom. Peak flow 320. Review in two weeks.".into()),
    };
    let observation = Observation {
        id: Some("obs_1".into()),
        code: "8867-4".into(),
        value: "88".into(),
        unit: Some("/min".into()),
    };
    let (tenant, now, retention) = ("clinic", SystemTime::now(), Retention::default());
    let items = rt.block_on(async {
        let mut items = Vec::new();
        for entry in
            [Entry::Patient(&patient), Entry::Encounter(&encounter), Entry::Observation(&observation)]
        {
            items.push(seal_entry(&cipher, tenant, "p-1", entry, &retention, now).await.expect("sealed"));
        }
        items
    });
    // The data key is decrypted once, then cached, as in a warm function.
    rt.block_on(open_record(&cipher, tenant, "p-1", &items)).expect("opens");
    let mut group = c.benchmark_group("health_record_read");
    lift_benches::calibrate_before(&mut group);
    group.bench_function("bare", |b| b.iter(|| black_box(items.clone())));
    group.bench_function("layer", |b| {
        b.iter(|| {
            let items = items.clone();
            let record = rt.block_on(open_record(&cipher, tenant, "p-1", &items)).expect("opens");
            black_box(serde_json::to_vec(&filter(&record, View::Billing)).expect("serializes"))
        })
    });
    lift_benches::calibrate_after(&mut group);
    group.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
