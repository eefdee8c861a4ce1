//! [`SharedStr`]: cheap-to-clone UTF-8 text for names and properties that
//! travel with every message (exchange, routing key, content type...).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;

/// An immutable UTF-8 string that is cheap to clone.
///
/// Names that travel with every message (exchange, routing key, consumer
/// tag, content type) are short: up to 23 bytes are stored inline, so a
/// clone is a plain copy and two threads never fight over a reference
/// count. Longer text shares a [`Bytes`] buffer; [`SharedStr::from_static`]
/// wraps a literal without allocating, and text parsed out of a network
/// frame can point into the frame's buffer. Dereferences to `str`.
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
#[derive(Clone)]
pub struct SharedStr(Repr);

const INLINE: usize = 23;

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Bytes),
}

impl Default for SharedStr {
    fn default() -> SharedStr {
        SharedStr::new()
    }
}

impl SharedStr {
    /// The empty string.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(kelp::SharedStr::new().is_empty());
    /// ```
    pub const fn new() -> SharedStr {
        SharedStr(Repr::Inline {
            len: 0,
            bytes: [0; INLINE],
        })
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
        SharedStr(Repr::Shared(Bytes::from_static(s.as_bytes())))
    }

    /// Wrap bytes that must be UTF-8; returns `None` when they are not.
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
        std::str::from_utf8(&bytes).ok()?;
        Some(SharedStr::from_checked_bytes(bytes))
    }

    /// `bytes` is known to be UTF-8.
    fn from_checked_bytes(bytes: Bytes) -> SharedStr {
        match SharedStr::inline(&bytes) {
            Some(s) => s,
            None => SharedStr(Repr::Shared(bytes)),
        }
    }

    fn inline(text: &[u8]) -> Option<SharedStr> {
        if text.len() > INLINE {
            return None;
        }
        let mut bytes = [0; INLINE];
        bytes[..text.len()].copy_from_slice(text);
        Some(SharedStr(Repr::Inline {
            len: text.len() as u8,
            bytes,
        }))
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
        let bytes: &[u8] = match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(b) => b,
        };
        // SAFETY: every constructor checks or guarantees UTF-8.
        unsafe { std::str::from_utf8_unchecked(bytes) }
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

/// Copies the text; use [`SharedStr::from_static`] for long literals.
impl From<&str> for SharedStr {
    fn from(s: &str) -> SharedStr {
        SharedStr::inline(s.as_bytes())
            .unwrap_or_else(|| SharedStr(Repr::Shared(Bytes::copy_from_slice(s.as_bytes()))))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> SharedStr {
        SharedStr::inline(s.as_bytes()).unwrap_or_else(|| SharedStr(Repr::Shared(Bytes::from(s))))
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

impl PartialEq for SharedStr {
    fn eq(&self, other: &SharedStr) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for SharedStr {}

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

impl PartialOrd for SharedStr {
    fn partial_cmp(&self, other: &SharedStr) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedStr {
    fn cmp(&self, other: &SharedStr) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for SharedStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
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
    fn short_text_is_inline_and_long_text_is_shared() {
        let short = SharedStr::from("kelp.ctag-1");
        assert!(matches!(short.0, Repr::Inline { .. }));
        let exactly = "x".repeat(INLINE);
        assert!(matches!(SharedStr::from(exactly.clone()).0, Repr::Inline { .. }));
        let long = "y".repeat(INLINE + 1);
        let shared = SharedStr::from(long.clone());
        assert!(matches!(shared.0, Repr::Shared(_)));
        assert_eq!(shared.clone(), long.as_str());
        assert_eq!(SharedStr::from(exactly.as_str()).len(), INLINE);
        let from_frame = SharedStr::from_utf8(Bytes::from(long.clone().into_bytes())).unwrap();
        assert_eq!(from_frame, shared);
        assert_eq!(SharedStr::new(), "");
        assert_eq!(std::mem::size_of::<SharedStr>(), 32);
    }
}
