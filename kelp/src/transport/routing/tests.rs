//! Tests of `routing`.

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
