//! Broker URLs with Kombu's semantics.
//!
//! A broker URL has the form
//! `transport://userid:password@hostname:port/virtual_host?options`, and
//! [`BrokerUrl`] reads it the way Kombu 5.7 does, so that a URL that works
//! with Celery/Kombu means the same broker here:
//!
//! * userid, password, host, virtual host and query values are
//!   percent-decoded (`%2F` is `/`); query values also read `+` as a space;
//! * IPv6 hosts are written in brackets, `amqp://[::1]:5672//`;
//! * the path minus its first `/` is the virtual host: `amqp://h//` and
//!   `amqp://h/%2F` name `/`, `amqp://h//foo` names `/foo`, `amqp://h/foo`
//!   names `foo`, and no path names the default `/`;
//! * missing parts take the transport's defaults: host `localhost`, the
//!   scheme's port, and `guest`/`guest` credentials for AMQP;
//! * [`BrokerUrl::as_uri`] prints exactly what Kombu's `Connection.as_uri()`
//!   prints, with the password masked as `**` unless asked for.
//!
//! Several URLs separated by `;` form a failover list, read with
//! [`BrokerUrl::parse_list`].
//!
//! Passwords never leak: `Display`, `Debug` and every error message show
//! them masked.
//!
//! Where kelp is stricter than Kombu, it fails at parse time rather than
//! when connecting: a non-numeric Redis database, `ssl=` values other than
//! a boolean, a query option that repeats a URL part (`?password=`), a
//! host or port on `redis+socket://`. It also reads `ssl=false` as off
//! (Kombu takes any non-empty string as on), lowercases the whole host
//! (Python stops at the first `%`), and trims surrounding whitespace.

use std::borrow::Cow;
use std::fmt;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::net::Ipv6Addr;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::error::{Error, Result};

/// Which transport a URL names.
///
/// # Examples
///
/// ```
/// use kelp::BrokerUrl;
/// use kelp::TransportKind;
///
/// assert_eq!(BrokerUrl::parse("pyamqp://rabbit//")?.transport(), TransportKind::Amqp);
/// assert_eq!(BrokerUrl::parse("memory://")?.transport(), TransportKind::Memory);
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// `memory://`
    Memory,
    /// `amqp://`, `amqps://`, `pyamqp://`
    Amqp,
    /// `redis://`, `rediss://`, `redis+socket://`
    Redis,
    /// `sentinel://`
    Sentinel,
}

/// The schemes [`BrokerUrl::parse`] understands, in the order error
/// messages list them.
const KNOWN_SCHEMES: &[&str] = &[
    "memory",
    "amqp",
    "amqps",
    "pyamqp",
    "redis",
    "rediss",
    "redis+socket",
    "sentinel",
];

/// The scheme as written; several schemes share a [`TransportKind`] but
/// differ in defaults (TLS, port) and in how [`BrokerUrl::as_uri`] prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Scheme {
    Memory,
    Amqp,
    PyAmqp,
    Amqps,
    Redis,
    Rediss,
    RedisSocket,
    Sentinel,
}

impl Scheme {
    fn from_name(name: &str) -> Option<Scheme> {
        Some(match name {
            "memory" => Scheme::Memory,
            "amqp" => Scheme::Amqp,
            "pyamqp" => Scheme::PyAmqp,
            "amqps" => Scheme::Amqps,
            "redis" => Scheme::Redis,
            "rediss" => Scheme::Rediss,
            "redis+socket" => Scheme::RedisSocket,
            "sentinel" => Scheme::Sentinel,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Scheme::Memory => "memory",
            Scheme::Amqp => "amqp",
            Scheme::PyAmqp => "pyamqp",
            Scheme::Amqps => "amqps",
            Scheme::Redis => "redis",
            Scheme::Rediss => "rediss",
            Scheme::RedisSocket => "redis+socket",
            Scheme::Sentinel => "sentinel",
        }
    }

    /// `pyamqp` is an alias that Kombu resolves before printing, so two
    /// spellings of the same broker compare equal and print alike.
    fn canonical(self) -> Scheme {
        match self {
            Scheme::PyAmqp => Scheme::Amqp,
            other => other,
        }
    }

    fn transport(self) -> TransportKind {
        match self {
            Scheme::Memory => TransportKind::Memory,
            Scheme::Amqp | Scheme::PyAmqp | Scheme::Amqps => TransportKind::Amqp,
            Scheme::Redis | Scheme::Rediss | Scheme::RedisSocket => TransportKind::Redis,
            Scheme::Sentinel => TransportKind::Sentinel,
        }
    }

    fn forces_tls(self) -> bool {
        matches!(self, Scheme::Amqps | Scheme::Rediss)
    }

    fn is_amqp(self) -> bool {
        self.transport() == TransportKind::Amqp
    }

    /// Redis transports read the virtual host as a database number.
    fn vhost_is_db(self) -> bool {
        matches!(
            self.transport(),
            TransportKind::Redis | TransportKind::Sentinel
        )
    }

    fn default_port(self, tls: bool) -> Option<u16> {
        match self {
            Scheme::Memory | Scheme::RedisSocket => None,
            // Kombu's py-amqp transport switches to the TLS port whenever ssl
            // is on, whichever way it was turned on.
            Scheme::Amqp | Scheme::PyAmqp | Scheme::Amqps => Some(if tls { 5671 } else { 5672 }),
            Scheme::Redis | Scheme::Rediss => Some(6379),
            Scheme::Sentinel => Some(26379),
        }
    }
}

/// Query keys that Kombu turns into `Connection` arguments of the same name
/// as a URL part; Kombu fails on them ("multiple values for keyword
/// argument"), and accepting them would leave two answers for one question.
const CONFLICTING_KEYS: &[&str] = &[
    "transport",
    "hostname",
    "port",
    "userid",
    "password",
    "virtual_host",
];

/// A parsed broker URL.
///
/// All accessors return effective values: the URL's own, or the transport's
/// default when the URL leaves a part out. Two URLs are equal when all these
/// parts and the query options are equal, so `amqp://h` equals
/// `amqp://guest:guest@h:5672//`, and `pyamqp://` equals `amqp://`.
///
/// # Examples
///
/// ```
/// use kelp::BrokerUrl;
///
/// let url = BrokerUrl::parse("amqp://app:s3cret@rabbit.internal:5673/orders?heartbeat=30")?;
/// assert_eq!(url.host(), "rabbit.internal");
/// assert_eq!(url.port(), Some(5673));
/// assert_eq!(url.userid(), Some("app"));
/// assert_eq!(url.virtual_host(), "orders");
/// // Safe to log: the password is masked.
/// assert_eq!(url.to_string(), "amqp://app:**@rabbit.internal:5673/orders");
/// # Ok::<(), kelp::Error>(())
/// ```
#[derive(Clone)]
pub struct BrokerUrl {
    scheme: Scheme,
    tls: bool,
    host: String,
    port: Option<u16>,
    userid: Option<String>,
    password: Option<String>,
    virtual_host: String,
    socket_path: Option<String>,
    query: Vec<(String, String)>,
}

impl BrokerUrl {
    /// The schemes [`BrokerUrl::parse`] understands, in the order error
    /// messages list them.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(kelp::BrokerUrl::KNOWN_SCHEMES.contains(&"amqps"));
    /// ```
    pub const KNOWN_SCHEMES: &'static [&'static str] = KNOWN_SCHEMES;

    /// Parse one URL.
    ///
    /// Fails with a [`Config`](crate::ErrorKind::Config) error on an empty
    /// string, a string without `://`, an unknown scheme, a bad port, a bad
    /// IPv6 literal, a bad `ssl`/`ssl_*` option, a non-numeric Redis database,
    /// or a `;` (a list, which [`parse_list`](BrokerUrl::parse_list) reads).
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::BrokerUrl;
    ///
    /// // Missing parts take the defaults.
    /// let url = BrokerUrl::parse("amqp://rabbit")?;
    /// assert_eq!(url.as_uri(true), "amqp://guest:guest@rabbit:5672//");
    ///
    /// assert!(BrokerUrl::parse("rabbit:5672").unwrap_err().is_config()); // no scheme
    /// assert!(BrokerUrl::parse("amqp://a;amqp://b").is_err()); // a list: use parse_list
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn parse(s: &str) -> Result<BrokerUrl> {
        let cleaned = clean(s);
        let raw: &str = &cleaned;
        if raw.is_empty() {
            return Err(Error::config("empty broker URL"));
        }
        if raw.contains(';') {
            // Kombu's Connection treats `;` as a list separator before any
            // parsing; silently keeping only the first URL would drop the
            // failover alternates.
            return Err(Error::config(
                "broker URL contains ';', which separates failover alternates: \
                 read it with BrokerUrl::parse_list",
            ));
        }
        let Some((scheme_text, rest)) = raw.split_once("://") else {
            // The input is not echoed: without structure we cannot tell
            // where a password would be.
            return Err(Error::config(
                "broker URL has no '://': expected \
                 transport://userid:password@hostname:port/virtual_host",
            ));
        };
        if scheme_text.is_empty() {
            return Err(config_error(raw, "missing transport scheme before '://'"));
        }
        if !is_scheme_text(scheme_text) {
            return Err(config_error(
                raw,
                "the transport scheme may only hold letters, digits, '+', '-' and '.'",
            ));
        }
        let lowered = scheme_text.to_ascii_lowercase();
        let Some(scheme) = Scheme::from_name(&lowered) else {
            return Err(config_error(
                raw,
                format!(
                    "unknown transport scheme '{scheme_text}' (known schemes: {})",
                    KNOWN_SCHEMES.join(", ")
                ),
            ));
        };
        Self::from_parts(scheme, raw, split_rest(rest))
    }

    fn from_parts(scheme: Scheme, raw: &str, parts: RawParts<'_>) -> Result<BrokerUrl> {
        let (userid, password) = match parts.userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, pass)) => (non_empty(decode(user)), non_empty(decode(pass))),
                None => (non_empty(decode(info)), None),
            },
        };
        let (host, port) = split_host_port(parts.hostinfo).map_err(|p| config_error(raw, p))?;
        let query = parse_query(parts.query);

        for (key, _) in &query {
            let allowed = scheme == Scheme::RedisSocket && key == "virtual_host";
            if CONFLICTING_KEYS.contains(&key.as_str()) && !allowed {
                return Err(config_error(
                    raw,
                    format!("query option '{key}' conflicts with the URL's own {key}"),
                ));
            }
        }

        let tls = decide_tls(scheme, &query).map_err(|p| config_error(raw, p))?;

        let (virtual_host, socket_path) = if scheme == Scheme::RedisSocket {
            // The path names the socket; the database comes from the query,
            // as Kombu's Redis transport passes query options to redis-py.
            if host.is_some() || port.is_some() {
                return Err(config_error(
                    raw,
                    "a redis+socket URL takes no host or port: its path is the socket \
                     (redis+socket:///path/to/socket)",
                ));
            }
            let stripped = parts.path.strip_prefix('/').unwrap_or(parts.path);
            if stripped.is_empty() {
                return Err(config_error(
                    raw,
                    "a redis+socket URL needs the socket's path",
                ));
            }
            let path = format!("/{}", decode(stripped));
            let vhost =
                last_value(&query, "virtual_host").map_or_else(|| "/".to_owned(), str::to_owned);
            (vhost, Some(path))
        } else {
            let stripped = parts.path.strip_prefix('/').unwrap_or(parts.path);
            let vhost = non_empty(decode(stripped)).unwrap_or_else(|| "/".to_owned());
            (vhost, None)
        };
        if scheme.vhost_is_db() && redis_db_of(&virtual_host).is_none() {
            return Err(config_error(
                raw,
                "the Redis database (the URL's path, or virtual_host= for redis+socket) \
                 must be a number",
            ));
        }

        let port = port.or(scheme.default_port(tls));
        let (userid, password) = if scheme.is_amqp() {
            (
                userid.or_else(|| Some("guest".to_owned())),
                password.or_else(|| Some("guest".to_owned())),
            )
        } else {
            (userid, password)
        };

        Ok(BrokerUrl {
            scheme,
            tls,
            host: host.unwrap_or_else(|| "localhost".to_owned()),
            port,
            userid,
            password,
            virtual_host,
            socket_path,
            query,
        })
    }

    /// Parse a `;`-separated list of URLs.
    ///
    /// Pieces are trimmed and empty pieces skipped, so `"amqp://a; amqp://b;"`
    /// is two URLs. Only `;` separates (as in Kombu); a comma is part of a URL.
    /// Fails when a piece does not parse or when there is no URL at all.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::BrokerUrl;
    ///
    /// let urls = BrokerUrl::parse_list("amqp://rabbit-a//; amqp://rabbit-b//;")?;
    /// assert_eq!(urls.len(), 2);
    /// assert_eq!(urls[1].host(), "rabbit-b");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn parse_list(s: &str) -> Result<Vec<BrokerUrl>> {
        let mut urls = Vec::new();
        let pieces = s.split(';').map(str::trim).filter(|p| !p.is_empty());
        for (number, piece) in (1_usize..).zip(pieces) {
            let url = BrokerUrl::parse(piece).map_err(|e| {
                Error::config(format!("URL #{number} of the list: {}", e.message()))
            })?;
            urls.push(url);
        }
        if urls.is_empty() {
            return Err(Error::config("empty list of broker URLs"));
        }
        Ok(urls)
    }

    /// The transport.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::BrokerUrl;
    /// use kelp::TransportKind;
    ///
    /// assert_eq!(BrokerUrl::parse("rediss://cache:6380/0")?.transport(), TransportKind::Redis);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn transport(&self) -> TransportKind {
        self.scheme.transport()
    }

    /// The scheme as written, lowercased (`pyamqp` stays `pyamqp` here,
    /// though [`as_uri`](BrokerUrl::as_uri) prints it as `amqp`).
    ///
    /// # Examples
    ///
    /// ```
    /// let url = kelp::BrokerUrl::parse("pyamqp://rabbit//")?;
    /// assert_eq!(url.scheme(), "pyamqp");
    /// assert!(url.as_uri(false).starts_with("amqp://"));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn scheme(&self) -> &str {
        self.scheme.name()
    }

    /// True for TLS schemes or `ssl=true`.
    ///
    /// `amqps://` and `rediss://` always use TLS; otherwise `ssl=` in the
    /// query decides, and any `ssl_*` option turns TLS on too, as in Kombu,
    /// where those options make up the (then non-empty) ssl settings.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::BrokerUrl;
    ///
    /// assert!(BrokerUrl::parse("amqps://rabbit//")?.is_tls());
    /// assert!(BrokerUrl::parse("amqp://rabbit//?ssl=true")?.is_tls());
    /// assert!(!BrokerUrl::parse("amqp://rabbit//")?.is_tls());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The host: percent-decoded, lowercased, brackets of an IPv6 literal
    /// removed (`::1`), or `localhost` when the URL names none.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::BrokerUrl;
    ///
    /// assert_eq!(BrokerUrl::parse("amqp://[::1]:5672//")?.host(), "::1");
    /// assert_eq!(BrokerUrl::parse("amqp://")?.host(), "localhost");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, explicit or the scheme's default.
    ///
    /// Defaults: AMQP 5672 (5671 with TLS), Redis 6379, Sentinel 26379, none
    /// for `memory://` and `redis+socket://`. Port 0 counts as no port, as in
    /// Kombu.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::BrokerUrl;
    ///
    /// assert_eq!(BrokerUrl::parse("amqps://rabbit//")?.port(), Some(5671));
    /// assert_eq!(BrokerUrl::parse("redis://cache")?.port(), Some(6379));
    /// assert_eq!(BrokerUrl::parse("memory://")?.port(), None);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The user id, explicit or the transport's default (`guest` for AMQP).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(kelp::BrokerUrl::parse("amqp://rabbit//")?.userid(), Some("guest"));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn userid(&self) -> Option<&str> {
        self.userid.as_deref()
    }

    /// The password, explicit or the transport's default (`guest` for AMQP).
    ///
    /// # Examples
    ///
    /// ```
    /// // Percent-encoding lets a password hold reserved characters.
    /// let url = kelp::BrokerUrl::parse("amqp://app:p%40ss@rabbit//")?;
    /// assert_eq!(url.password(), Some("p@ss"));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The virtual host after Kombu's rules; `/` when the URL names none.
    ///
    /// For Redis it is the database number as written (`redis://h/2` gives
    /// `"2"`; see [`redis_db`](BrokerUrl::redis_db)); for `redis+socket://` it
    /// is the `virtual_host=` query option.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::BrokerUrl;
    ///
    /// assert_eq!(BrokerUrl::parse("amqp://rabbit//")?.virtual_host(), "/");
    /// assert_eq!(BrokerUrl::parse("amqp://rabbit/staging")?.virtual_host(), "staging");
    /// assert_eq!(BrokerUrl::parse("amqp://rabbit/%2Fstaging")?.virtual_host(), "/staging");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn virtual_host(&self) -> &str {
        &self.virtual_host
    }

    /// The Redis database number, for Redis and Sentinel URLs: the virtual
    /// host read as Kombu's Redis transport reads it (`/` or nothing is 0, a
    /// leading `/` is dropped). `None` for other transports.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::BrokerUrl;
    ///
    /// assert_eq!(BrokerUrl::parse("redis://cache/2")?.redis_db(), Some(2));
    /// assert_eq!(BrokerUrl::parse("redis://cache")?.redis_db(), Some(0));
    /// assert_eq!(BrokerUrl::parse("amqp://rabbit//")?.redis_db(), None);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn redis_db(&self) -> Option<u32> {
        if self.scheme.vhost_is_db() {
            redis_db_of(&self.virtual_host)
        } else {
            None
        }
    }

    /// The Unix socket path of a `redis+socket:///path/to/socket` URL.
    ///
    /// # Examples
    ///
    /// ```
    /// let url = kelp::BrokerUrl::parse("redis+socket:///run/redis.sock")?;
    /// assert_eq!(url.socket_path(), Some("/run/redis.sock"));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn socket_path(&self) -> Option<&str> {
        self.socket_path.as_deref()
    }

    /// A query option, percent-decoded; the last one wins when a key repeats
    /// (as in Kombu, which reads the query into a dict).
    ///
    /// # Examples
    ///
    /// ```
    /// let url = kelp::BrokerUrl::parse("amqp://rabbit//?region=eu%20west&region=us")?;
    /// assert_eq!(url.query_param("region"), Some("us"));
    /// assert_eq!(url.query_param("zone"), None);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn query_param(&self, key: &str) -> Option<&str> {
        last_value(&self.query, key)
    }

    /// All query options in order, percent-decoded. Options with an empty
    /// value (`?a=` or `?a`) are dropped, as Python's `parse_qsl` drops them.
    ///
    /// # Examples
    ///
    /// ```
    /// let url = kelp::BrokerUrl::parse("amqp://rabbit//?heartbeat=10&empty=")?;
    /// assert_eq!(url.query(), [("heartbeat".to_string(), "10".to_string())]);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn query(&self) -> &[(String, String)] {
        &self.query
    }

    /// A boolean query option: `true`/`false`, `1`/`0`, `yes`/`no`,
    /// `on`/`off`, in any case. `Ok(None)` when absent; a Config error for
    /// any other value.
    ///
    /// # Examples
    ///
    /// ```
    /// let url = kelp::BrokerUrl::parse("amqp://rabbit//?confirm_publish=yes&verbose=maybe")?;
    /// assert_eq!(url.query_bool("confirm_publish")?, Some(true));
    /// assert_eq!(url.query_bool("absent")?, None);
    /// assert!(url.query_bool("verbose").unwrap_err().is_config());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn query_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.query_param(key) {
            None => Ok(None),
            Some(value) => parse_bool(value).map(Some).ok_or_else(|| {
                Error::config(format!(
                    "invalid {key} option in {self}: expected true/false, 1/0, yes/no or on/off"
                ))
            }),
        }
    }

    /// The TLS options given as `ssl_*` query keys, without the `ssl_`
    /// prefix, as Kombu folds them into its ssl settings: `ssl_ca_certs`,
    /// `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`, `ssl_check_hostname`...
    ///
    /// Each key appears once (the last value wins). `cert_reqs` is normalised
    /// to `required`, `optional` or `none` (Kombu also accepts `CERT_REQUIRED`
    /// and friends) and `check_hostname` to `true` or `false`; both were
    /// checked by [`parse`](BrokerUrl::parse). Other values are as given.
    ///
    /// # Examples
    ///
    /// ```
    /// let url = kelp::BrokerUrl::parse(
    ///     "amqps://rabbit//?ssl_ca_certs=/etc/ssl/ca.pem&ssl_cert_reqs=CERT_REQUIRED",
    /// )?;
    /// assert_eq!(url.ssl_options(), [("ca_certs", "/etc/ssl/ca.pem"), ("cert_reqs", "required")]);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn ssl_options(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        let mut rest = self.query.as_slice();
        while let Some(((key, value), later)) = rest.split_first() {
            rest = later;
            let Some(name) = key.strip_prefix("ssl_") else {
                continue;
            };
            if later.iter().any(|(k, _)| k == key) {
                continue;
            }
            let value: &str = match name {
                "cert_reqs" => cert_reqs_of(value).unwrap_or(value),
                "check_hostname" => match parse_bool(value) {
                    Some(true) => "true",
                    Some(false) => "false",
                    None => value,
                },
                _ => value,
            };
            out.push((name, value));
        }
        out
    }

    /// `login_method=`: the AMQP SASL mechanism (`PLAIN`, `AMQPLAIN`,
    /// `EXTERNAL`...), exactly as given. `None` when absent, in which case
    /// the AMQP transport uses `PLAIN`, as Kombu's does. Not checked here:
    /// brokers may offer mechanisms kelp does not know.
    ///
    /// # Examples
    ///
    /// ```
    /// // Authenticate with the client certificate instead of a password.
    /// let url = kelp::BrokerUrl::parse("amqps://rabbit//?login_method=EXTERNAL")?;
    /// assert_eq!(url.login_method(), Some("EXTERNAL"));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn login_method(&self) -> Option<&str> {
        self.query_param("login_method")
    }

    /// `heartbeat=` in seconds (fractions allowed, `heartbeat=0.5`).
    ///
    /// `Ok(None)` when absent or 0 (heartbeats off); a Config error when
    /// negative, not finite or not a number.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use kelp::BrokerUrl;
    ///
    /// let url = BrokerUrl::parse("amqp://rabbit//?heartbeat=2.5")?;
    /// assert_eq!(url.heartbeat()?, Some(Duration::from_millis(2500)));
    /// assert_eq!(BrokerUrl::parse("amqp://rabbit//?heartbeat=0")?.heartbeat()?, None); // off
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn heartbeat(&self) -> Result<Option<Duration>> {
        Ok(self.seconds("heartbeat")?.filter(|d| !d.is_zero()))
    }

    /// `connect_timeout=` in seconds (fractions allowed).
    ///
    /// `Ok(None)` when absent; a Config error when negative, zero (no
    /// connection could ever be made), not finite or not a number.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let url = kelp::BrokerUrl::parse("amqp://rabbit//?connect_timeout=3")?;
    /// assert_eq!(url.connect_timeout()?, Some(Duration::from_secs(3)));
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn connect_timeout(&self) -> Result<Option<Duration>> {
        match self.seconds("connect_timeout")? {
            Some(d) if d.is_zero() => Err(Error::config(format!(
                "invalid connect_timeout option in {self}: the timeout must be greater than zero"
            ))),
            other => Ok(other),
        }
    }

    fn seconds(&self, key: &str) -> Result<Option<Duration>> {
        match self.query_param(key) {
            None => Ok(None),
            Some(value) => parse_seconds(value).map(Some).ok_or_else(|| {
                Error::config(format!(
                    "invalid {key} option in {self}: expected a non-negative number of seconds"
                ))
            }),
        }
    }

    /// The URL, with the password masked as `**` unless asked for.
    ///
    /// This is exactly Kombu's `Connection(url).as_uri(include_password)`:
    /// defaults filled in (`amqp://h` prints `amqp://guest:**@h:5672//`),
    /// `pyamqp` printed as `amqp`, and query options left out, except that
    /// the unmasked form of a `redis+socket://` URL keeps them (Kombu prints
    /// that URL back as given). Use
    /// [`as_uri_with_query`](BrokerUrl::as_uri_with_query) for a form that
    /// keeps every option.
    ///
    /// # Examples
    ///
    /// ```
    /// let url = kelp::BrokerUrl::parse("amqp://app:s3cret@rabbit//?heartbeat=30")?;
    /// assert_eq!(url.as_uri(false), "amqp://app:**@rabbit:5672//");
    /// assert_eq!(url.as_uri(true), "amqp://app:s3cret@rabbit:5672//");
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn as_uri(&self, include_password: bool) -> String {
        self.render(if include_password { Password::Show } else { Password::MaskAlways }, false)
    }

    /// [`as_uri`](BrokerUrl::as_uri) followed by the query options, so that
    /// parsing the unmasked form gives back an equal URL, options included.
    /// Not a Kombu format: Kombu has no printer that keeps the options.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::BrokerUrl;
    ///
    /// let url = BrokerUrl::parse("amqp://rabbit//?heartbeat=30")?;
    /// let printed = url.as_uri_with_query(true);
    /// assert_eq!(printed, "amqp://guest:guest@rabbit:5672//?heartbeat=30");
    /// assert_eq!(BrokerUrl::parse(&printed)?, url);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn as_uri_with_query(&self, include_password: bool) -> String {
        self.render(if include_password { Password::Show } else { Password::MaskAlways }, true)
    }

    fn render(&self, password_mode: Password, with_query: bool) -> String {
        let include_password = password_mode == Password::Show;
        let mut out = String::new();
        // Kombu prints an unmasked redis+socket URL back as it was given, so
        // a canonically written one comes back unchanged, options included.
        let with_query = with_query || (include_password && self.socket_path.is_some());
        if let Some(path) = &self.socket_path {
            // The masked form goes through Kombu's sanitize_url, which masks
            // only a password that is there.
            let password = self.password.as_deref().map(|p| {
                if include_password {
                    Cow::Owned(quote(p, QUOTE))
                } else {
                    Cow::Borrowed("**")
                }
            });
            out.push_str("redis+socket://");
            push_userinfo(&mut out, self.userid.as_deref(), password);
            if with_query {
                out.push_str(&quote(path, QUOTE_PATH));
            } else {
                // sanitize_url prints the decoded path without quoting it
                // again.
                out.push_str(path);
            }
        } else {
            out.push_str(self.scheme.canonical().name());
            out.push_str("://");
            // Kombu's Connection.as_uri always masks, even when there is no
            // password at all: `memory://:**@localhost//`.
            let password = match password_mode {
                Password::Show => self.password.as_deref().map(|p| Cow::Owned(quote(p, QUOTE))),
                Password::MaskAlways => Some(Cow::Borrowed("**")),
                Password::MaskPresent => self.password.as_ref().map(|_| Cow::Borrowed("**")),
            };
            push_userinfo(&mut out, self.userid.as_deref(), password);
            out.push_str(&quote(&self.host, QUOTE));
            if let Some(port) = self.port {
                let _ = write!(out, ":{port}");
            }
            out.push('/');
            out.push_str(&quote(&self.virtual_host, QUOTE_PATH));
        }
        if with_query && !self.query.is_empty() {
            out.push('?');
            for (index, (key, value)) in self.query.iter().enumerate() {
                if index > 0 {
                    out.push('&');
                }
                out.push_str(&quote(key, QUOTE));
                out.push('=');
                out.push_str(&quote(value, QUOTE));
            }
        }
        out
    }

    fn eq_key(&self) -> impl Eq + Hash + '_ {
        (
            self.scheme.canonical(),
            self.tls,
            &self.host,
            self.port,
            &self.userid,
            &self.password,
            &self.virtual_host,
            &self.socket_path,
            &self.query,
        )
    }
}

impl PartialEq for BrokerUrl {
    fn eq(&self, other: &BrokerUrl) -> bool {
        self.eq_key() == other.eq_key()
    }
}

impl Eq for BrokerUrl {}

impl Hash for BrokerUrl {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.eq_key().hash(state);
    }
}

/// How a printed URL shows its password.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Password {
    Show,
    /// Kombu's `as_uri()`: `**` even where there is none.
    MaskAlways,
    /// `**` for a password that is there; nothing where there is none.
    MaskPresent,
}

/// The form for logs and messages: a password that is there is masked, and
/// a URL without one shows none (`memory://localhost//`, where Kombu's
/// [`as_uri`](BrokerUrl::as_uri) prints `memory://:**@localhost//`).
impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Password::MaskPresent, false))
    }
}

impl fmt::Debug for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BrokerUrl({self})")
    }
}

impl std::str::FromStr for BrokerUrl {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<BrokerUrl> {
        BrokerUrl::parse(s)
    }
}

/// The pieces of the text after `://`, still percent-encoded.
struct RawParts<'a> {
    userinfo: Option<&'a str>,
    hostinfo: &'a str,
    path: &'a str,
    query: &'a str,
}

/// Split as Python's `urlsplit` does: the authority ends at the first `/`,
/// `?` or `#`; the fragment is cut before the query.
fn split_rest(rest: &str) -> RawParts<'_> {
    let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (netloc, after) = rest.split_at_checked(netloc_end).unwrap_or((rest, ""));
    let after = after.split_once('#').map_or(after, |(before, _)| before);
    let (path, query) = after.split_once('?').unwrap_or((after, ""));
    // The userinfo ends at the last '@', so an unquoted '@' in a password
    // still works, as in Python.
    let (userinfo, hostinfo) = match netloc.rsplit_once('@') {
        Some((info, host)) => (Some(info), host),
        None => (None, netloc),
    };
    RawParts {
        userinfo,
        hostinfo,
        path,
        query,
    }
}

/// Host and port from `host:port` or `[v6]:port`; the host decoded and
/// lowercased (`None` when empty), port 0 read as no port.
fn split_host_port(hostinfo: &str) -> std::result::Result<(Option<String>, Option<u16>), String> {
    let (host, port_text) = if let Some(bracketed) = hostinfo.strip_prefix('[') {
        let Some((literal, after)) = bracketed.split_once(']') else {
            return Err("invalid IPv6 literal: missing ']'".to_owned());
        };
        let port_text = if after.is_empty() {
            ""
        } else if let Some(port) = after.strip_prefix(':') {
            port
        } else {
            return Err("invalid IPv6 literal: only ':port' may follow ']'".to_owned());
        };
        // A zone id (`fe80::1%25eth0`) follows the address after '%'.
        let address = literal.split_once('%').map_or(literal, |(a, _)| a);
        if address.parse::<Ipv6Addr>().is_err() {
            return Err("invalid IPv6 literal in brackets".to_owned());
        }
        (literal, port_text)
    } else if hostinfo.contains(['[', ']']) {
        return Err("invalid IPv6 literal: brackets must enclose the whole host".to_owned());
    } else {
        hostinfo.split_once(':').unwrap_or((hostinfo, ""))
    };
    let port = parse_port(port_text)?;
    // Lowercase after decoding (Python does it before), so that printing and
    // parsing again gives the same host.
    let host = non_empty(decode(host).to_lowercase());
    Ok((host, port))
}

fn parse_port(text: &str) -> std::result::Result<Option<u16>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        // The text itself is not shown: in a malformed URL it may be part
        // of a password (`amqp://user:secret/x@host`).
        let hint = if text.contains(':') {
            " (an IPv6 address must be written in brackets, [::1])"
        } else {
            ""
        };
        return Err(format!("the port is not a number{hint}"));
    }
    // Leading zeros are allowed (`:05` is 5), as Python's int() allows them.
    let significant = text.trim_start_matches('0');
    let value = if significant.is_empty() {
        Some(0)
    } else if significant.len() > 5 {
        None
    } else {
        significant.parse::<u16>().ok()
    };
    match value {
        None => Err("the port is out of range 0-65535".to_owned()),
        Some(0) => Ok(None),
        Some(port) => Ok(Some(port)),
    }
}

/// `ssl=` and `ssl_*` options into one decision, rejecting what Kombu
/// cannot make sense of either.
fn decide_tls(scheme: Scheme, query: &[(String, String)]) -> std::result::Result<bool, String> {
    let explicit = match last_value(query, "ssl") {
        None => None,
        Some(value) => Some(parse_bool(value).ok_or_else(|| {
            "invalid ssl option: expected true/false, 1/0, yes/no or on/off".to_owned()
        })?),
    };
    let mut has_ssl_options = false;
    for (key, value) in query {
        let Some(name) = key.strip_prefix("ssl_") else {
            continue;
        };
        has_ssl_options = true;
        match name {
            "cert_reqs" if cert_reqs_of(value).is_none() => {
                return Err(
                    "invalid ssl_cert_reqs option: expected required, optional or none".to_owned(),
                );
            }
            "check_hostname" if parse_bool(value).is_none() => {
                return Err("invalid ssl_check_hostname option: expected true or false".to_owned());
            }
            _ => {}
        }
    }
    if scheme == Scheme::RedisSocket && (explicit == Some(true) || has_ssl_options) {
        return Err("TLS options make no sense on a Unix socket (redis+socket)".to_owned());
    }
    if explicit == Some(false) && has_ssl_options {
        return Err("ssl=false contradicts the ssl_* options".to_owned());
    }
    Ok(scheme.forces_tls() || explicit == Some(true) || has_ssl_options)
}

/// Kombu's spellings of `ssl_cert_reqs`, in any case, to one spelling.
fn cert_reqs_of(value: &str) -> Option<&'static str> {
    let lower = value.trim().to_ascii_lowercase();
    let short = lower.strip_prefix("cert_").unwrap_or(&lower);
    match short {
        "required" => Some("required"),
        "optional" => Some("optional"),
        "none" => Some("none"),
        _ => None,
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_seconds(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(seconds).ok()
}

/// Kombu's Redis transport: nothing or `/` is database 0, one leading `/`
/// is dropped, the rest must be a number.
fn redis_db_of(vhost: &str) -> Option<u32> {
    if vhost.is_empty() || vhost == "/" {
        return Some(0);
    }
    let digits = vhost.strip_prefix('/').unwrap_or(vhost);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn last_value<'a>(query: &'a [(String, String)], key: &str) -> Option<&'a str> {
    query
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Python's `parse_qsl` with its defaults: `&` separates, pairs without
/// `=` or with an empty value are dropped, `+` is a space.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            if value.is_empty() {
                return None;
            }
            Some((
                decode(&key.replace('+', " ")),
                decode(&value.replace('+', " ")),
            ))
        })
        .collect()
}

/// Python's `urlsplit` first strips leading control characters and spaces
/// and removes tabs and line breaks anywhere; trailing ones go too here.
fn clean(s: &str) -> Cow<'_, str> {
    let trimmed = s.trim_matches(|c: char| c <= ' ');
    if trimmed.contains(['\t', '\r', '\n']) {
        Cow::Owned(
            trimmed
                .chars()
                .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
                .collect(),
        )
    } else {
        Cow::Borrowed(trimmed)
    }
}

fn is_scheme_text(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn non_empty(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

/// Percent-decoding as Python's `unquote`: malformed escapes stay as they
/// are, and bytes that are not UTF-8 become U+FFFD.
fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// What Python's `quote(s, safe="")` leaves alone: letters, digits and `_.-~`.
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'.').remove(b'-').remove(b'~');
/// Python's `quote(s, safe="/")`.
const QUOTE_PATH: &AsciiSet = &QUOTE.remove(b'/');

/// Percent-encoding as Python's `quote`: every byte outside `set` becomes
/// `%XX` (upper-case hex, as Python writes it).
fn quote(s: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(s, set).to_string()
}

/// Kombu's `as_url`: `user:password@`, each part only when present.
fn push_userinfo(out: &mut String, userid: Option<&str>, password: Option<Cow<'_, str>>) {
    if userid.is_none() && password.is_none() {
        return;
    }
    if let Some(user) = userid {
        out.push_str(&quote(user, QUOTE));
    }
    if let Some(password) = password {
        out.push(':');
        out.push_str(&password);
    }
    out.push('@');
}

fn config_error(raw: &str, problem: impl fmt::Display) -> Error {
    Error::config(format!("invalid broker URL {}: {problem}", redact(raw)))
}

/// The URL for an error message, when it may be malformed.
///
/// Everything between `://` and the last `@` is treated as credentials and
/// only the part before its first `:` is shown, so that a password with an
/// unquoted `/`, `?` or `#` does not slip into the host or path. The query
/// and fragment are left out, as Kombu's sanitize_url does.
fn redact(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return "<unparsable URL>".to_owned();
    };
    let scheme = if !scheme.is_empty() && is_scheme_text(scheme) {
        scheme
    } else {
        "?"
    };
    let (credentials, tail) = match rest.rsplit_once('@') {
        Some((credentials, tail)) => (Some(credentials), tail),
        None => (None, rest),
    };
    let tail = tail.split(['?', '#']).next().unwrap_or("");
    let mut out = format!("{scheme}://");
    if let Some(credentials) = credentials {
        let (user, masked) = match credentials.split_once(':') {
            Some((user, _)) => (user, ":**@"),
            None => (credentials, "@"),
        };
        // Text past a '/', '?' or '#' belongs to a path or query that an
        // '@' further on made look like credentials: leave it out too.
        out.push_str(user.split(['/', '?', '#']).next().unwrap_or(""));
        out.push_str(masked);
    }
    out.push_str(tail);
    out
}

#[cfg(test)]
mod tests;
