//! The one number detector (`lift::sensitive`) through both of its users, the masker and
//! the log scrubber: recall on generated and hand-picked card numbers, SSNs and IBANs,
//! false positives on realistic look-alikes, no leak under any embedding, no panic.
//!
//! "Inside a digit run", as `lift::sensitive` defines it: a card number is found when it is
//! whole groups of a chain of digit groups joined by single spaces or dashes (so beside
//! other numbers separated by a space or dash), or anywhere inside a group of more than 19
//! digits (digits glued together). A card number glued to other digits into a group of 19
//! or fewer is one number, and a chain that is a USPS tracking number is none: the
//! generators below leave exactly those two cases out.
#![cfg(all(feature = "protection", feature = "observability"))]

use std::collections::BTreeMap;

use lift::middleware::logging::{scrub, tracing, tracing_subscriber, LogConfig, MemoryWriter};
use lift::security::protection::detect::scan_text;
use lift::security::protection::{classify_json, mask_json, mask_spans, DataClass, HashKey, Policy};
use lift::sensitive::{self, is_pan_digits, is_tracking_number, luhn_valid};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt;

fn policy() -> Policy {
    Policy::new(HashKey::new(*b"test key: thirty-two bytes long!"))
}

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

/// Every issuer range the detector knows, with the lengths the network issues.
/// A network: its name, its issuer prefix ranges and its lengths.
type Issuer = (&'static str, &'static [(u32, u32)], &'static [usize]);

const ISSUERS: &[Issuer] = &[
    ("visa", &[(4, 4)], &[13, 16, 19]),
    ("mastercard", &[(51, 55), (2221, 2720)], &[16]),
    ("amex", &[(34, 34), (37, 37)], &[15]),
    ("discover", &[(6011, 6011), (644, 649), (65, 65)], &[16, 17, 18, 19]),
    ("diners", &[(300, 305), (3095, 3095), (36, 36), (38, 39)], &[14, 15, 16, 17, 18, 19]),
    ("jcb", &[(3528, 3589)], &[16, 17, 18, 19]),
    ("unionpay", &[(62, 62)], &[16, 17, 18, 19]),
    ("maestro", &[(50, 50), (56, 58), (63, 63), (67, 67)], &[12, 13, 14, 15, 16, 17, 18, 19]),
    ("mir", &[(2200, 2204)], &[16, 17, 18, 19]),
    ("rupay", &[(60, 60), (81, 82), (508, 508)], &[16]),
    (
        "elo",
        &[
            (401178, 401179),
            (438935, 438935),
            (506699, 506778),
            (509000, 509999),
            (636297, 636297),
            (650031, 650033),
            (655021, 655058),
        ],
        &[16],
    ),
    ("verve", &[(506099, 506198), (507865, 507964), (650002, 650027)], &[16, 18, 19]),
    ("troy", &[(9792, 9792)], &[16]),
    ("uatp", &[(1, 1)], &[15]),
];

fn width(n: u32) -> usize {
    n.to_string().len()
}

/// A card number of a random issuer range and length: prefix, random digits, Luhn digit.
fn arb_pan() -> impl Strategy<Value = String> {
    (0..ISSUERS.len(), any::<u64>(), proptest::collection::vec(0u8..10, 19)).prop_map(|(i, pick, digits)| {
        let (_, ranges, lengths) = ISSUERS[i];
        let (lo, hi) = ranges[(pick % ranges.len() as u64) as usize];
        let p = lo + ((pick >> 8) % u64::from(hi - lo + 1)) as u32;
        let len = lengths[((pick >> 32) % lengths.len() as u64) as usize];
        let mut body = format!("{p:0w$}", w = width(hi));
        body.extend(digits.iter().take(len - body.len() - 1).map(|d| char::from(b'0' + d)));
        let check =
            (b'0'..=b'9').find(|d| luhn_valid(format!("{body}{}", char::from(*d)).as_bytes())).unwrap();
        body.push(char::from(check));
        body
    })
}

/// The card number as people write it: 0 plain, 1 spaced, 2 dashed (fours, or 4-6-5 for
/// fifteen digits).
fn layout(pan: &str, style: u8) -> String {
    let sep = match style {
        0 => return pan.to_owned(),
        1 => " ",
        _ => "-",
    };
    if pan.len() == 15 {
        return [&pan[..4], &pan[4..10], &pan[10..]].join(sep);
    }
    pan.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(sep)
}

fn arb_ssn() -> impl Strategy<Value = String> {
    (1u32..900, 1u32..100, 1u32..10_000)
        .prop_filter("666 is never issued", |(a, _, _)| *a != 666)
        .prop_map(|(a, g, s)| format!("{a:03}{g:02}{s:04}"))
}

/// Words of log lines and notes around the numbers.
fn arb_words() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("paid"),
            Just("customer"),
            Just("Ada Lovelace"),
            Just("refund"),
            Just("ref"),
            Just("card"),
            Just("on file:"),
            Just("applicant"),
            Just("approved"),
            Just("São Paulo"),
            Just("12 Analytical Engine Way"),
            Just("N1 9GU"),
            Just("note"),
            Just("(via web)"),
            Just("—"),
        ],
        0..5,
    )
    .prop_map(|w| w.join(" "))
}

fn digits(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, len).prop_map(|d| d.iter().map(|d| char::from(b'0' + d)).collect())
}

/// A text with a secret number in it: the text, where the number is written, its digits.
#[derive(Debug, Clone)]
struct Planted {
    text: String,
    at: std::ops::Range<usize>,
    secret: String,
}

fn plant(before: &str, written: &str, after: &str, secret: &str) -> Planted {
    let text = format!("{before}{written}{after}");
    Planted { at: before.len()..before.len() + written.len(), text, secret: secret.to_owned() }
}

fn only_digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// Whether the chain of digit groups around `text[at]` is a USPS tracking number by
/// `lift::sensitive`'s rule (written in one piece or in groups of four): no card number.
fn chain_is_tracking(text: &str, at: std::ops::Range<usize>) -> bool {
    let b = text.as_bytes();
    let joins =
        |i: usize| matches!(b[i], b' ' | b'-') && b[i - 1].is_ascii_digit() && b[i + 1].is_ascii_digit();
    let (mut s, mut e) = (at.start, at.end);
    while s > 0 && (b[s - 1].is_ascii_digit() || (s >= 2 && joins(s - 1))) {
        s -= 1;
    }
    while e < b.len() && (b[e].is_ascii_digit() || (e + 1 < b.len() && joins(e))) {
        e += 1;
    }
    let groups: Vec<&str> = text[s..e].split([' ', '-']).collect();
    let fours = groups.len() == 1
        || groups[..groups.len() - 1].iter().all(|g| g.len() == 4) && groups[groups.len() - 1].len() <= 4;
    fours && is_tracking_number(only_digits(&text[s..e]).as_bytes())
}

/// Card numbers in a context: `alone`, `in_text`, `digits_before`, `digits_after`,
/// `digits_both` (separated by a space or dash), `glued` (into a group of 20+ digits).
fn arb_pan_in(context: &'static str) -> impl Strategy<Value = Planted> {
    (arb_pan(), 0u8..3, arb_words(), arb_words(), digits(1..=20), digits(1..=20), 0usize..4, 0usize..5)
        .prop_map(move |(pan, style, w1, w2, d1, d2, sep, punct)| {
            let written = layout(&pan, style);
            let sep = [" ", "-", " ", ", "][sep];
            let punct = [".", ",", ")", "", ";"][punct];
            match context {
                "alone" => plant("", &written, "", &pan),
                "in_text" => plant(&format!("{w1} "), &written, &format!("{punct} {w2}"), &pan),
                "digits_before" => plant(&format!("{w1} {d1}{sep}"), &written, &format!(" {w2}"), &pan),
                "digits_after" => plant(&format!("{w1} "), &written, &format!("{sep}{d2} {w2}"), &pan),
                "digits_both" => plant(&format!("{d1}{sep}"), &written, &format!("{sep}{d2}{punct}"), &pan),
                _ => {
                    // Glued: no separator, and more than 19 digits in all.
                    let need = 20usize.saturating_sub(pan.len() + d1.len() + d2.len());
                    let d2 = format!("{d2}{}", "7".repeat(need));
                    plant(&format!("{w1} {d1}"), &pan, &format!("{d2} {w2}"), &pan)
                }
            }
        })
        .prop_filter("a USPS tracking number by rule", |p| !chain_is_tracking(&p.text, p.at.clone()))
}

/// SSNs, dashed or spaced, in a context like [`arb_pan_in`]'s (neighbours by a space).
fn arb_ssn_in(context: &'static str) -> impl Strategy<Value = Planted> {
    (arb_ssn(), any::<bool>(), arb_words(), arb_words(), digits(1..=12), digits(1..=12)).prop_map(
        move |(ssn, dashed, w1, w2, d1, d2)| {
            let sep = if dashed { "-" } else { " " };
            let written = format!("{}{sep}{}{sep}{}", &ssn[..3], &ssn[3..5], &ssn[5..]);
            match context {
                "alone" => plant("", &written, "", &ssn),
                "in_text" => plant(&format!("{w1} "), &written, &format!(". {w2}"), &ssn),
                "digits_before" => plant(&format!("{w1} {d1} "), &written, &format!(" {w2}"), &ssn),
                "digits_after" => plant(&format!("{w1} "), &written, &format!(" {d2} {w2}"), &ssn),
                _ => plant(&format!("{d1} "), &written, &format!(" {d2}"), &ssn),
            }
        },
    )
}

/// IBANs of a few countries, compact or in groups of four, in free text.
fn arb_iban() -> impl Strategy<Value = Planted> {
    let countries: &[(&str, usize, usize)] = &[
        ("DE", 22, 0),
        ("GB", 22, 4),
        ("FR", 27, 0),
        ("NL", 18, 4),
        ("ES", 24, 0),
        ("IT", 27, 1),
        ("BE", 16, 0),
        ("PL", 28, 0),
    ];
    (0..countries.len(), digits(30..=30), "[A-Z]{4}", any::<bool>(), arb_words()).prop_map(
        move |(c, digits, letters, spaced, words)| {
            let (country, len, nletters) = countries[c];
            let bban = format!("{}{}", &letters[..nletters], &digits[..len - 4 - nletters]);
            let numeric: String = format!("{bban}{country}00")
                .chars()
                .map(|ch| {
                    if ch.is_ascii_digit() {
                        ch.to_string()
                    } else {
                        (ch as u32 - 'A' as u32 + 10).to_string()
                    }
                })
                .collect();
            let rem = numeric.bytes().fold(0u32, |r, d| (r * 10 + u32::from(d - b'0')) % 97);
            let compact = format!("{country}{:02}{bban}", 98 - rem);
            assert!(sensitive::is_iban(&compact), "{compact}");
            let written = if spaced {
                compact
                    .as_bytes()
                    .chunks(4)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                compact.clone()
            };
            plant(&format!("wire to {words} "), &written, ". thanks", &only_digits(&compact))
        },
    )
}

fn hex(len: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..16, len)
        .prop_map(|d| d.iter().map(|d| char::from_digit(u32::from(*d), 16).unwrap()).collect())
}

/// Realistic numbers that are none of a card number, an SSN or an IBAN.
fn arb_lookalike(category: &'static str) -> BoxedStrategy<String> {
    match category {
        "uuid" => prop_oneof![
            (hex(8), hex(4), hex(3), 8u8..12, hex(3), hex(12))
                .prop_map(|(a, b, c, v, d, e)| format!("request {a}-{b}-4{c}-{v:x}{d}-{e} done")),
            // Mostly digits: every group a digit run.
            "[0-9]{8}-[0-9]{4}-4[0-9]{3}-[89][0-9]{3}-[0-9]{12}".prop_map(|u| format!("id={u}")),
        ]
        .boxed(),
        "timestamp" => (2000u32..2040, 1u32..13, 1u32..29, 0u32..24, 0u32..60, 0u32..60, 0u32..1000, 0u8..4)
            .prop_map(|(y, mo, d, h, mi, s, ms, f)| match f {
                0 => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z"),
                1 => format!("at {y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
                2 => format!("{y}-{mo:02}-{d:02} {y}-{mo:02}-{:02} {h:02}:{mi:02}", d + 1),
                _ => format!(
                    "{y}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z {y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+01:00"
                ),
            })
            .boxed(),
        "epoch_ms" => (1_000_000_000_000u64..2_000_000_000_000, 0u64..100_000, any::<bool>())
            .prop_map(|(t, dt, two)| if two { format!("ts={t} {}", t + dt) } else { format!("{t}") })
            .boxed(),
        "isbn" => (
            prop_oneof![
                Just("0"),
                Just("1"),
                Just("2"),
                Just("3"),
                Just("4"),
                Just("7"),
                Just("85"),
                Just("88"),
                Just("612"),
                Just("953"),
                Just("9971")
            ],
            digits(9..=9),
            1usize..6,
            0u8..3,
            any::<bool>(),
        )
            .prop_map(|(group, body, cut, style, is13)| {
                let rest = &body[..9 - group.len()];
                let cut = cut.min(rest.len() - 1);
                let (publisher, title) = rest.split_at(cut);
                let prefix = if is13 { "978" } else { "" };
                let payload = format!("{prefix}{group}{publisher}{title}");
                let check = if is13 {
                    let s: u32 = payload
                        .bytes()
                        .enumerate()
                        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 1 } else { 3 })
                        .sum();
                    char::from(b'0' + ((10 - s % 10) % 10) as u8)
                } else {
                    let s: u32 =
                        payload.bytes().enumerate().map(|(i, d)| u32::from(d - b'0') * (10 - i as u32)).sum();
                    match (11 - s % 11) % 11 {
                        10 => 'X',
                        c => char::from(b'0' + c as u8),
                    }
                };
                match style {
                    0 => format!("ISBN {payload}{check}"),
                    1 if is13 => format!("ISBN {prefix}-{group}-{publisher}-{title}-{check}"),
                    _ if is13 => format!("isbn: {prefix}{group}-{publisher}-{title}-{check}"),
                    _ => format!("isbn: {group}-{publisher}-{title}-{check}"),
                }
            })
            .boxed(),
        "tracking" => prop_oneof![
            ("[0-9A-Z]{6}", digits(10..=10)).prop_map(|(s, d)| format!("UPS 1Z{s}{d}")),
            digits(12..=12).prop_map(|d| format!("fedex {d}")),
            digits(15..=15).prop_map(|d| format!("FedEx Ground {d}")),
            (prop_oneof![Just("92"), Just("93"), Just("94"), Just("95")], digits(19..=19), any::<bool>())
                .prop_map(|(p, d, spaced)| usps(&format!("{p}{d}"), spaced)),
            (prop_oneof![Just("70"), Just("71"), Just("03")], digits(17..=17), any::<bool>())
                .prop_map(|(p, d, spaced)| usps(&format!("{p}{d}"), spaced)),
        ]
        .boxed(),
        "order_id" => prop_oneof![
            (2015u32..2030, digits(6..=6)).prop_map(|(y, d)| format!("ORD-{y}-{d}")),
            digits(5..=5).prop_map(|d| format!("Order #{d}")),
            digits(10..=10).prop_map(|d| format!("order_id={d}")),
            (digits(3..=3), digits(7..=7), digits(7..=7))
                .prop_map(|(a, b, c)| format!("order {a}-{b}-{c} shipped")),
            (2015u32..2030, 1u32..13, 1u32..29, digits(4..=4))
                .prop_map(|(y, m, d, n)| format!("PO-{y}{m:02}{d:02}-{n}")),
            digits(8..=8).prop_map(|d| format!("INV{d}")),
        ]
        .boxed(),
        "phone" => prop_oneof![
            (200u32..1000, 200u32..1000, digits(4..=4)).prop_map(|(a, b, c)| format!("+1{a}{b}{c}")),
            (200u32..1000, 200u32..1000, digits(4..=4)).prop_map(|(a, b, c)| format!("call ({a}) {b}-{c}")),
            (200u32..1000, 200u32..1000, digits(4..=4))
                .prop_map(|(a, b, c)| format!("tel {a}-{b}-{c} / {a}.{b}.{c}")),
            (digits(4..=4), digits(4..=4)).prop_map(|(a, b)| format!("+44 20 {a} {b}, 020 {a} {b}")),
            digits(8..=8).prop_map(|d| format!("+49 30 {d}")),
            (digits(2..=2), digits(2..=2), digits(2..=2), digits(2..=2))
                .prop_map(|(a, b, c, d)| format!("+33 6 {a} {b} {c} {d}")),
            (digits(5..=5), digits(5..=5)).prop_map(|(a, b)| format!("+91 9{} {b}", &a[1..])),
            (digits(4..=4), digits(4..=4)).prop_map(|(a, b)| format!("+86 138 {a} {b}")),
            (digits(5..=5), digits(4..=4)).prop_map(|(a, b)| format!("+55 11 9{}-{b}", &a[1..])),
            (digits(4..=4), digits(4..=4)).prop_map(|(a, b)| format!("+61 4{} {a} {b}", &b[..2])),
        ]
        .boxed(),
        "digest" => (
            prop_oneof![Just(32usize), Just(40), Just(64)],
            hex(64),
            arb_pan(),
            digits(12..=30),
            0u8..3,
            0usize..20,
        )
            .prop_map(|(len, h, pan, run, inject, at)| {
                let mut h = h[..len].to_owned();
                let run = match inject {
                    0 => String::new(),
                    1 => pan,
                    _ => run,
                };
                if !run.is_empty() {
                    let at = at.min(len - run.len() - 2);
                    h.replace_range(at..at + run.len(), &run);
                }
                if !h.bytes().any(|c| c.is_ascii_alphabetic()) {
                    h.replace_range(len - 1.., "f");
                }
                match len {
                    32 => format!("md5 {h}"),
                    40 => format!("commit {h}"),
                    _ => format!("sha256:{h}"),
                }
            })
            .boxed(),
        _ => prop_oneof![
            (1u32..1000, 0u32..1000, 0u32..1000, 0u32..100)
                .prop_map(|(a, b, c, d)| format!("total ${a},{b:03},{c:03}.{d:02}")),
            (1u32..100, 0u32..1000, 0u32..100).prop_map(|(a, b, c)| format!("EUR {a} {b:03},{c:02}")),
            (0u64..100_000_000, 0u32..100).prop_map(|(a, c)| format!("{a}.{c:02} USD")),
            (0u64..10_000_000_000u64).prop_map(|a| format!("amount={a} cents")),
            (1u32..1000, 0u32..1000, 0u32..1000, 0u32..100)
                .prop_map(|(a, b, c, d)| format!("USD {a} {b:03} {c:03}.{d:02}")),
        ]
        .boxed(),
    }
}

/// A USPS number: the payload, its GS1 check digit, plain or in groups of four.
fn usps(payload: &str, spaced: bool) -> String {
    let s: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    let full = format!("{payload}{}", (10 - s % 10) % 10);
    assert!(is_tracking_number(full.as_bytes()), "{full}");
    if spaced {
        format!(
            "USPS {}",
            full.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(" ")
        )
    } else {
        format!("usps {full}")
    }
}

/// `n` values of a strategy from a fixed seed.
fn sample<S: Strategy>(strategy: S, n: usize, seed: u8) -> Vec<S::Value> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    (0..n).map(|_| strategy.new_tree(&mut runner).expect("a value").current()).collect()
}

// ---------------------------------------------------------------------------------------
// The paths every item goes through
// ---------------------------------------------------------------------------------------

/// Whether `output` still shows the secret: all of it, or ten of its digits in a row
/// (seven for an SSN), separators dropped.
fn leaks(output: &str, secret: &str) -> bool {
    let stripped: String = output.chars().filter(|c| *c != ' ' && *c != '-').collect();
    let window = if secret.len() <= 9 { 7 } else { 10 };
    stripped.contains(secret)
        || (0..=secret.len() - window).any(|i| stripped.contains(&secret[i..i + window]))
}

/// Logs each text in a message, a string field and a JSON body, through the JSON layer.
fn log_lines(texts: &[&str]) -> Vec<String> {
    let logs = MemoryWriter::new();
    let layer = LogConfig::new().writer(logs.clone()).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for text in texts {
            let body = json!({ "memo": text }).to_string();
            tracing::info!(note = %text, body = %body, "customer said: {}", text);
        }
    });
    logs.lines()
}

/// What each path missed, per path name.
fn misses(items: &[Planted]) -> BTreeMap<&'static str, usize> {
    let policy = policy();
    let mut missed: BTreeMap<&'static str, usize> = BTreeMap::new();
    let texts: Vec<&str> = items.iter().map(|p| p.text.as_str()).collect();
    let lines = log_lines(&texts);
    assert_eq!(lines.len(), items.len());
    for (p, line) in items.iter().zip(&lines) {
        let covered = sensitive::find(&p.text).iter().any(|s| s.start <= p.at.start && s.end >= p.at.end);
        let masked = mask_spans(&p.text, &policy).unwrap_or_else(|| p.text.clone());
        let mut doc = json!({ "greeting": p.text, "items": [{ "memo": p.text }] });
        mask_json(&mut doc, &policy);
        let classified = classify_json(&json!({ "greeting": p.text }))
            .findings
            .iter()
            .any(|f| matches!(f.class, DataClass::Pan | DataClass::Ssn | DataClass::Iban));
        for (path, ok) in [
            ("detector", covered),
            ("mask_spans", !leaks(&masked, &p.secret)),
            ("mask_json", !leaks(&doc.to_string(), &p.secret)),
            ("classify", classified),
            ("scrub", !leaks(&scrub(&p.text), &p.secret)),
            ("log_line", !leaks(line, &p.secret)),
        ] {
            *missed.entry(path).or_default() += usize::from(!ok);
            if !ok && missed[path] <= 3 {
                eprintln!("  {path} missed {:?} in {:?}", p.secret, p.text);
            }
        }
    }
    missed
}

/// What each path flagged, per path name.
fn flags(texts: &[String]) -> BTreeMap<&'static str, usize> {
    let mut flagged: BTreeMap<&'static str, usize> = BTreeMap::new();
    for text in texts {
        let scrubbed = scrub(text);
        for (path, hit) in [
            ("detector", !sensitive::find(text).is_empty()),
            (
                "masker",
                scan_text(text)
                    .iter()
                    .any(|m| matches!(m.class, DataClass::Pan | DataClass::Ssn | DataClass::Iban)),
            ),
            (
                "scrub",
                ["[REDACTED:pan]", "[REDACTED:ssn]", "[REDACTED:iban]"].iter().any(|m| scrubbed.contains(m)),
            ),
        ] {
            *flagged.entry(path).or_default() += usize::from(hit);
            if hit && flagged[path] <= 2 {
                eprintln!("  {path} flagged {text:?}");
            }
        }
    }
    flagged
}

// ---------------------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------------------

const PER_CATEGORY: usize = 3000;

#[test]
fn recall_is_total_and_false_positives_rare_on_the_generated_corpus() {
    let mut failures = Vec::new();
    println!("recall (items missed per path), {PER_CATEGORY} generated items per category:");
    let mut recall: Vec<(String, Vec<Planted>)> = Vec::new();
    for (k, context) in
        ["alone", "in_text", "digits_before", "digits_after", "digits_both", "glued"].into_iter().enumerate()
    {
        recall.push((format!("pan/{context}"), sample(arb_pan_in(context), PER_CATEGORY, 10 + k as u8)));
    }
    for (k, context) in
        ["alone", "in_text", "digits_before", "digits_after", "digits_both"].into_iter().enumerate()
    {
        recall.push((format!("ssn/{context}"), sample(arb_ssn_in(context), PER_CATEGORY, 30 + k as u8)));
    }
    recall.push(("iban/in_text".to_owned(), sample(arb_iban(), PER_CATEGORY, 40)));
    for (name, items) in &recall {
        for p in items.iter().filter(|_| name.starts_with("pan")) {
            assert!(is_pan_digits(p.secret.as_bytes()), "the generator made a non-card {}", p.secret);
        }
        let missed = misses(items);
        let figures: Vec<String> = missed
            .iter()
            .map(|(path, n)| format!("{path} {:.2}%", 100.0 * (items.len() - n) as f64 / items.len() as f64))
            .collect();
        println!("  {name:<18} recall: {}", figures.join(", "));
        if missed.values().any(|n| *n > 0) {
            failures.push(format!("{name}: {missed:?}"));
        }
    }
    println!("false positives, {PER_CATEGORY} generated look-alikes per category:");
    for (k, category) in
        ["uuid", "timestamp", "epoch_ms", "isbn", "tracking", "order_id", "phone", "digest", "money"]
            .into_iter()
            .enumerate()
    {
        let texts = sample(arb_lookalike(category), PER_CATEGORY, 60 + k as u8);
        let flagged = flags(&texts);
        let figures: Vec<String> = flagged
            .iter()
            .map(|(path, n)| format!("{path} {:.2}%", 100.0 * *n as f64 / texts.len() as f64))
            .collect();
        println!("  {category:<10} FP: {}", figures.join(", "));
        if flagged.values().any(|n| *n * 100 >= texts.len()) {
            failures.push(format!("{category}: {flagged:?} of {}", texts.len()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn tracking_numbers_by_kind() {
    // The tracking category's parts, shown apart: a 15-digit FedEx number is the shape of
    // an Amex or UATP card number, so some are flagged whatever the detector does.
    println!("tracking false positives by kind, {PER_CATEGORY} each:");
    let kinds: [(&str, BoxedStrategy<String>); 4] = [
        ("ups", ("[0-9A-Z]{6}", digits(10..=10)).prop_map(|(s, d)| format!("UPS 1Z{s}{d}")).boxed()),
        ("fedex12", digits(12..=12).prop_map(|d| format!("fedex {d}")).boxed()),
        ("fedex15", digits(15..=15).prop_map(|d| format!("FedEx Ground {d}")).boxed()),
        ("usps22", (digits(19..=19), any::<bool>()).prop_map(|(d, s)| usps(&format!("94{d}"), s)).boxed()),
    ];
    for (k, (kind, strategy)) in kinds.into_iter().enumerate() {
        let texts = sample(strategy, PER_CATEGORY, 90 + k as u8);
        let flagged = flags(&texts);
        println!("  {kind:<8} FP detector {:.2}%", 100.0 * flagged["detector"] as f64 / texts.len() as f64);
        // The detector, the masker and the scrubber agree: one engine.
        assert_eq!(flagged["detector"], flagged["masker"], "{kind}");
        assert_eq!(flagged["detector"], flagged["scrub"], "{kind}");
        if kind != "fedex15" {
            assert!(flagged["detector"] * 100 < texts.len(), "{kind}: {flagged:?}");
        }
    }
}

#[derive(serde::Deserialize)]
struct Fixture {
    sensitive: Vec<FixtureSecret>,
    benign: Vec<FixtureBenign>,
}

#[derive(serde::Deserialize)]
struct FixtureSecret {
    kind: String,
    case: String,
    text: String,
    written: String,
    secret: String,
}

#[derive(serde::Deserialize)]
struct FixtureBenign {
    category: String,
    text: String,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/sensitive_corpus.json")).expect("the fixture parses")
}

#[test]
fn hand_picked_numbers_never_survive_and_look_alikes_stay() {
    let f = fixture();
    let planted: Vec<Planted> = f
        .sensitive
        .iter()
        .map(|s| {
            if s.kind == "pan" {
                assert!(is_pan_digits(s.secret.as_bytes()), "{}: {} is no card number", s.case, s.secret);
            }
            let start =
                s.text.find(&s.written).unwrap_or_else(|| panic!("{}: not written in the text", s.case));
            Planted { text: s.text.clone(), at: start..start + s.written.len(), secret: s.secret.clone() }
        })
        .collect();
    for p in &planted {
        let missed = misses(std::slice::from_ref(p));
        assert!(missed.values().all(|n| *n == 0), "{:?}: {missed:?}", p.text);
    }
    let texts: Vec<String> = f.benign.iter().map(|b| b.text.clone()).collect();
    for (b, text) in f.benign.iter().zip(&texts) {
        let flagged = flags(std::slice::from_ref(text));
        assert!(flagged.values().all(|n| *n == 0), "{} {text:?}: {flagged:?}", b.category);
        // Nothing to redact: the scrubber returns the text itself.
        assert_eq!(scrub(text), text.as_str());
    }
}

#[test]
fn masking_a_maestro_number_under_an_innocuous_field() {
    let mut doc = json!({ "reference": "6759649826438453", "n": 6759649826438453u64 });
    mask_json(&mut doc, &policy());
    assert_eq!(doc, json!({ "reference": "************8453", "n": "************8453" }));
}

// ---------------------------------------------------------------------------------------
// The log path, end to end
// ---------------------------------------------------------------------------------------

#[test]
fn a_log_line_never_carries_the_digits_wherever_they_are() {
    let logs = MemoryWriter::new();
    let layer = LogConfig::new().writer(logs.clone()).build().unwrap();
    let body =
        r#"{"ssn":"673756059","card":6759649826438453,"holder":"Ada","iban":"DE89 3704 0044 0532 0130 00"}"#;
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!("charged 6759 6498 2643 8453 for applicant 673 75 6059");
        tracing::info!(note = "card 6759-6498-2643-8453, ssn 673-75-6059", "string field");
        tracing::info!(card = 6759649826438453u64, ssn = 673756059u64, "integer fields");
        tracing::info!(card = 6759649826438453i64, ssn = 673756059i64, "signed integer fields");
        tracing::info!(card = 6759649826438453.0f64, ssn = 673756059.0f64, "float fields");
        tracing::info!(amount = 6759649826438453.0f64, "a card number as a float under any name");
        tracing::info!(body = %body, "logged body");
        tracing::info!(ssn = "673756059", card = "6759649826438453", "named string fields");
        let _span = tracing::info_span!("request", card = 6759649826438453u64, ssn = 673756059u64).entered();
        tracing::info!("inside a span with number fields");
    });
    let out = logs.contents();
    assert_eq!(logs.lines().len(), 9);
    for secret in ["6759649826438453", "673756059", "89370400440532013000"] {
        assert!(!leaks(&out, secret), "{secret} leaked:\n{out}");
    }
    // Plain numbers stay numbers.
    let logs = MemoryWriter::new();
    let layer = LogConfig::new().writer(logs.clone()).build().unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(amount = 1250u64, ratio = 0.25f64, ts = 1705311000123u64, card = "visa", "ok");
    });
    let line: Value = serde_json::from_str(&logs.lines()[0]).unwrap();
    assert_eq!(
        (&line["amount"], &line["ratio"], &line["ts"], &line["card"]),
        (&json!(1250), &json!(0.25), &json!(1705311000123u64), &json!("visa"))
    );
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

fn arb_any_context() -> impl Strategy<Value = Planted> {
    prop_oneof![
        arb_pan_in("alone"),
        arb_pan_in("in_text"),
        arb_pan_in("digits_before"),
        arb_pan_in("digits_after"),
        arb_pan_in("digits_both"),
        arb_pan_in("glued"),
    ]
}

/// Text of card numbers, SSNs, an IBAN, loose digits, separators and letters run together.
fn arb_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            (arb_pan(), 0u8..3).prop_map(|(p, s)| layout(&p, s)),
            arb_ssn().prop_map(|s| format!("{}-{}-{}", &s[..3], &s[3..5], &s[5..])),
            digits(1..=12),
            Just(" ".to_owned()),
            Just("-".to_owned()),
            Just(". ".to_owned()),
            "[cdfxGBDEFRNL]{1,3}",
            Just("DE89 3704 0044 0532 0130 00".to_owned()),
        ],
        0..12,
    )
    .prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// One engine: the masker's number matches and the scrubber's redactions are exactly
    /// the detector's spans, on any mix of numbers, separators and letters.
    #[test]
    fn the_masker_and_the_scrubber_find_what_the_detector_finds(text in arb_soup()) {
        let spans = sensitive::find(&text);
        let detected: Vec<(usize, usize)> = spans.iter().map(|s| (s.start, s.end)).collect();
        let masker: Vec<(usize, usize)> = scan_text(&text)
            .into_iter()
            .filter(|m| matches!(m.class, DataClass::Pan | DataClass::Ssn | DataClass::Iban))
            .map(|m| (m.start, m.end))
            .collect();
        prop_assert_eq!(&masker, &detected, "{}", text);
        let mut expected = String::new();
        let mut at = 0;
        for s in &spans {
            expected.push_str(&text[at..s.start]);
            expected.push_str(match s.kind {
                sensitive::Kind::Pan => "[REDACTED:pan]",
                sensitive::Kind::Ssn => "[REDACTED:ssn]",
                _ => "[REDACTED:iban]",
            });
            at = s.end;
        }
        expected.push_str(&text[at..]);
        prop_assert_eq!(scrub(&text).into_owned(), expected, "{}", text);
    }

    /// Masking never leaks: for any card number of any brand, written any way, at any
    /// place among random text and neighbouring digits, neither the masker nor the
    /// scrubber leaves ten of its digits in a row (so never its first twelve, nor the
    /// whole), and the detector's span covers it whole.
    #[test]
    fn no_card_number_survives_anywhere(p in arb_any_context(), noise in "[a-zA-Z0-9 ,.:é]{0,30}") {
        // The noise ends a sentence, so it never joins the number's chain.
        let text = format!("{noise}. {}", p.text);
        let at = noise.len() + 2 + p.at.start..noise.len() + 2 + p.at.end;
        prop_assert!(sensitive::find(&text).iter().any(|s| s.start <= at.start && s.end >= at.end), "{}", text);
        let masked = mask_spans(&text, &policy()).unwrap_or_default();
        prop_assert!(!leaks(&masked, &p.secret), "{} -> {}", text, masked);
        let scrubbed = scrub(&text);
        prop_assert!(!leaks(&scrubbed, &p.secret), "{} -> {}", text, scrubbed);
    }

    #[test]
    fn no_ssn_survives_anywhere(
        p in prop_oneof![arb_ssn_in("alone"), arb_ssn_in("in_text"), arb_ssn_in("digits_before"), arb_ssn_in("digits_after"), arb_ssn_in("digits_both")],
    ) {
        let masked = mask_spans(&p.text, &policy()).unwrap_or_default();
        prop_assert!(!leaks(&masked, &p.secret), "{} -> {}", p.text, masked);
        prop_assert!(!leaks(&scrub(&p.text), &p.secret), "{}", p.text);
    }

    /// The scanners never panic, and the detector's spans are ordered, disjoint and on
    /// character boundaries, whatever the text.
    #[test]
    fn the_scanners_never_panic(text in any::<String>(), soup in "[0-9 \\-a-fA-FDEGBIKS_é]{0,200}") {
        for text in [&text, &soup] {
            let spans = sensitive::find(text);
            for w in spans.windows(2) {
                prop_assert!(w[0].end <= w[1].start);
            }
            for s in &spans {
                prop_assert!(s.start < s.end && text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
            }
            let _ = (scan_text(text), scrub(text), mask_spans(text, &policy()));
        }
    }
}
