//! Random identifiers: message ids, generated queue names, Redis tags.

/// A random version-4 UUID in canonical hyphenated form, as Python's
/// `str(uuid.uuid4())` writes it (Kombu's message ids and delivery tags).
/// From a fast non-cryptographic generator: never for secrets.
pub(crate) fn uuid4() -> String {
    let bytes = fastrand::u128(..).to_le_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuid4_has_the_canonical_shape() {
        let u = super::uuid4();
        assert_eq!(u.len(), 36);
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert_ne!(super::uuid4(), super::uuid4());
    }
}
