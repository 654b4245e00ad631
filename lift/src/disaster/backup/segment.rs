//! The segment encoding: gzip-compressed JSON lines, one DynamoDB JSON item a line, and the
//! SHA-256 of the stored bytes. The stream archive's chunks use the same lines.

use std::io::{BufRead, BufReader, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::json::{item_to_json, json_to_item};
use crate::disaster::Item;

/// Writes JSON lines into a gzip stream as they come, so a segment is held compressed.
pub(crate) struct LineWriter {
    gz: GzEncoder<Vec<u8>>,
    lines: u64,
}

impl LineWriter {
    pub(crate) fn new() -> Self {
        Self { gz: GzEncoder::new(Vec::new(), Compression::fast()), lines: 0 }
    }

    pub(crate) fn push(&mut self, line: &Value) {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.gz, line);
        let _ = self.gz.write_all(b"\n");
        self.lines += 1;
    }

    pub(crate) fn push_item(&mut self, item: &Item) {
        self.push(&item_to_json(item));
    }

    pub(crate) fn lines(&self) -> u64 {
        self.lines
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.gz.finish().unwrap_or_default()
    }
}

/// The lines of gzip JSON lines; a truncated or damaged stream is an error that says where.
pub(crate) fn decode_lines(bytes: &[u8]) -> Result<Vec<Value>, String> {
    let reader = BufReader::new(GzDecoder::new(bytes));
    let mut out = Vec::new();
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("cannot decompress after {} lines: {e}", n))?;
        let value = serde_json::from_str(&line).map_err(|e| format!("line {}: {e}", n + 1))?;
        out.push(value);
    }
    Ok(out)
}

/// Items from gzip JSON lines.
pub(crate) fn decode_items(bytes: &[u8]) -> Result<Vec<Item>, String> {
    decode_lines(bytes)?
        .iter()
        .enumerate()
        .map(|(n, v)| json_to_item(v).ok_or_else(|| format!("line {} is not a dynamodb item", n + 1)))
        .collect()
}

/// Lowercase hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::super::json::tests::item;
    use super::*;
    use proptest::prelude::*;

    fn encode(items: &[Item]) -> Vec<u8> {
        let mut w = LineWriter::new();
        items.iter().for_each(|i| w.push_item(i));
        w.finish()
    }

    proptest! {
        /// Any items, encoded and decoded, come back equal and in order; any shorter prefix
        /// of the bytes fails to decode or yields fewer items (never other items).
        #[test]
        fn segment_encoding_round_trips(items in proptest::collection::vec(item(), 0..12), cut in any::<prop::sample::Index>()) {
            let bytes = encode(&items);
            prop_assert_eq!(decode_items(&bytes).unwrap(), items.clone());
            let cut = cut.index(bytes.len());
            if let Ok(prefix) = decode_items(&bytes[..cut]) {
                prop_assert!(prefix.len() < items.len() || items.is_empty(), "a truncated segment decoded whole");
                prop_assert_eq!(&items[..prefix.len()], &prefix[..]);
            }
        }

        /// A single flipped bit anywhere changes the hash.
        #[test]
        fn any_flipped_bit_changes_the_hash(items in proptest::collection::vec(item(), 1..6), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let bytes = encode(&items);
            let mut flipped = bytes.clone();
            let i = at.index(flipped.len());
            flipped[i] ^= 1 << bit;
            prop_assert_ne!(sha256_hex(&bytes), sha256_hex(&flipped));
        }
    }

    #[test]
    fn garbage_is_refused() {
        assert!(decode_items(b"not gzip at all").is_err());
        let mut w = LineWriter::new();
        w.push(&serde_json::json!({"pk": {"X": "?"}}));
        let err = decode_items(&w.finish()).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }
}
