//! Property: no generated PHI value (fake names, dates of birth, diagnosis codes, notes) is
//! ever stored in clear (the raw DynamoDB items of the records, key and audit tables) or
//! logged (every log line of the service, captured at DEBUG), while every caller who may
//! read it gets it back.

mod support;

use std::sync::{Arc, Mutex, OnceLock};

use fake::faker::lorem::en::Sentence;
use fake::faker::name::en::Name;
use fake::rand::SeedableRng;
use fake::Fake;
use http::{Method, StatusCode};
use proptest::prelude::*;
use support::{item_text, patient_id, text, BILLING, CLINICIAN};

/// Log lines of every test of the binary, captured by a global subscriber (DEBUG and up).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || LogWriter(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        buffer
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A generated person's PHI.
#[derive(Debug, Clone)]
struct Phi {
    name: String,
    date_of_birth: String,
    diagnosis: String,
    notes: String,
}

fn phi() -> impl Strategy<Value = Phi> {
    (any::<u64>(), 1920..2006i32, 1..=12u8, 1..=28u8, "[A-TV-Z][0-9]{2}\\.[0-9]{1,3}").prop_map(
        |(seed, year, month, day, diagnosis)| {
            let mut rng = fake::rand::rngs::StdRng::seed_from_u64(seed);
            let name: String = Name().fake_with_rng(&mut rng);
            let sentence: String = Sentence(4..8).fake_with_rng(&mut rng);
            Phi {
                name,
                date_of_birth: format!("{year:04}-{month:02}-{day:02}"),
                diagnosis,
                notes: format!("{sentence} ({seed:x})"),
            }
        },
    )
}

/// One runtime and one service for every case (tables, mocks and keys are set up once).
fn shared() -> &'static (tokio::runtime::Runtime, support::Env) {
    static SHARED: OnceLock<(tokio::runtime::Runtime, support::Env)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let _ = captured_logs();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let env = rt.block_on(support::env());
        (rt, env)
    })
}

proptest! {
    // Each case is a handful of requests against DynamoDB Local: few cases, all different.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn no_phi_value_is_stored_or_logged_in_clear(people in proptest::collection::vec(phi(), 1..3)) {
        let logs = captured_logs();
        let (rt, env) = shared();
        rt.block_on(async {
            let mark = logs.lock().unwrap().len();
            for person in &people {
                let id = patient_id();
                let patient = serde_json::json!({ "id": id, "name": person.name, "date_of_birth": person.date_of_birth });
                let res = env.register("clinic", patient).await;
                assert_eq!(res.status(), StatusCode::CREATED, "{}", text(&res));
                let encounter = serde_json::json!({ "diagnoses": [person.diagnosis], "notes": person.notes });
                assert_eq!(env.encounter("clinic", &id, encounter).await.status(), StatusCode::CREATED);
                // Read back: the clinician gets it all, billing the code but not the notes.
                let clinical = text(&env.read("clinic", CLINICIAN, &id, &[]).await);
                assert!(clinical.contains(&person.notes) && clinical.contains(&person.diagnosis), "{clinical}");
                let billing = text(&env.read("clinic", BILLING, &id, &[]).await);
                assert!(billing.contains(&person.diagnosis) && !billing.contains(&person.notes), "{billing}");
                // A failing request (a duplicate registration) logs its error, not its body.
                let again = serde_json::json!({ "id": id, "name": person.name, "date_of_birth": person.date_of_birth });
                assert_eq!(env.register("clinic", again).await.status(), StatusCode::CONFLICT);
                let res = env.send(Method::GET, &format!("/patients/{id}/disclosures"), Some(("clinic", support::Caller::Patient(&id))), None, &[]).await;
                assert_eq!(res.status(), StatusCode::OK);
            }
            let mut stored = String::new();
            for table in [&env.table, &env.keys_table, &env.audit_table] {
                for item in env.scan(table).await {
                    stored.push_str(&item_text(&item));
                }
            }
            let logged = String::from_utf8_lossy(&logs.lock().unwrap()[mark..]).into_owned();
            assert!(!logged.is_empty(), "the service logged nothing: the capture is broken");
            for person in &people {
                for value in [&person.name, &person.date_of_birth, &person.diagnosis, &person.notes] {
                    assert!(!stored.contains(value.as_str()), "{value:?} is stored in clear");
                    assert!(!logged.contains(value.as_str()), "{value:?} is logged in clear");
                }
            }
        });
    }
}
