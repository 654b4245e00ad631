//! Data protection: detectors, classification, masking (with proptests), data residency
//! (451 through the layer on an App) and retention.

use std::time::{Duration, UNIX_EPOCH};

use lift::security::protection::detect::{
    card_brand, is_email, is_iban, is_pan, is_phone, is_plausible_date, is_secret, is_ssn, luhn_valid,
    CardBrand,
};
use lift::security::protection::{
    classify_json, mask_json, Classifier, DataClass, HashKey, Level, MaskStrategy, Policy, ResidencyLayer,
    ResidencyRules, RetentionPolicy,
};
use lift::{App, Body, Context, Principal, Request, Response};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

fn key() -> HashKey {
    HashKey::new(*b"test key: thirty-two bytes long!")
}

#[test]
fn card_numbers_by_issuer_range_length_and_luhn() {
    let valid = [
        ("4111111111111111", CardBrand::Visa),
        ("4222222222222", CardBrand::Visa),
        ("4111111111111111110", CardBrand::Visa),
        ("5555555555554444", CardBrand::Mastercard),
        ("2223003122003222", CardBrand::Mastercard),
        ("378282246310005", CardBrand::Amex),
        ("371449635398431", CardBrand::Amex),
        ("6011111111111117", CardBrand::Discover),
        ("6445644564456445", CardBrand::Discover),
        ("3530111333300000", CardBrand::Jcb),
        ("3566002020360505", CardBrand::Jcb),
        ("30569309025904", CardBrand::Diners),
        ("38520000023237", CardBrand::Diners),
        ("6200000000000005", CardBrand::UnionPay),
    ];
    for (pan, brand) in valid {
        assert!(luhn_valid(pan.as_bytes()), "{pan} luhn");
        assert_eq!(card_brand(pan.as_bytes()), Some(brand), "{pan}");
        assert!(is_pan(pan), "{pan}");
    }
    assert!(is_pan("4111 1111 1111 1111"));
    assert!(is_pan("4111-1111-1111-1111"));
    // Luhn failures, unknown issuers, wrong lengths, bad separators.
    for bad in [
        "4111111111111112",
        "1234567812345670",
        "555555555555444",
        "2721000000000004",
        "37828224631000",
        "4111  1111 1111 1111",
        "4111x1111x1111x1111",
        "",
    ] {
        assert!(!is_pan(bad), "{bad}");
    }
    // 2720 is the last Mastercard 2-series prefix; 2721 is none.
    assert_eq!(card_brand(b"2720990000000000"), Some(CardBrand::Mastercard));
    assert_eq!(card_brand(b"2721000000000000"), None);
}

#[test]
fn ssns_respect_area_group_and_serial_rules() {
    for ok in ["123-45-6789", "123456789", "899-01-0001", "123 45 6789"] {
        assert!(is_ssn(ok), "{ok}");
    }
    for bad in [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "999-12-3456",
        "123-00-4567",
        "123-45-0000",
        "12-345-6789",
    ] {
        assert!(!is_ssn(bad), "{bad}");
    }
}

#[test]
fn ibans_by_country_length_and_mod97() {
    for ok in [
        "GB82 WEST 1234 5698 7654 32",
        "DE89370400440532013000",
        "FR1420041010050500013M02606",
        "nl91abna0417164300",
    ] {
        assert!(is_iban(ok), "{ok}");
    }
    for bad in ["GB82WEST12345698765433", "DE8937040044053201300", "XX89370400440532013000", "GB82-WEST"] {
        assert!(!is_iban(bad), "{bad}");
    }
}

#[test]
fn emails_phones_dates_and_secrets() {
    assert!(is_email("ada@example.com") && is_email("a.b+c@mail.example.co.uk"));
    assert!(!is_email("ada@example") && !is_email("@example.com") && !is_email("ada example.com"));
    for ok in ["+14155552671", "+44 20 7946 0958", "(415) 555-2671", "415-555-2671", "415.555.2671"] {
        assert!(is_phone(ok), "{ok}");
    }
    for bad in ["12345", "+0123456789", "+1234", "415-555-267"] {
        assert!(!is_phone(bad), "{bad}");
    }
    assert!(
        is_plausible_date("1990-02-28") && is_plausible_date("02/29/2000") && is_plausible_date("31.12.1985")
    );
    assert!(
        !is_plausible_date("1990-02-30")
            && !is_plausible_date("1899-01-01")
            && !is_plausible_date("1990-13-01")
    );
    for ok in [
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAIOSFODNN7EXAMPLE",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQ...",
    ] {
        assert!(is_secret(ok), "{ok}");
    }
    for bad in ["AKIA123", "sk_live_short", "ghp_short", "hello.world.again", "akiaiosfodnn7example"] {
        assert!(!is_secret(bad), "{bad}");
    }
}

fn class_at(doc: &Value, path: &str) -> Vec<DataClass> {
    classify_json(doc).findings.into_iter().filter(|f| f.path == path).map(|f| f.class).collect()
}

#[test]
fn classification_by_field_name() {
    let doc = json!({
        "cardNumber": "not a number", "password": "hunter2", "email": "not-an-email",
        "phone": "call me", "name": "Ada", "dob": "1990-02-28", "amount": 10,
    });
    let c = classify_json(&doc);
    assert_eq!(c.level, Level::Restricted);
    assert_eq!(class_at(&doc, "/cardNumber"), [DataClass::Pan]);
    assert_eq!(class_at(&doc, "/password"), [DataClass::Password]);
    assert_eq!(class_at(&doc, "/email"), [DataClass::Email]);
    assert_eq!(class_at(&doc, "/name"), [DataClass::PersonName]);
    assert_eq!(class_at(&doc, "/dob"), [DataClass::DateOfBirth]);
    assert!(class_at(&doc, "/amount").is_empty());
    // A dob field that holds no date is not a finding.
    assert!(class_at(&json!({ "dob": "unknown" }), "/dob").is_empty());
    // Confidential only.
    assert_eq!(classify_json(&json!({ "email": "x", "n": 1 })).level, Level::Confidential);
    assert_eq!(classify_json(&json!({ "amount": 1, "currency": "EUR" })).level, Level::Public);
    // Configurable names.
    let custom = Classifier::empty().field("member_no", DataClass::Ssn);
    assert_eq!(custom.classify(&json!({ "memberNo": "x" })).findings[0].class, DataClass::Ssn);
    assert!(custom.classify(&json!({ "email": "x" })).findings.is_empty());
}

#[test]
fn secret_field_names_with_a_prefix_or_suffix() {
    let secrets = json!({
        "new_password": "hunter2", "passwordConfirmation": "hunter2", "old-passwd": "x",
        "user_passphrase": "x", "card_cvv": "123", "cvv2": "123", "CVC2": "123",
        "security_code": "123", "securityCode": "123", "cardCode": "123", "userPIN": "1234",
        "card_pin": "1234", "rsa_private_key": "x", "privateKey": "x", "webhook_secret": "x",
        "client.secret": "x", "csrf_token": "x", "APIToken": "x", "pin_new": "1234",
    });
    let c = classify_json(&secrets);
    for name in secrets.as_object().unwrap().keys() {
        assert!(
            c.findings.iter().any(|f| f.path == format!("/{name}") && f.level == Level::Restricted),
            "{name}"
        );
    }
    assert_eq!(class_at(&secrets, "/new_password"), [DataClass::Password]);
    assert_eq!(class_at(&secrets, "/card_cvv"), [DataClass::Secret]);
    // Whole words only, and the secret's word ends the name.
    let plain = json!({
        "pinned": "yes", "spinner": "on", "isPinned": "no", "tokens_used": 12, "token_count": 3,
        "password_changed_at": "2024-01-01", "secret_arn": "arn:x",
        "keyboard": "qwerty", "passage": "x", "codes": "x", "pinyin": "x", "postcode": "x",
    });
    assert!(classify_json(&plain).findings.is_empty(), "{:?}", classify_json(&plain).findings);
    // Masked as the classifier says.
    let mut doc =
        json!({ "new_password": "hunter2", "card_cvv": "123", "cvv2": "123", "security_code": "123" });
    mask_json(&mut doc, &Policy::new(key()));
    assert_eq!(
        doc,
        json!({
            "new_password": "[REDACTED:password]", "card_cvv": "[REDACTED:secret]",
            "cvv2": "[REDACTED:secret]", "security_code": "[REDACTED:secret]",
        })
    );
}

/// One-time, verification and PIN codes are secrets: classified Restricted and masked.
/// Codes of other kinds, and names that only contain `otp` or `code`, are not.
#[test]
fn one_time_verification_and_pin_codes_are_secrets() {
    let secrets = json!({
        "pin_code": "4821", "pinCode": "4821", "otp": "482913", "otp_code": "482913",
        "OTPCode": "482913", "totp": "482913", "verification_code": "482913",
        "verificationCode": "482913", "mfa_code": "482913", "auth_code": "SplxlOBeZQQYbYS6WxSbIA",
        "one_time_code": "482913", "oneTimeCode": "482913", "recovery_code": "a1b2-c3d4",
        "otp_code_confirm": "482913",
    });
    let c = classify_json(&secrets);
    for name in secrets.as_object().unwrap().keys() {
        assert_eq!(class_at(&secrets, &format!("/{name}")), [DataClass::Secret], "{name}");
    }
    assert_eq!(c.level, Level::Restricted);
    let mut doc = secrets.clone();
    mask_json(&mut doc, &Policy::new(key()));
    for (name, value) in doc.as_object().unwrap() {
        assert_eq!(value, "[REDACTED:secret]", "{name}");
    }
    let plain = json!({
        "zip_code": "94105", "zipCode": "94105", "country_code": "DE", "currency_code": "EUR",
        "status_code": 200, "error_code": "E042", "promo_code": "SPRING24", "postcode": "SW1A 1AA",
        "code": "E042", "otp_attempts": 3, "mfa_enabled": "yes", "otp_sent_at": "2024-01-01",
        "time_code": "00:01:02", "hotpot": "x", "pincode_lookup": "x",
    });
    assert!(classify_json(&plain).findings.is_empty(), "{:?}", classify_json(&plain).findings);
    let mut doc = plain.clone();
    mask_json(&mut doc, &Policy::new(key()));
    assert_eq!(doc, plain);
}

#[test]
fn overlapping_spans_are_masked_as_their_union() {
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
    let text = format!("ada@example.com {pem}");
    let masked = lift::security::protection::mask_spans(&text, &Policy::new(key())).expect("masked");
    assert!(!masked.contains("MII") && !masked.contains("ada@"), "{masked}");
    assert_eq!(masked, "[REDACTED:secret]");
    // In a document too.
    let mut doc = json!({ "note": text });
    mask_json(&mut doc, &Policy::new(key()));
    assert!(!doc["note"].as_str().unwrap().contains("MII"), "{doc}");
}

#[test]
fn hash_keys_shorter_than_32_bytes_are_refused() {
    assert!(HashKey::try_new(Vec::new()).is_err());
    assert!(HashKey::try_new(*b"thirty-one bytes is one too few").is_err());
    assert!(HashKey::try_new(*b"test key: thirty-two bytes long!").is_ok());
    assert!(std::panic::catch_unwind(|| HashKey::new(Vec::new())).is_err(), "an empty key");
    // Random keys differ, so their hashes do.
    let hash = |k| Policy::new(k).mask_value(DataClass::Email, "ada@example.com");
    assert_ne!(hash(HashKey::random()), hash(HashKey::random()));
}

#[test]
fn classification_by_value_wins_over_field_name() {
    let doc = json!({
        "note": "4111111111111111",
        "items": [{ "memo": "refund to card 5555 5555 5555 4444 today" }],
        "reference": 378282246310005u64,
        "contact": "ada@example.com",
        "aws": "AKIAIOSFODNN7EXAMPLE",
        "api_secret": "Zq8x!LpR2v#Tn9Wm$Kd4",
        "bank": "GB82WEST12345698765432",
        "tax": "123-45-6789",
    });
    assert_eq!(classify_json(&doc).level, Level::Restricted);
    assert_eq!(class_at(&doc, "/note"), [DataClass::Pan]);
    assert_eq!(class_at(&doc, "/items/0/memo"), [DataClass::Pan]);
    assert_eq!(class_at(&doc, "/reference"), [DataClass::Pan]);
    assert_eq!(class_at(&doc, "/contact"), [DataClass::Email]);
    assert_eq!(class_at(&doc, "/aws"), [DataClass::Secret]);
    assert_eq!(class_at(&doc, "/api_secret"), [DataClass::Secret]);
    assert_eq!(class_at(&doc, "/bank"), [DataClass::Iban]);
    assert_eq!(class_at(&doc, "/tax"), [DataClass::Ssn]);
    // A PAN under an innocuous name is still Restricted.
    let f = &classify_json(&json!({ "greeting": "4111111111111111" })).findings[0];
    assert_eq!(f.level, Level::Restricted);
}

#[test]
fn each_masking_strategy() {
    let pan = "4111 1111 1111 1111";
    let masked = |strategy| {
        let policy = Policy::new(key()).strategy(DataClass::Pan, strategy);
        let mut doc = json!({ "card_number": pan });
        mask_json(&mut doc, &policy);
        doc["card_number"].as_str().unwrap().to_owned()
    };
    assert_eq!(masked(MaskStrategy::Partial), "************1111");
    assert_eq!(masked(MaskStrategy::Full), "*******************");
    assert_eq!(masked(MaskStrategy::Redact), "[REDACTED:pan]");
    // The synchronous masker has no vault: tokenize redacts.
    assert_eq!(masked(MaskStrategy::Tokenize), "[REDACTED:pan]");
    let hashed = masked(MaskStrategy::KeyedHash);
    assert_eq!(hashed.len(), 64);
    assert!(hashed.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(hashed, masked(MaskStrategy::KeyedHash), "keyed hash is deterministic");
    // Keyed: another key gives another hash; and it is no bare SHA-256 of the value.
    let hashing = |k| Policy::new(k).strategy(DataClass::Pan, MaskStrategy::KeyedHash);
    let other = hashing(HashKey::new(*b"another key, thirty-two bytes!!!"));
    assert_ne!(other.mask_value(DataClass::Pan, pan), hashing(key()).mask_value(DataClass::Pan, pan));
    // Spans inside text are replaced, the rest of the text kept.
    let mut doc = json!({ "memo": "card 4111-1111-1111-1111, mail ada@example.com, ssn 123-45-6789." });
    mask_json(&mut doc, &Policy::new(key()).strategy(DataClass::Email, MaskStrategy::Redact));
    assert_eq!(doc["memo"], "card ************1111, mail [REDACTED:email], ssn [REDACTED:ssn].");
    // Numbers that are PANs become masked strings; other values are left alone.
    let mut doc = json!({ "ref": 4111111111111111u64, "amount": 1250, "ok": true, "currency": "EUR" });
    mask_json(&mut doc, &Policy::new(key()));
    assert_eq!(doc, json!({ "ref": "************1111", "amount": 1250, "ok": true, "currency": "EUR" }));
}

/// Issuer prefixes and lengths to generate card numbers from.
const ISSUERS: &[(&str, usize)] = &[
    ("4", 13),
    ("4", 16),
    ("4", 19),
    ("51", 16),
    ("55", 16),
    ("2221", 16),
    ("2720", 16),
    ("34", 15),
    ("37", 15),
    ("6011", 16),
    ("644", 19),
    ("65", 17),
    ("3528", 16),
    ("3589", 19),
    ("300", 14),
    ("36", 14),
    ("38", 18),
    ("62", 16),
];

fn check_digit(body: &str) -> char {
    for d in b'0'..=b'9' {
        let mut s = body.as_bytes().to_vec();
        s.push(d);
        if luhn_valid(&s) {
            return char::from(d);
        }
    }
    unreachable!()
}

fn arb_pan() -> impl Strategy<Value = String> {
    (0..ISSUERS.len(), proptest::collection::vec(0u8..10, 19)).prop_map(|(i, digits)| {
        let (prefix, len) = ISSUERS[i];
        let mut body = prefix.to_owned();
        body.extend(digits.iter().take(len - prefix.len() - 1).map(|d| char::from(b'0' + d)));
        let c = check_digit(&body);
        body.push(c);
        body
    })
}

fn arb_ssn() -> impl Strategy<Value = String> {
    (1u32..900, 1u32..100, 1u32..10_000)
        .prop_filter("666 is never issued", |(a, _, _)| *a != 666)
        .prop_map(|(a, g, s)| format!("{a:03}-{g:02}-{s:04}"))
}

/// The PAN with separators: none, spaces or dashes every four digits.
fn formatted(pan: &str, sep: u8) -> String {
    match sep {
        0 => pan.to_owned(),
        _ => {
            let sep = if sep == 1 { " " } else { "-" };
            pan.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(sep)
        }
    }
}

fn nest(names: &[String], leaf: Value) -> Value {
    names.iter().rev().fold(leaf, |acc, name| json!({ name.clone(): [acc, { "n": 1 }] }))
}

fn leaks(output: &str, digits: &str, window: usize) -> bool {
    let stripped: String = output.chars().filter(|c| *c != ' ' && *c != '-').collect();
    (0..=digits.len() - window).any(|i| {
        let w = &digits[i..i + window];
        output.contains(w) || stripped.contains(w)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A tenant's keyed hashes join within it and with no other tenant's, and the tenant's
    /// key is not the policy's own.
    #[test]
    fn keyed_hashes_are_the_tenants_own(
        a in "[a-z0-9-]{1,12}",
        b in "[a-z0-9-]{1,12}",
        value in "[a-z]{1,8}@[a-z]{1,8}\\.com",
    ) {
        let policy = Policy::new(HashKey::new(*b"proptest key: 32 bytes long too!"));
        let hash = |tenant: &str| policy.for_tenant(tenant).mask_value(DataClass::Email, &value);
        prop_assert_eq!(hash(&a), hash(&a));
        prop_assert_ne!(hash(&a), policy.mask_value(DataClass::Email, &value));
        if a != b {
            prop_assert_ne!(hash(&a), hash(&b));
        }
    }

    #[test]
    fn generated_pans_are_detected(pan in arb_pan()) {
        prop_assert!(is_pan(&pan), "{}", pan);
    }

    #[test]
    fn no_pan_survives_masking(
        pan in arb_pan(),
        sep in 0u8..3,
        names in proptest::collection::vec("[a-z]{1,10}", 1..4),
        before in "[a-zA-Z ,.:]{0,20}",
        after in "[a-zA-Z ,.:]{0,20}",
        strategy in prop_oneof![Just(MaskStrategy::Partial), Just(MaskStrategy::Full), Just(MaskStrategy::KeyedHash), Just(MaskStrategy::Redact), Just(MaskStrategy::Tokenize)],
    ) {
        let text = format!("{before} {} {after}", formatted(&pan, sep));
        let mut doc = json!({
            "memo": text,
            "nested": nest(&names, json!(formatted(&pan, sep))),
            "in_text": nest(&names, json!(text)),
        });
        mask_json(&mut doc, &Policy::new(key()).strategy(DataClass::Pan, strategy));
        let out = serde_json::to_string(&doc).unwrap();
        prop_assert!(!leaks(&out, &pan, 12), "{} leaked in {}", pan, out);
    }

    #[test]
    fn no_ssn_survives_masking(
        ssn in arb_ssn(),
        names in proptest::collection::vec("[a-z]{1,10}", 1..4),
        before in "[a-zA-Z ,.:]{0,20}",
        after in "[a-zA-Z ,.:]{0,20}",
    ) {
        prop_assert!(is_ssn(&ssn));
        let text = format!("{before} {ssn} {after}");
        let mut doc = json!({
            "memo": text,
            "nested": nest(&names, json!(ssn)),
            "in_text": nest(&names, json!(text)),
        });
        mask_json(&mut doc, &Policy::new(key()));
        let out = serde_json::to_string(&doc).unwrap();
        let digits: String = ssn.chars().filter(char::is_ascii_digit).collect();
        prop_assert!(!out.contains(&ssn) && !leaks(&out, &digits, 9), "{} leaked in {}", ssn, out);
    }
}

async fn ok(_req: Request) -> Response {
    Response::new(Body::from("ok"))
}

fn app(region: &str) -> App {
    let rules = ResidencyRules::new().allow("eu", ["eu-west-1", "eu-central-1"]);
    App::new()
        .region(region)
        .post("/payments", ok)
        .layer(ResidencyLayer::new(rules).tenant("acme-eu", "eu"))
        // Outermost: plays the part of authentication, setting the principal.
        .layer(tower::util::MapRequestLayer::new(|mut req: Request| {
            let tenant = req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).map(str::to_owned);
            if let (Some(tenant), Some(ctx)) = (tenant, Context::of_mut(&mut req)) {
                ctx.set_principal(Principal::new("user-1", tenant));
            }
            req
        }))
}

async fn post(region: &str, tenant: &str, body: Value) -> Response {
    let req = http::Request::post("/payments")
        .header("x-tenant", tenant)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    app(region).into_service().oneshot(req).await.unwrap()
}

#[tokio::test]
async fn residency_violation_is_refused_with_451() {
    // The tenant's residency: eu data in us-east-1 is refused, in eu-west-1 served.
    let res = post("us-east-1", "acme-eu", json!({})).await;
    assert_eq!(res.status(), 451);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = serde_json::from_slice(res.body().as_bytes()).unwrap();
    assert_eq!(problem["status"], 451);
    assert_eq!(problem["type"], lift::security::protection::RESIDENCY_PROBLEM);
    assert_eq!(post("eu-west-1", "acme-eu", json!({})).await.status(), 200);
    assert_eq!(post("eu-central-1", "acme-eu", json!({})).await.status(), 200);
    // A body field tags the data when the tenant has no residency.
    assert_eq!(post("us-east-1", "other", json!({ "data_residency": "eu" })).await.status(), 451);
    assert_eq!(post("eu-west-1", "other", json!({ "data_residency": "eu" })).await.status(), 200);
    // Untagged or unrestricted data is served anywhere.
    assert_eq!(post("us-east-1", "other", json!({ "amount": 1 })).await.status(), 200);
    assert_eq!(post("us-east-1", "other", json!({ "data_residency": "global" })).await.status(), 200);
}

#[tokio::test]
async fn residency_without_a_known_region_fails_closed() {
    let rules = ResidencyRules::new().allow("eu", ["eu-west-1"]);
    let svc = tower::ServiceBuilder::new().layer(ResidencyLayer::new(rules)).service(tower::service_fn(
        |req: Request| async move { Ok::<_, std::convert::Infallible>(ok(req).await) },
    ));
    let mut req = http::Request::post("/").body(Body::from(r#"{"data_residency":"eu"}"#)).unwrap();
    req.extensions_mut().insert(Context::new("r1"));
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 451);
}

#[test]
fn retention_gives_expires_at_per_class() {
    let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let policy = RetentionPolicy::default();
    assert_eq!(policy.expires_at(DataClass::Pan, now), 1_700_000_000 + 90 * 86_400);
    assert_eq!(policy.expires_at(DataClass::Email, now), 1_700_000_000 + 365 * 86_400);
    assert_eq!(policy.expires_at_level(Level::Public, now), 1_700_000_000 + 7 * 365 * 86_400);
    let custom = policy
        .class(DataClass::Ssn, Duration::from_secs(3_600))
        .level(Level::Confidential, Duration::from_secs(60));
    assert_eq!(custom.expires_at(DataClass::Ssn, now), 1_700_003_600);
    assert_eq!(custom.expires_at(DataClass::Phone, now), 1_700_000_060);
    assert_eq!(custom.expires_at(DataClass::Pan, now), 1_700_000_000 + 90 * 86_400);
}
