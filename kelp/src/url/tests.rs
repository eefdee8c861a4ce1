//! The URL parser against Kombu's own output, and its edge cases.

use super::*;
use std::collections::HashSet;

fn url(s: &str) -> BrokerUrl {
    match BrokerUrl::parse(s) {
        Ok(u) => u,
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

fn err(s: &str) -> Error {
    match BrokerUrl::parse(s) {
        Ok(u) => panic!("{s:?} should not parse, got {u:?}"),
        Err(e) => e,
    }
}

/// `(input, Connection(input).as_uri(), Connection(input).as_uri(include_password=True))`
/// as printed by Kombu 5.7.0 (Python 3.11, redis-py 8.1).
#[rustfmt::skip]
const KOMBU_AS_URI: &[(&str, &str, &str)] = &[
("amqp://", "amqp://guest:**@localhost:5672//", "amqp://guest:guest@localhost:5672//"),
("amqp://h", "amqp://guest:**@h:5672//", "amqp://guest:guest@h:5672//"),
("amqp://h/", "amqp://guest:**@h:5672//", "amqp://guest:guest@h:5672//"),
("amqp://h//", "amqp://guest:**@h:5672//", "amqp://guest:guest@h:5672//"),
("amqp://h//foo", "amqp://guest:**@h:5672//foo", "amqp://guest:guest@h:5672//foo"),
("amqp://h/foo", "amqp://guest:**@h:5672/foo", "amqp://guest:guest@h:5672/foo"),
("amqp://h/%2F", "amqp://guest:**@h:5672//", "amqp://guest:guest@h:5672//"),
("amqp://h/%2f", "amqp://guest:**@h:5672//", "amqp://guest:guest@h:5672//"),
("amqp://h/%2Ffoo", "amqp://guest:**@h:5672//foo", "amqp://guest:guest@h:5672//foo"),
("amqp://h/a/b", "amqp://guest:**@h:5672/a/b", "amqp://guest:guest@h:5672/a/b"),
("amqp://h///", "amqp://guest:**@h:5672///", "amqp://guest:guest@h:5672///"),
("amqp://h/%2F%2F", "amqp://guest:**@h:5672///", "amqp://guest:guest@h:5672///"),
("amqp://h/a%20b/c", "amqp://guest:**@h:5672/a%20b/c", "amqp://guest:guest@h:5672/a%20b/c"),
("amqp://h/%zz", "amqp://guest:**@h:5672/%25zz", "amqp://guest:guest@h:5672/%25zz"),
("amqp://h/ü", "amqp://guest:**@h:5672/%C3%BC", "amqp://guest:guest@h:5672/%C3%BC"),
("amqp://u:p@h:1234/v", "amqp://u:**@h:1234/v", "amqp://u:p@h:1234/v"),
("amqp://u@h", "amqp://u:**@h:5672//", "amqp://u:guest@h:5672//"),
("amqp://:p@h", "amqp://guest:**@h:5672//", "amqp://guest:p@h:5672//"),
("amqp://@h", "amqp://guest:**@h:5672//", "amqp://guest:guest@h:5672//"),
("amqp://u:@h", "amqp://u:**@h:5672//", "amqp://u:guest@h:5672//"),
("amqp://u:s3cret@h//", "amqp://u:**@h:5672//", "amqp://u:s3cret@h:5672//"),
("amqp://us%40er:p%40ss@h/v%20x", "amqp://us%40er:**@h:5672/v%20x", "amqp://us%40er:p%40ss@h:5672/v%20x"),
("amqp://u%3Ax:p%2Fq@h/", "amqp://u%3Ax:**@h:5672//", "amqp://u%3Ax:p%2Fq@h:5672//"),
("amqp://u:p:q@h/", "amqp://u:**@h:5672//", "amqp://u:p%3Aq@h:5672//"),
("amqp://a@b@h/", "amqp://a%40b:**@h:5672//", "amqp://a%40b:guest@h:5672//"),
("amqp://[::1]:5672//", "amqp://guest:**@%3A%3A1:5672//", "amqp://guest:guest@%3A%3A1:5672//"),
("amqp://[::1]//", "amqp://guest:**@%3A%3A1:5672//", "amqp://guest:guest@%3A%3A1:5672//"),
("amqp://u:p@[fe80::1]:5/x", "amqp://u:**@fe80%3A%3A1:5/x", "amqp://u:p@fe80%3A%3A1:5/x"),
("amqp://[fe80::1%25eth0]:1/", "amqp://guest:**@fe80%3A%3A1%25eth0:1//", "amqp://guest:guest@fe80%3A%3A1%25eth0:1//"),
("amqp://[::1]:/", "amqp://guest:**@%3A%3A1:5672//", "amqp://guest:guest@%3A%3A1:5672//"),
("amqp://H", "amqp://guest:**@h:5672//", "amqp://guest:guest@h:5672//"),
("AMQP://Host.Example.COM:5672//", "amqp://guest:**@host.example.com:5672//", "amqp://guest:guest@host.example.com:5672//"),
("amqp://h:0/", "amqp://guest:**@h:5672//", "amqp://guest:guest@h:5672//"),
("amqp://h:", "amqp://guest:**@h:5672//", "amqp://guest:guest@h:5672//"),
("amqp://h:05", "amqp://guest:**@h:5//", "amqp://guest:guest@h:5//"),
("amqp:///v", "amqp://guest:**@localhost:5672/v", "amqp://guest:guest@localhost:5672/v"),
("amqp://:5673", "amqp://guest:**@localhost:5673//", "amqp://guest:guest@localhost:5673//"),
("amqp://h/v#frag", "amqp://guest:**@h:5672/v", "amqp://guest:guest@h:5672/v"),
("amqp://h/foo?heartbeat=5", "amqp://guest:**@h:5672/foo", "amqp://guest:guest@h:5672/foo"),
("amqp://h/v?heartbeat=0.5&connect_timeout=3", "amqp://guest:**@h:5672/v", "amqp://guest:guest@h:5672/v"),
("amqp://h/v?ssl=1", "amqp://guest:**@h:5671/v", "amqp://guest:guest@h:5671/v"),
("amqp://h/v?ssl=true", "amqp://guest:**@h:5671/v", "amqp://guest:guest@h:5671/v"),
("amqp://h?ssl_cert_reqs=required", "amqp://guest:**@h:5671//", "amqp://guest:guest@h:5671//"),
("amqp://h:5670?ssl=1", "amqp://guest:**@h:5670//", "amqp://guest:guest@h:5670//"),
("amqp://h/v?login_method=AMQPLAIN", "amqp://guest:**@h:5672/v", "amqp://guest:guest@h:5672/v"),
("pyamqp://u:p@h//", "amqp://u:**@h:5672//", "amqp://u:p@h:5672//"),
("pyamqp://h:1/x", "amqp://guest:**@h:1/x", "amqp://guest:guest@h:1/x"),
("amqps://u:p@h//", "amqps://u:**@h:5671//", "amqps://u:p@h:5671//"),
("amqps://h:0", "amqps://guest:**@h:5671//", "amqps://guest:guest@h:5671//"),
("amqps://h:5673/v", "amqps://guest:**@h:5673/v", "amqps://guest:guest@h:5673/v"),
("memory://", "memory://:**@localhost//", "memory://localhost//"),
("memory:///", "memory://:**@localhost//", "memory://localhost//"),
("memory://h", "memory://:**@h//", "memory://h//"),
("memory://u:p@h:12/x", "memory://u:**@h:12/x", "memory://u:p@h:12/x"),
("memory://foo/bar", "memory://:**@foo/bar", "memory://foo/bar"),
("memory://u@h", "memory://u:**@h//", "memory://u@h//"),
("memory://:p@h", "memory://:**@h//", "memory://:p@h//"),
("memory://[::1]:5/", "memory://:**@%3A%3A1:5//", "memory://%3A%3A1:5//"),
("redis://", "redis://:**@localhost:6379//", "redis://localhost:6379//"),
("redis://h", "redis://:**@h:6379//", "redis://h:6379//"),
("redis://h:6379/2", "redis://:**@h:6379/2", "redis://h:6379/2"),
("redis://:pw@h:6379/0", "redis://:**@h:6379/0", "redis://:pw@h:6379/0"),
("redis://u:pw@h/1", "redis://u:**@h:6379/1", "redis://u:pw@h:6379/1"),
("redis://u@h", "redis://u:**@h:6379//", "redis://u@h:6379//"),
("redis://h//3", "redis://:**@h:6379//3", "redis://h:6379//3"),
("redis://h/5?ssl_cert_reqs=none", "redis://:**@h:6379/5", "redis://h:6379/5"),
("rediss://h", "rediss://:**@h:6379//", "rediss://h:6379//"),
("rediss://h:6380/0?ssl_cert_reqs=required", "rediss://:**@h:6380/0", "rediss://h:6380/0"),
("rediss://u:p@h:1/3", "rediss://u:**@h:1/3", "rediss://u:p@h:1/3"),
("redis+socket:///tmp/redis.sock", "redis+socket:///tmp/redis.sock", "redis+socket:///tmp/redis.sock"),
("redis+socket:///tmp/redis.sock?virtual_host=2", "redis+socket:///tmp/redis.sock", "redis+socket:///tmp/redis.sock?virtual_host=2"),
("redis+socket://:pw@/tmp/redis.sock", "redis+socket://:**@/tmp/redis.sock", "redis+socket://:pw@/tmp/redis.sock"),
("redis+socket://u:p@/tmp/s", "redis+socket://u:**@/tmp/s", "redis+socket://u:p@/tmp/s"),
("redis+socket://u@/tmp/s?a=b", "redis+socket://u@/tmp/s", "redis+socket://u@/tmp/s?a=b"),
("redis+socket:///tmp/my%20sock", "redis+socket:///tmp/my sock", "redis+socket:///tmp/my%20sock"),
("redis+socket:////tmp/s", "redis+socket:////tmp/s", "redis+socket:////tmp/s"),
("sentinel://", "sentinel://:**@localhost:26379//", "sentinel://localhost:26379//"),
("sentinel://h:26379", "sentinel://:**@h:26379//", "sentinel://h:26379//"),
("sentinel://u:p@h:26379/0", "sentinel://u:**@h:26379/0", "sentinel://u:p@h:26379/0"),
("sentinel://:pw@h/1", "sentinel://:**@h:26379/1", "sentinel://:pw@h:26379/1"),
];

#[test]
fn as_uri_matches_kombu() {
    for &(input, masked, full) in KOMBU_AS_URI {
        let u = url(input);
        assert_eq!(u.as_uri(false), masked, "masked as_uri of {input:?}");
        assert_eq!(u.as_uri(true), full, "as_uri(true) of {input:?}");
        // Display masks only a password that is there.
        let shown = if u.password().is_some() {
            masked.to_owned()
        } else {
            masked.replacen(":**@", "@", 1).replacen("://@", "://", 1)
        };
        assert_eq!(u.to_string(), shown, "Display of {input:?}");
        assert_eq!(format!("{u:?}"), format!("BrokerUrl({shown})"));
        // Kombu's printed form means the same broker when read again.
        let again = url(full);
        assert_eq!(again.as_uri(true), full, "{input:?}");
    }
}

#[test]
fn vhost_rules() {
    let cases = [
        ("amqp://h//", "/"),
        ("amqp://h//foo", "/foo"),
        ("amqp://h/foo", "foo"),
        ("amqp://h/%2F", "/"),
        ("amqp://h/%2f", "/"),
        ("amqp://h/%2Ffoo", "/foo"),
        ("amqp://h/", "/"),
        ("amqp://h", "/"),
        ("amqp://h?heartbeat=1", "/"),
        ("amqp://h/a/b", "a/b"),
        ("amqp://h///", "//"),
        ("amqp://h/a%20b", "a b"),
        ("amqp://h/a+b", "a+b"),
        ("amqp://h/%zz", "%zz"),
        ("amqp://h/v#fragment", "v"),
        ("memory://", "/"),
        ("memory://x/anything at all", "anything at all"),
        ("redis://h", "/"),
        ("redis://h/2", "2"),
    ];
    for (input, vhost) in cases {
        assert_eq!(url(input).virtual_host(), vhost, "{input:?}");
    }
}

#[test]
fn default_ports_hosts_and_credentials() {
    let cases = [
        ("amqp://", Some(5672)),
        ("pyamqp://", Some(5672)),
        ("amqps://", Some(5671)),
        ("amqp://?ssl=true", Some(5671)),
        ("amqp://h:5670?ssl=1", Some(5670)),
        ("redis://", Some(6379)),
        ("rediss://", Some(6379)),
        ("sentinel://", Some(26379)),
        ("memory://", None),
        ("redis+socket:///tmp/s", None),
        ("amqp://h:0", Some(5672)),
        ("amqp://h:", Some(5672)),
        ("amqp://h:05", Some(5)),
        ("amqp://h:65535", Some(65535)),
    ];
    for (input, port) in cases {
        assert_eq!(url(input).port(), port, "{input:?}");
    }
    let u = url("amqp://");
    assert_eq!(u.host(), "localhost");
    assert_eq!(u.userid(), Some("guest"));
    assert_eq!(u.password(), Some("guest"));
    assert_eq!(u.virtual_host(), "/");
    let u = url("amqp://bob@h");
    assert_eq!((u.userid(), u.password()), (Some("bob"), Some("guest")));
    let u = url("amqp://:pw@h");
    assert_eq!((u.userid(), u.password()), (Some("guest"), Some("pw")));
    let u = url("redis://h");
    assert_eq!((u.userid(), u.password()), (None, None));
    assert_eq!(url("memory://").host(), "localhost");
    assert_eq!(url("amqp://:5673").host(), "localhost");
}

#[test]
fn transports_and_schemes() {
    let cases = [
        ("memory://", TransportKind::Memory, "memory"),
        ("amqp://", TransportKind::Amqp, "amqp"),
        ("AMQP://", TransportKind::Amqp, "amqp"),
        ("pyamqp://", TransportKind::Amqp, "pyamqp"),
        ("amqps://", TransportKind::Amqp, "amqps"),
        ("redis://", TransportKind::Redis, "redis"),
        ("rediss://", TransportKind::Redis, "rediss"),
        ("redis+socket:///s", TransportKind::Redis, "redis+socket"),
        ("Redis+Socket:///s", TransportKind::Redis, "redis+socket"),
        ("sentinel://", TransportKind::Sentinel, "sentinel"),
    ];
    for (input, kind, scheme) in cases {
        let u = url(input);
        assert_eq!(u.transport(), kind, "{input:?}");
        assert_eq!(u.scheme(), scheme, "{input:?}");
    }
    assert_eq!(KNOWN_SCHEMES.len(), 8);
    for name in KNOWN_SCHEMES {
        assert!(Scheme::from_name(name).is_some_and(|s| s.name() == *name));
    }
}

#[test]
fn percent_decoding() {
    let u =
        url("amqp://us%40er:p%40ss%2Fw%3Ard@ho%73t/v%20x?ssl_ca_certs=%2Fetc%2Fca+file.pem");
    assert_eq!(u.userid(), Some("us@er"));
    assert_eq!(u.password(), Some("p@ss/w:rd"));
    assert_eq!(u.host(), "host");
    assert_eq!(u.virtual_host(), "v x");
    // `+` is a space in query values only, as in parse_qsl.
    assert_eq!(u.query_param("ssl_ca_certs"), Some("/etc/ca file.pem"));
    // An unquoted '@' or ':' in the password works too: the userinfo
    // ends at the last '@', the user at the first ':'.
    let u = url("amqp://u:p:q@x@h/");
    assert_eq!(
        (u.userid(), u.password(), u.host()),
        (Some("u"), Some("p:q@x"), "h")
    );
    // Bytes that are not UTF-8 become U+FFFD, as with Python's unquote.
    assert_eq!(url("amqp://h/%FF").virtual_host(), "\u{FFFD}");
    assert_eq!(url("amqp://h/ü").virtual_host(), "ü");
    // Hosts are case-insensitive and kept lowercase.
    assert_eq!(url("amqp://HoSt.Example").host(), "host.example");
    assert_eq!(url("amqp://%48OST").host(), "host");
}

#[test]
fn ipv6_hosts() {
    let u = url("amqp://u:p@[::1]:5673/v");
    assert_eq!((u.host(), u.port()), ("::1", Some(5673)));
    assert_eq!(u.as_uri(false), "amqp://u:**@%3A%3A1:5673/v");
    let u = url("amqp://[FE80::1%25eth0]");
    assert_eq!((u.host(), u.port()), ("fe80::1%eth0", Some(5672)));
    assert_eq!(url("redis://[2001:db8::2]:7000/3").host(), "2001:db8::2");
    // Kombu prints the host percent-quoted, and reads that back.
    assert_eq!(url("amqp://%3A%3A1:5673/v"), url("amqp://[::1]:5673/v"));
    for bad in [
        "amqp://[::1",
        "amqp://::1]/",
        "amqp://[1.2.3.4]/",
        "amqp://[zz]/",
        "amqp://[]/",
        "amqp://x[::1]/",
        "amqp://[::1]x/",
        "amqp://[::1]:99999/",
    ] {
        assert!(err(bad).is_config(), "{bad:?}");
    }
    assert!(err("amqp://::1/").message().contains("brackets"));
}

#[test]
fn bad_ports() {
    let e = err("amqp://h:abc/");
    assert!(e.is_config());
    assert!(e.message().contains("port is not a number"), "{e}");
    let e = err("amqp://h:65536/");
    assert!(e.message().contains("out of range"), "{e}");
    let e = err("amqp://h:99999999999999999999999/");
    assert!(e.message().contains("out of range"), "{e}");
    assert!(err("amqp://h:-1/").is_config());
    assert!(err("amqp://h:+5/").is_config());
    assert!(err("amqp://h:５/").is_config());
    assert!(err("amqp://h:1:2/").is_config());
}

#[test]
fn malformed_input() {
    let e = err("");
    assert!(e.is_config());
    assert!(e.message().contains("empty"));
    assert!(err("   ").message().contains("empty"));
    let e = err("localhost");
    assert!(e.message().contains("://"), "{e}");
    assert!(err("amqp:/h").message().contains("://"));
    assert!(err("://h").message().contains("missing transport scheme"));
    assert!(err("a b://h").is_config());
    assert!(err("redis+socket://").message().contains("socket's path"));
    assert!(err("redis+socket:///").message().contains("socket's path"));
    assert!(
        err("redis+socket://h:1/tmp/s")
            .message()
            .contains("no host")
    );
    // Surrounding whitespace, and tabs or line breaks anywhere, are
    // dropped as Python's urlsplit drops them.
    assert_eq!(url("  amqp://h/v\n"), url("amqp://h/v"));
    assert_eq!(url("amqp://h/\tv"), url("amqp://h/v"));
}

#[test]
fn unknown_scheme() {
    let e = err("foo://u:s3cret@h:1/v?x=y");
    assert!(e.is_config());
    let m = e.message();
    assert!(m.contains("'foo'"), "{m}");
    assert!(m.contains("foo://u:**@h:1/v"), "{m}");
    for scheme in KNOWN_SCHEMES {
        assert!(m.contains(scheme), "{m}");
    }
    assert!(!m.contains("s3cret"));
    // Kombu's other transports are not implemented by kelp.
    for other in [
        "sqs://",
        "kafka://",
        "librabbitmq://",
        "redis+tcp://h",
        "http://h",
    ] {
        assert!(err(other).is_config(), "{other:?}");
    }
}

#[test]
fn passwords_never_leak() {
    let parsed = [
        "amqp://u:s3cret@h/v",
        "redis://:s3cret@h/1",
        "memory://u:s3cret@h",
        "sentinel://:s3cret@h",
        "redis+socket://u:s3cret@/tmp/s?virtual_host=1",
        "amqp://u:s3cret@h/v?heartbeat=bad&connect_timeout=-1&flag=maybe",
    ];
    for input in parsed {
        let u = url(input);
        assert_eq!(u.password(), Some("s3cret"));
        for shown in [
            u.as_uri(false),
            u.to_string(),
            format!("{u:?}"),
            u.as_uri_with_query(false),
        ] {
            assert!(!shown.contains("s3cret"), "{input:?} shows {shown:?}");
            assert!(shown.contains(":**@"), "{shown:?}");
        }
        assert!(u.as_uri(true).contains("s3cret"));
        for e in [
            u.heartbeat().err(),
            u.connect_timeout().err(),
            u.query_bool("flag").err(),
        ]
        .into_iter()
        .flatten()
        {
            assert!(!e.to_string().contains("s3cret"), "{e}");
            assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
        }
    }
    let failing = [
        "amqp://u:s3cret@h:99999/",
        "amqp://u:s3cret@h:abc/",
        "amqp://u:s3cret@[::1/",
        "amqp://u:s3cret@h/?ssl=maybe",
        "amqp://u:s3cret@h/?ssl_cert_reqs=sometimes",
        "amqp://u:s3cret@h/?password=x",
        "redis://u:s3cret@h/db",
        "foo://u:s3cret@h/",
        "FOO://user:s3cret@h/",
        "amqp://u:s3cret@a;amqp://b",
        "u:s3cret@h",
        "amqp:/u:s3cret@h",
        // Malformed: an unquoted '/', '?' or '#' in the password.
        "amqp://u:s3cret/x@h/",
        "amqp://u:s3/cret@h/",
        "amqp://u:s3?cret@h/",
        "amqp://u:s3#cret@h/",
        "amqp://u:123456/x@h/",
        "nope://u:s3cret/x@h/",
        "amqp://u:s3cret@[::1]x/",
        "redis://u:12/s3cret@h",
        "amqp://u:1?ssl=s3cret@h",
        "amqp://u:1?ssl_cert_reqs=s3cret@h",
    ];
    for input in failing {
        let e = err(input);
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains("s3cret"), "{input:?}: {shown}");
            assert!(!shown.contains("cret"), "{input:?}: {shown}");
            assert!(!shown.contains("123456"), "{input:?}: {shown}");
        }
    }
    // A password with an unquoted '?' spills into the query, where a
    // later error must not show it either.
    let u = url("amqp://u:1?heartbeat=s3cret@h&connect_timeout=s3cret@h&flag=s3cret@h");
    for e in [
        u.heartbeat().err(),
        u.connect_timeout().err(),
        u.query_bool("flag").err(),
    ] {
        let e = e.map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("invalid") && !e.contains("s3cret"), "{e}");
    }
    for list in [
        "amqp://a;amqp://u:s3cret@h:0x/",
        "amqp://a;foo://u:s3cret@h",
    ] {
        let e = BrokerUrl::parse_list(list)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("URL #2"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}

#[test]
fn lists() {
    let urls = BrokerUrl::parse_list("amqp://a;amqp://b").unwrap_or_default();
    assert_eq!(urls.len(), 2);
    assert_eq!((urls[0].host(), urls[1].host()), ("a", "b"));
    let urls = BrokerUrl::parse_list(" amqp://a ;; redis://b/2 ; ").unwrap_or_default();
    assert_eq!(urls.len(), 2);
    assert_eq!(urls[1].transport(), TransportKind::Redis);
    // A comma is not a separator, as in Kombu.
    let urls = BrokerUrl::parse_list("amqp://a,b").unwrap_or_default();
    assert_eq!(urls.len(), 1);
    assert_eq!(urls[0].host(), "a,b");
    for empty in ["", " ", ";", " ; ;"] {
        assert!(
            BrokerUrl::parse_list(empty).is_err_and(|e| e.is_config()),
            "{empty:?}"
        );
    }
    assert!(BrokerUrl::parse_list("amqp://a;nope").is_err());
    // A single parse refuses a list rather than drop the alternates.
    assert!(err("amqp://a;amqp://b").message().contains("parse_list"));
    assert!("amqp://a".parse::<BrokerUrl>().is_ok());
}

#[test]
fn sentinel_lists() {
    let urls = BrokerUrl::parse_list(
        "sentinel://:pw@s1:26379/1;sentinel://:pw@s2;sentinel://s3:26380",
    )
    .unwrap_or_default();
    let hosts: Vec<_> = urls.iter().map(|u| (u.host(), u.port())).collect();
    assert_eq!(
        hosts,
        [
            ("s1", Some(26379)),
            ("s2", Some(26379)),
            ("s3", Some(26380))
        ]
    );
    assert!(
        urls.iter()
            .all(|u| u.transport() == TransportKind::Sentinel)
    );
    assert_eq!(urls[0].redis_db(), Some(1));
    assert_eq!(urls[1].password(), Some("pw"));
    assert_eq!(urls[0].to_string(), "sentinel://:**@s1:26379/1");
}

#[test]
fn redis_databases() {
    assert_eq!(url("redis://h:6379/2").virtual_host(), "2");
    assert_eq!(url("redis://h:6379/2").redis_db(), Some(2));
    assert_eq!(url("redis://h").redis_db(), Some(0));
    assert_eq!(url("redis://h/").redis_db(), Some(0));
    assert_eq!(url("redis://h//3").redis_db(), Some(3));
    assert_eq!(url("redis://h/%2F4").redis_db(), Some(4));
    assert_eq!(url("rediss://h/15").redis_db(), Some(15));
    assert_eq!(url("sentinel://h/7").redis_db(), Some(7));
    assert_eq!(url("amqp://h/7").redis_db(), None);
    assert_eq!(url("memory://h/7").redis_db(), None);
    for bad in [
        "redis://h/abc",
        "redis://h/-1",
        "redis://h/1.5",
        "redis://h///",
        "redis://h/99999999999",
        "sentinel://h/x",
    ] {
        let e = err(bad);
        assert!(e.message().contains("must be a number"), "{bad:?}: {e}");
    }
}

#[test]
fn redis_socket() {
    let u = url("redis+socket:///var/run/redis.sock?virtual_host=2");
    assert_eq!(u.socket_path(), Some("/var/run/redis.sock"));
    assert_eq!(u.virtual_host(), "2");
    assert_eq!(u.redis_db(), Some(2));
    assert_eq!(u.port(), None);
    assert_eq!(u.transport(), TransportKind::Redis);
    assert!(!u.is_tls());
    let u = url("redis+socket://:pw@/tmp/my%20sock?socket_timeout=3");
    assert_eq!(u.socket_path(), Some("/tmp/my sock"));
    assert_eq!(u.password(), Some("pw"));
    assert_eq!(u.redis_db(), Some(0));
    assert_eq!(u.query_param("socket_timeout"), Some("3"));
    assert_eq!(u.as_uri(false), "redis+socket://:**@/tmp/my sock");
    assert_eq!(
        u.as_uri(true),
        "redis+socket://:pw@/tmp/my%20sock?socket_timeout=3"
    );
    assert_eq!(url("redis://h").socket_path(), None);
    assert!(
        err("redis+socket:///tmp/s?virtual_host=x")
            .message()
            .contains("must be a number")
    );
    assert!(err("redis+socket:///tmp/s?ssl=true").is_config());
    assert!(err("redis+socket:///tmp/s?ssl_certfile=c").is_config());
}

#[test]
fn tls() {
    assert!(url("amqps://h").is_tls());
    assert!(url("rediss://h").is_tls());
    // The TLS schemes force it, as SSLTransport and rediss do in Kombu.
    assert!(url("amqps://h?ssl=false").is_tls());
    assert!(url("rediss://h?ssl=0").is_tls());
    for on in ["true", "TRUE", "1", "yes", "On"] {
        assert!(url(&format!("amqp://h?ssl={on}")).is_tls(), "{on}");
        assert!(url(&format!("redis://h?ssl={on}")).is_tls(), "{on}");
    }
    for off in ["false", "False", "0", "no", "OFF"] {
        let u = url(&format!("amqp://h?ssl={off}"));
        assert!(!u.is_tls(), "{off}");
        assert_eq!(u.port(), Some(5672));
    }
    assert!(!url("amqp://h").is_tls());
    assert!(!url("amqp://h?ssl=").is_tls());
    assert!(
        err("amqp://h?ssl=maybe")
            .message()
            .contains("invalid ssl option")
    );
    // ssl_* options imply TLS, as a non-empty ssl dict does in Kombu.
    let u = url("amqp://h?ssl_cert_reqs=required");
    assert!(u.is_tls());
    assert_eq!(u.port(), Some(5671));
    assert!(url("redis://h?ssl_ca_certs=/ca.pem").is_tls());
    assert!(
        err("amqp://h?ssl=false&ssl_certfile=c")
            .message()
            .contains("contradicts")
    );
}

#[test]
fn ssl_options() {
    let u = url(
        "rediss://h/0?ssl_cert_reqs=CERT_OPTIONAL&ssl_ca_certs=%2Fetc%2Fca.pem\
         &ssl_certfile=c.pem&ssl_keyfile=k.pem&ssl_check_hostname=False&heartbeat=3&ssl_certfile=d.pem",
    );
    assert_eq!(
        u.ssl_options(),
        [
            ("cert_reqs", "optional"),
            ("ca_certs", "/etc/ca.pem"),
            ("keyfile", "k.pem"),
            ("check_hostname", "false"),
            ("certfile", "d.pem"),
        ]
    );
    for (given, normal) in [
        ("required", "required"),
        ("NONE", "none"),
        ("CERT_REQUIRED", "required"),
        ("cert_none", "none"),
    ] {
        let u = url(&format!("amqp://h?ssl_cert_reqs={given}"));
        assert_eq!(u.ssl_options(), [("cert_reqs", normal)]);
    }
    assert!(url("amqps://h").ssl_options().is_empty());
    assert!(
        err("amqp://h?ssl_cert_reqs=bogus")
            .message()
            .contains("invalid ssl_cert_reqs")
    );
    assert!(err("amqp://h?ssl_check_hostname=perhaps").is_config());
}

#[test]
fn seconds_options() {
    let u = url("amqp://h/?heartbeat=0.5&connect_timeout=3");
    assert_eq!(
        u.heartbeat().ok().flatten(),
        Some(Duration::from_millis(500))
    );
    assert_eq!(
        u.connect_timeout().ok().flatten(),
        Some(Duration::from_secs(3))
    );
    let u = url("amqp://h/?heartbeat=60");
    assert_eq!(u.heartbeat().ok().flatten(), Some(Duration::from_secs(60)));
    assert_eq!(u.connect_timeout().ok().flatten(), None);
    assert!(matches!(url("amqp://h/?heartbeat=0").heartbeat(), Ok(None)));
    assert!(matches!(
        url("amqp://h/?heartbeat=0.0").heartbeat(),
        Ok(None)
    ));
    assert!(matches!(url("amqp://h/").heartbeat(), Ok(None)));
    assert!(matches!(url("amqp://h/?heartbeat=").heartbeat(), Ok(None)));
    assert!(
        matches!(url("amqp://h/?heartbeat=+5").heartbeat(), Ok(Some(d)) if d == Duration::from_secs(5))
    );
    for bad in ["-1", "abc", "nan", "inf", "1e400", "5s", "-0.5"] {
        let u = url(&format!("amqp://h/?heartbeat={bad}&connect_timeout={bad}"));
        let e = u
            .heartbeat()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("heartbeat") && e.contains("configuration error"),
            "{bad}: {e:?}"
        );
        assert!(u.connect_timeout().is_err_and(|e| e.is_config()), "{bad}");
    }
    assert!(
        url("amqp://h/?connect_timeout=0")
            .connect_timeout()
            .is_err_and(|e| e.is_config())
    );
}

#[test]
fn other_query_options() {
    let u =
        url("amqp://h/?login_method=AMQPLAIN&flag=YES&off=0&weird=maybe&a=1&a=2&empty=&bare");
    assert_eq!(u.login_method(), Some("AMQPLAIN"));
    assert_eq!(
        url("amqp://h/?login_method=external").login_method(),
        Some("external")
    );
    assert_eq!(url("amqp://h/").login_method(), None);
    assert!(matches!(u.query_bool("flag"), Ok(Some(true))));
    assert!(matches!(u.query_bool("off"), Ok(Some(false))));
    assert!(matches!(u.query_bool("absent"), Ok(None)));
    assert!(u.query_bool("weird").is_err_and(|e| e.is_config()));
    // The last repeat wins, blank options are dropped (parse_qsl).
    assert_eq!(u.query_param("a"), Some("2"));
    assert_eq!(u.query_param("empty"), None);
    assert_eq!(u.query_param("bare"), None);
    let keys: Vec<&str> = u.query().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["login_method", "flag", "off", "weird", "a", "a"]);
    // Options naming a URL part are refused, as Kombu refuses them.
    for key in CONFLICTING_KEYS {
        let e = err(&format!("amqp://h/v?{key}=x"));
        assert!(e.message().contains("conflicts"), "{key}: {e}");
    }
}

#[test]
fn equality_and_hash() {
    let same = [
        "amqp://h",
        "amqp://guest:guest@h:5672//",
        "AMQP://H:5672/%2F",
        "pyamqp://h",
        "amqp://h:0",
    ];
    let set: HashSet<BrokerUrl> = same.iter().map(|s| url(s)).collect();
    assert_eq!(set.len(), 1);
    let different = [
        "amqp://h",
        "amqp://h2",
        "amqp://h:5673",
        "amqp://h/v",
        "amqp://u@h",
        "amqp://u:x@h",
        "amqps://h",
        "amqp://h?ssl=1",
        "amqp://h?heartbeat=1",
        "redis://h",
        "redis://h/1",
        "memory://h",
        "sentinel://h",
        "redis+socket:///h",
    ];
    let set: HashSet<BrokerUrl> = different.iter().map(|s| url(s)).collect();
    assert_eq!(set.len(), different.len());
}

/// xorshift64*: enough randomness for a fuzz-style test without a
/// dependency, and reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or("")
    }
}

#[rustfmt::skip]
const PIECES: &[&str] = &[
    "amqp", "amqps", "pyamqp", "redis", "rediss", "redis+socket", "sentinel", "memory", "AMQP",
    "foo", "://", ":", "@", "/", "//", "?", "&", "=", "#", ";", "[", "]", "%", "%2F", "%2f",
    "%25", "%3A", "%40", "%FF", "%C3%BC", "%C4%B0", "%E2%82", "%zz", "+", " ", "\t", "h", "H",
    "host", "guest", "u", "p", "s3cret", "::1", "fe80::1%25eth0", "1.2.3.4", "0", "5672",
    "65535", "65536", "99999999999", "-1", "ü", "İ", "ẞ", "Σ", "\u{0}", "\u{7f}", "ssl=1",
    "ssl=false", "ssl_cert_reqs=none", "ssl_ca_certs=/x", "heartbeat=0.5", "virtual_host=2",
    "virtual_host", "password=x", "a=b", "x", "1", "2", "tmp", "sock", ".", "-", "~", "*",
];

fn random_input(rng: &mut Rng) -> String {
    match rng.below(4) {
        // Raw bytes, lossily made text.
        0 => {
            let len = rng.below(40);
            let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0xff) as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        // A plausible skeleton with random parts.
        1 => {
            let mut s = String::new();
            s.push_str(rng.pick(&[
                "amqp",
                "amqps",
                "pyamqp",
                "redis",
                "rediss",
                "sentinel",
                "memory",
                "redis+socket",
            ]));
            s.push_str("://");
            for _ in 0..rng.below(12) {
                s.push_str(rng.pick(PIECES));
            }
            s
        }
        // Pieces in any order.
        _ => {
            let mut s = String::new();
            for _ in 0..rng.below(16) {
                s.push_str(rng.pick(PIECES));
            }
            s
        }
    }
}

fn same_location(a: &BrokerUrl, b: &BrokerUrl) -> bool {
    a.scheme.canonical() == b.scheme.canonical()
        && a.host == b.host
        && a.port == b.port
        && a.userid == b.userid
        && a.password == b.password
        && (a.virtual_host == b.virtual_host || a.socket_path.is_some())
        && a.socket_path == b.socket_path
}

#[test]
fn random_input_never_panics_and_round_trips() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut parsed = 0;
    for _ in 0..40_000 {
        let input = random_input(&mut rng);
        let Ok(u) = BrokerUrl::parse(&input) else {
            continue;
        };
        parsed += 1;
        // Every accessor must work on whatever parsed.
        let _ = (
            u.transport(),
            u.scheme(),
            u.is_tls(),
            u.host(),
            u.port(),
            u.userid(),
        );
        let _ = (
            u.password(),
            u.virtual_host(),
            u.redis_db(),
            u.socket_path(),
            u.query(),
        );
        let _ = (
            u.heartbeat(),
            u.connect_timeout(),
            u.login_method(),
            u.ssl_options(),
        );
        let _ = (
            u.query_bool("ssl"),
            u.query_param("ssl"),
            u.to_string(),
            format!("{u:?}"),
        );

        let full = u.as_uri(true);
        let again = BrokerUrl::parse(&full)
            .unwrap_or_else(|e| panic!("{input:?} -> {full:?} does not parse: {e}"));
        assert!(
            same_location(&u, &again),
            "{input:?} -> {full:?} -> {again:?}"
        );
        if u.query().is_empty() {
            assert_eq!(again, u, "{input:?} -> {full:?}");
        }
        // as_uri is a fixpoint once printed.
        assert_eq!(again.as_uri(true), full, "{input:?}");
        let with_query = u.as_uri_with_query(true);
        assert_eq!(
            BrokerUrl::parse(&with_query).ok(),
            Some(u.clone()),
            "{input:?} -> {with_query:?}"
        );
        // The masked forms do not depend on the password at all.
        let mut other = u.clone();
        other.password = u.password.as_ref().map(|p| format!("{p}-changed"));
        assert_eq!(other.as_uri(false), u.as_uri(false), "{input:?}");
        assert_eq!(other.to_string(), u.to_string(), "{input:?}");
    }
    assert!(
        parsed > 5_000,
        "only {parsed} inputs parsed; the generator is off"
    );
}
