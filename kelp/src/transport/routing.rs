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
mod tests {
    use super::*;

    #[test]
    fn topic_word_semantics() {
        let cases: &[(&str, &str, bool)] = &[
            ("a.b", "a.b", true),
            ("a.b", "a.c", false),
            ("a.*", "a.b", true),
            ("a.*", "a", false),
            ("a.*", "a.b.c", false),
            ("*", "a.b", false), // `*` never spans a dot
            ("*", "a", true),
            ("*", "", false),
            ("a.#", "a", true), // `#` is zero or more words
            ("a.#", "a.b", true),
            ("a.#", "a.b.c", true),
            ("a.#", "b", false),
            ("#", "", true),
            ("#", "a.b.c", true),
            ("#.c", "c", true),
            ("#.c", "a.b.c", true),
            ("#.c", "a.b.c.d", false),
            ("a.#.c", "a.c", true),
            ("a.#.c", "a.x.y.c", true),
            ("a.#.c", "a.x.y", false),
            ("#.#", "a", true),
            ("#.*.#", "", false),
            ("#.*.#", "x", true),
            ("*.#.*", "a", false),
            ("*.#.*", "a.b", true),
            ("a.*.#.d", "a.b.c.d", true),
            ("a.*.#.d", "a.d", false),
            ("", "", true),
            ("", "a", false),
            ("a..b", "a..b", true),
            ("a.*.b", "a..b", true),
            ("t.*", "t", false),
            ("t.#", "t", true),
            ("#.b.#.d.#", "a.b.c.d.e", true),
            ("#.b.#.d.#", "a.b.c.e", false),
        ];
        for &(pattern, key, expected) in cases {
            assert_eq!(
                topic_matches(pattern, key),
                expected,
                "pattern {pattern:?} key {key:?}"
            );
        }
    }

    #[test]
    fn many_hashes_do_not_explode() {
        let pattern = "#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.z";
        let key = "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.y";
        assert!(!topic_matches(pattern, key));
    }

    fn table(pairs: &[(&str, Value)]) -> FieldTable {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
    }

    #[test]
    fn headers_all_and_any() {
        let headers = table(&[("format", "pdf".into()), ("type", "report".into()), ("n", 3i32.into())]);
        let all = table(&[("x-match", "all".into()), ("format", "pdf".into()), ("type", "report".into())]);
        assert!(headers_match(&all, &headers));
        let all_miss = table(&[("format", "pdf".into()), ("type", "log".into())]);
        assert!(!headers_match(&all_miss, &headers), "x-match defaults to all");
        let any = table(&[("x-match", "any".into()), ("format", "zip".into()), ("type", "report".into())]);
        assert!(headers_match(&any, &headers));
        let any_miss = table(&[("x-match", "any".into()), ("format", "zip".into())]);
        assert!(!headers_match(&any_miss, &headers));
        let int_width = table(&[("n", Value::Int(3))]);
        assert!(headers_match(&int_width, &headers));
        let presence = table(&[("type", Value::Null)]);
        assert!(headers_match(&presence, &headers));
        let x_ignored = table(&[("x-other", "1".into())]);
        assert!(headers_match(&x_ignored, &headers), "x- keys are not conditions");
        let with_x = table(&[("x-match", "all-with-x".into()), ("x-other", "1".into())]);
        assert!(!headers_match(&with_x, &headers));
    }
}
