//! Fuzzing entry point for the Redis envelope (see `fuzz/`): it decodes
//! untrusted bytes (what any Redis client, Kombu or not, may have LPUSHed
//! onto a queue) with the consumer's own decoder. It returns what it
//! decoded, so that `tests/fuzz_corpus.rs` can check the hand-written seeds
//! still decode; the asserts inside are the fuzzer's oracles.

use super::envelope::{self, Envelope};
use crate::error::Result;

/// Decode a Redis envelope. Whatever decodes must survive being published
/// again (encoded, then decoded: every field but the redelivered flag, which
/// a publish does not write), and being marked redelivered as a restore
/// does (every field kept, the flag set where the envelope has a place for
/// it). Returns the body's length.
pub fn redis_envelope(data: &[u8]) -> Result<usize> {
    // The body shortcut reads exactly what the full parse reads.
    let full = envelope::decode_in_full(data);
    let first = match envelope::decode(data) {
        Ok(first) => {
            let full = full.unwrap_or_else(|e| panic!("decoded with the body shortcut only: {e}"));
            assert_same(&first, &full, "decoded in full");
            assert_eq!(first.json_text, full.json_text, "json_text differs between the two decodes");
            assert_eq!((first.redelivered, &first.tag), (full.redelivered, &full.tag), "the two decodes differ");
            first
        }
        Err(e) => {
            assert!(full.is_err(), "decoded in full only: {e}");
            return Err(e);
        }
    };
    assert_eq!(first.json_text, envelope::is_json_text(data), "json_text is not is_json_text");
    // What a consumer records in Kombu's unacked hash must be JSON text
    // Kombu (and kelp's restore) can read back.
    if first.json_text {
        let mut record = Vec::new();
        envelope::write_unacked_record(&mut record, data, &first.exchange, &first.routing_key).unwrap_or_else(|e| panic!("writing a record: {e}"));
        assert!(std::str::from_utf8(&record).is_ok(), "an unacked record is not UTF-8");
        serde_json::from_slice::<(serde::de::IgnoredAny, String, String)>(&record)
            .unwrap_or_else(|e| panic!("an unacked record is not [payload, exchange, routing_key]: {e}\n{}", String::from_utf8_lossy(&record)));
    }
    let encoded = envelope::encode(&first.content, &first.exchange, &first.routing_key, &first.tag);
    let again = envelope::decode(&encoded)
        .unwrap_or_else(|e| panic!("an envelope kelp encoded does not decode: {e}\n{}", String::from_utf8_lossy(&encoded)));
    assert_same(&first, &again, "re-encoded");
    assert!(!again.redelivered || first.content.properties.headers.get("redelivered") == Some(&crate::content::value::Value::Bool(true)));

    let marked = match envelope::mark_redelivered(data) {
        Ok(marked) => marked,
        // Known: `decode` skips unknown fields without checking them (their
        // UTF-8, a number's range), `mark_redelivered` reads the whole
        // document and refuses it. The restore then puts the message back as
        // it was, without the mark (seeds/redis_envelope/crash-*-in-unknown-field).
        Err(_) if serde_json::from_slice::<serde_json::Value>(data).is_err() => return Ok(first.content.body.len()),
        Err(e) => panic!("an envelope kelp decodes cannot be marked redelivered: {e}"),
    };
    let restored = envelope::decode(&marked)
        .unwrap_or_else(|e| panic!("an envelope marked redelivered does not decode: {e}\n{}", String::from_utf8_lossy(&marked)));
    assert_same(&first, &restored, "marked redelivered");
    let doc: serde_json::Value = serde_json::from_slice(data).unwrap_or_default();
    let has_place = doc.get("headers").is_some_and(serde_json::Value::is_object)
        || doc.get("properties").and_then(|p| p.get("delivery_info")).is_some_and(serde_json::Value::is_object);
    if has_place {
        assert!(restored.redelivered, "an envelope marked redelivered does not read as redelivered");
    }
    Ok(first.content.body.len())
}

/// Every field of `a` and `b` but the redelivered mark (and the
/// `redelivered` header that carries it).
fn assert_same(a: &Envelope, b: &Envelope, how: &str) {
    let (mut pa, mut pb) = (a.content.properties.clone(), b.content.properties.clone());
    pa.headers.remove("redelivered");
    pb.headers.remove("redelivered");
    let (ha, hb) = (std::mem::take(&mut pa.headers), std::mem::take(&mut pb.headers));
    assert!(
        ha.len() == hb.len() && ha.iter().zip(&hb).all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb)),
        "headers change when {how}: {ha:?} became {hb:?}"
    );
    if !floats_exact() {
        // A number in a text property is a float's text: the same drift.
        for (x, y) in [
            (&mut pa.correlation_id, &mut pb.correlation_id),
            (&mut pa.reply_to, &mut pb.reply_to),
            (&mut pa.expiration, &mut pb.expiration),
            (&mut pa.message_id, &mut pb.message_id),
            (&mut pa.kind, &mut pb.kind),
            (&mut pa.user_id, &mut pb.user_id),
            (&mut pa.app_id, &mut pb.app_id),
            (&mut pa.cluster_id, &mut pb.cluster_id),
        ] {
            let near = match (x.as_deref().map(str::parse::<f64>), y.as_deref().map(str::parse::<f64>)) {
                (Some(Ok(fx)), Some(Ok(fy))) => same_value(&crate::content::value::Value::Float(fx), &crate::content::value::Value::Float(fy)),
                _ => false,
            };
            if near {
                *y = x.clone();
            }
        }
    }
    // A publish writes a missing priority as 0, as Kombu does.
    pa.priority = Some(pa.priority.unwrap_or(0));
    pb.priority = Some(pb.priority.unwrap_or(0));
    assert_eq!(pa, pb, "properties change when {how}");
    assert_eq!(a.content.body, b.content.body, "the body changes when {how}");
    assert_eq!(a.exchange, b.exchange, "the exchange changes when {how}");
    assert_eq!(a.routing_key, b.routing_key, "the routing key changes when {how}");
    assert_eq!(a.tag, b.tag, "the delivery tag changes when {how}");
}

/// Equal, except that floats may differ in their last bit. Known: without
/// serde_json's `float_roundtrip` feature its parser may read a float one
/// ULP off (`2.9223372036854706e19`, which is what serde_json itself and
/// Python write for that number, reads as `2.9223372036854702e19`), so a
/// float header drifts when a message is read and published again
/// (seeds/redis_envelope/crash-float-header-one-ulp-off).
///
/// The fuzz crate turns `float_roundtrip` on (the fix), so the fuzzer
/// holds floats to exact equality; the stable replay of the corpus
/// (`kelp/tests/fuzz_corpus.rs`, built without it) allows the one ULP.
fn same_value(a: &crate::content::value::Value, b: &crate::content::value::Value) -> bool {
    use crate::content::value::Value;
    match (a, b) {
        (Value::Float(x), Value::Float(y)) if !floats_exact() => {
            x == y || (x.is_finite() && y.is_finite() && x.to_bits().abs_diff(y.to_bits()) <= 1)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y)),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((kx, vx), (ky, vy))| kx == ky && same_value(vx, vy))
        }
        _ => a == b,
    }
}

/// Whether serde_json reads floats exactly (its `float_roundtrip` feature).
fn floats_exact() -> bool {
    serde_json::from_str::<f64>("2.9223372036854706e19").ok() == Some(2.9223372036854706e19)
}
