//! [`SharedStr`]: cheap-to-clone UTF-8 text for names and properties that
//! travel with every message (exchange, routing key, content type...).

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;

/// An immutable UTF-8 string backed by [`Bytes`].
///
/// Cloning is a reference count increment; [`SharedStr::from_static`] wraps
/// a literal without allocating, and a string parsed out of a network frame can point
/// into the frame's buffer. Dereferences to `str`.
#[derive(Clone, Default)]
pub struct SharedStr(Bytes);

impl SharedStr {
    /// The empty string.
    pub const fn new() -> SharedStr {
        SharedStr(Bytes::new())
    }

    /// Wrap a static string without allocating.
    pub const fn from_static(s: &'static str) -> SharedStr {
        SharedStr(Bytes::from_static(s.as_bytes()))
    }

    /// Wrap bytes that must be UTF-8; returns `None` when they are not.
    pub fn from_utf8(bytes: Bytes) -> Option<SharedStr> {
        std::str::from_utf8(&bytes).ok()?;
        Some(SharedStr(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks or guarantees UTF-8.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
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

/// Copies the text; use [`SharedStr::from_static`] for literals on hot paths.
impl From<&str> for SharedStr {
    fn from(s: &str) -> SharedStr {
        SharedStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> SharedStr {
        SharedStr(Bytes::from(s))
    }
}

impl From<&String> for SharedStr {
    fn from(s: &String) -> SharedStr {
        SharedStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> String {
        s.as_str().to_owned()
    }
}

impl PartialEq for SharedStr {
    fn eq(&self, other: &SharedStr) -> bool {
        self.0 == other.0
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
}
