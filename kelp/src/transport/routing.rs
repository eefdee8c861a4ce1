//! Exchange routing rules with AMQP 0-9-1 semantics, shared by the
//! transports that emulate a broker (memory, Redis).
//!
//! Unlike Kombu's virtual transport (regex based, where `*` may span dots and
//! `a.#` does not match `a`), topic matching here is word-exact: `*` is
//! exactly one word and `#` is zero or more words.

use crate::content::value::{FieldTable, Value};

/// The words of a topic or routing key. RabbitMQ treats the empty key as
/// zero words (so `#` matches it and `*` does not).
fn words(s: &str) -> impl Iterator<Item = &str> + Clone {
    (!s.is_empty()).then(|| s.split('.')).into_iter().flatten()
}

/// Does the topic binding `pattern` match `routing_key`?
///
/// A glob match over words with a single backtrack point (the last `#`),
/// which is sufficient because `#` absorbs any number of words: O(n·m) in the
/// worst case, no allocation.
pub(crate) fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    let mut p = words(pattern);
    let mut k = words(routing_key);
    // (pattern after the last `#`, key position that `#` has absorbed up to)
    let mut backtrack = None;
    loop {
        let key_before = k.clone();
        let matched = match p.next() {
            Some("#") => {
                backtrack = Some((p.clone(), key_before));
                continue;
            }
            Some(word) => matches!(k.next(), Some(key_word) if word == "*" || word == key_word),
            None => {
                if k.next().is_none() {
                    return true;
                }
                false
            }
        };
        if matched {
            continue;
        }
        // Mismatch: let the last `#` swallow one more key word and retry.
        match &mut backtrack {
            Some((after_hash, absorbed)) => {
                if absorbed.next().is_none() {
                    return false;
                }
                p = after_hash.clone();
                k = absorbed.clone();
            }
            None => return false,
        }
    }
}

/// How a headers binding combines its conditions (`x-match`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeadersMatch {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

/// Does a headers-exchange binding with `arguments` match a message's `headers`?
///
/// `x-match` is `all` (default) or `any`; keys starting with `x-` are ignored
/// unless `all-with-x` / `any-with-x` is used. A binding value of `Null`
/// (AMQP void) only requires the header to be present, as in RabbitMQ.
pub(crate) fn headers_match(arguments: &FieldTable, headers: &FieldTable) -> bool {
    let mode = match arguments.get("x-match").and_then(Value::as_str) {
        Some("any") => HeadersMatch::Any,
        Some("all-with-x") => HeadersMatch::AllWithX,
        Some("any-with-x") => HeadersMatch::AnyWithX,
        _ => HeadersMatch::All,
    };
    let with_x = matches!(mode, HeadersMatch::AllWithX | HeadersMatch::AnyWithX);
    let any = matches!(mode, HeadersMatch::Any | HeadersMatch::AnyWithX);
    let mut conditions = arguments
        .iter()
        .filter(|(key, _)| key.as_str() != "x-match" && (with_x || !key.starts_with("x-")));
    let holds = |(key, expected): (&String, &Value)| match headers.get(key) {
        None => false,
        Some(_) if expected.is_null() => true,
        Some(actual) => values_equal(expected, actual),
    };
    if any {
        conditions.any(holds)
    } else {
        conditions.all(holds)
    }
}

/// Value equality that treats integers of different width as equal.
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests;
