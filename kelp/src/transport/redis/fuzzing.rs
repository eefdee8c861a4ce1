//! Fuzzing entry point for the Redis envelope (see `fuzz/`): it decodes
//! untrusted bytes (what any Redis client, Kombu or not, may have LPUSHed
//! onto a queue) with the consumer's own decoder. It returns what it
//! decoded, so that `tests/fuzz_corpus.rs` can check the hand-written seeds
//! still decode; the asserts inside are the fuzzer's oracles.

use super::envelope::{self, Envelope};
use crate::Result;

/// Decode a Redis envelope. Whatever decodes must survive being published
/// again (encoded, then decoded: every field but the redelivered flag, which
/// a publish does not write), and being marked redelivered as a restore
/// does (every field kept, the flag set where the envelope has a place for
/// it). Returns the body's length.
pub fn redis_envelope(data: &[u8]) -> Result<usize> {
    let first = envelope::decode(data)?;
    let encoded = envelope::encode(&first.content, &first.exchange, &first.routing_key, &first.tag);
    let again = envelope::decode(&encoded)
        .unwrap_or_else(|e| panic!("an envelope kelp encoded does not decode: {e}\n{}", String::from_utf8_lossy(&encoded)));
    assert_same(&first, &again, "re-encoded");
    assert!(!again.redelivered || first.content.properties.headers.get("redelivered") == Some(&crate::Value::Bool(true)));

    let marked = envelope::mark_redelivered(data)
        .unwrap_or_else(|e| panic!("an envelope kelp decodes cannot be marked redelivered: {e}"));
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
    // A publish writes a missing priority as 0, as Kombu does.
    pa.priority = Some(pa.priority.unwrap_or(0));
    pb.priority = Some(pb.priority.unwrap_or(0));
    assert_eq!(pa, pb, "properties change when {how}");
    assert_eq!(a.content.body, b.content.body, "the body changes when {how}");
    assert_eq!(a.exchange, b.exchange, "the exchange changes when {how}");
    assert_eq!(a.routing_key, b.routing_key, "the routing key changes when {how}");
    assert_eq!(a.tag, b.tag, "the delivery tag changes when {how}");
}
