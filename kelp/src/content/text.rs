//! [`SharedStr`]: cheap-to-clone UTF-8 text for names and properties that
//! travel with every message (exchange, routing key, content type...).
//!
//! A thin wrapper over `smol_str`, so that the type in kelp's API does not
//! change with that crate's versions.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use smol_str::SmolStr;

/// An immutable UTF-8 string that is cheap to clone.
///
/// Names that travel with every message (exchange, routing key, consumer
/// tag, content type) are short: up to 23 bytes are stored inline, so a
/// clone is a plain copy and two threads never fight over a reference
/// count. Longer text is shared behind a reference count, and
/// [`SharedStr::from_static`] wraps a literal without allocating.
/// Dereferences to `str`.
///
/// Methods that take a name accept `&str` and `String` through `Into`, so
/// most code never names this type.
///
/// # Examples
///
/// ```
/// use kelp::SharedStr;
///
/// let key = SharedStr::from("orders.created");
/// let copy = key.clone(); // no allocation, no reference count
/// assert_eq!(copy, "orders.created");
/// assert!(key.starts_with("orders.")); // any `str` method
/// ```
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedStr(SmolStr);

impl SharedStr {
    /// The empty string.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(kelp::SharedStr::new().is_empty());
    /// ```
    pub const fn new() -> SharedStr {
        SharedStr(SmolStr::new_inline(""))
    }

    /// Wrap a static string without allocating.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::SharedStr;
    ///
    /// static EXCHANGE: SharedStr = SharedStr::from_static("billing.events.v2.incoming");
    /// assert_eq!(EXCHANGE.as_str(), "billing.events.v2.incoming");
    /// ```
    pub const fn from_static(s: &'static str) -> SharedStr {
        SharedStr(SmolStr::new_static(s))
    }

    /// Text from bytes that must be UTF-8; returns `None` when they are not.
    ///
    /// # Examples
    ///
    /// ```
    /// use bytes::Bytes;
    /// use kelp::SharedStr;
    ///
    /// assert_eq!(SharedStr::from_utf8(Bytes::from_static(b"ok")).as_deref(), Some("ok"));
    /// assert!(SharedStr::from_utf8(Bytes::from_static(&[0xff])).is_none());
    /// ```
    pub fn from_utf8(bytes: Bytes) -> Option<SharedStr> {
        std::str::from_utf8(&bytes).ok().map(SharedStr::from)
    }

    /// The text.
    ///
    /// # Examples
    ///
    /// ```
    /// let name = kelp::SharedStr::from(String::from("jobs"));
    /// assert_eq!(name.as_str(), "jobs");
    /// ```
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> SharedStr {
        SharedStr(SmolStr::new(s))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> SharedStr {
        SharedStr(SmolStr::from(s))
    }
}

impl From<&String> for SharedStr {
    fn from(s: &String) -> SharedStr {
        SharedStr::from(s.as_str())
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> String {
        s.as_str().to_owned()
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for SharedStr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_owned_compare_equal() {
        let a = SharedStr::from_static("application/json");
        let b = SharedStr::from(String::from("application/json"));
        assert_eq!(a, b);
        assert_eq!(a, "application/json");
        assert_eq!(&*a, "application/json");
        assert!(SharedStr::from_utf8(Bytes::from_static(b"\xff")).is_none());
    }

    #[test]
    fn short_and_long_text_round_trip() {
        let exactly = "x".repeat(23);
        assert_eq!(SharedStr::from(exactly.as_str()).len(), 23);
        let long = "y".repeat(24);
        let shared = SharedStr::from(long.clone());
        assert_eq!(shared.clone(), long.as_str());
        let from_frame = SharedStr::from_utf8(Bytes::from(long.into_bytes())).unwrap();
        assert_eq!(from_frame, shared);
        assert_eq!(SharedStr::new(), "");
        assert!(std::mem::size_of::<SharedStr>() <= 24);
    }
}
