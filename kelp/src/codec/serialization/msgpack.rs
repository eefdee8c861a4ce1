//! MessagePack, as Python's `msgpack` writes it for Kombu
//! (`packb(use_bin_type=True)`: `str` and `bin` kept apart).

use bytes::Bytes;
use serde::Serialize;
use serde::de::{Deserialize, DeserializeOwned};

use crate::content::value::Value;
use crate::error::{Error, Result};

const CONTENT_TYPE: &str = "application/x-msgpack";

/// Nesting bound for msgpack, the same as serde_json's for JSON, so that a
/// hostile body cannot exhaust the stack.
const MSGPACK_MAX_DEPTH: usize = 128;

pub(super) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes> {
    rmp_serde::to_vec_named(value)
        .map(Bytes::from)
        .map_err(|e| Error::encode("cannot serialize the body as msgpack").with_source(e))
}

pub(super) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T> {
    decode_msgpack(body, |de| T::deserialize(de))
}

pub(super) fn decode_value(body: &[u8]) -> Result<Value> {
    decode_msgpack(body, |de| Value::deserialize(de))
}

type MsgpackDe<'a, 'b> = rmp_serde::Deserializer<rmp_serde::decode::ReadReader<&'a mut &'b [u8]>>;

/// Run a msgpack deserialization with a depth bound, and refuse trailing
/// bytes as Python's `unpackb` does.
fn decode_msgpack<T, E>(
    body: &[u8],
    f: impl FnOnce(&mut MsgpackDe<'_, '_>) -> Result<T, E>,
) -> Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut rest = body;
    let out = {
        let mut de = rmp_serde::Deserializer::new(&mut rest);
        de.set_max_depth(MSGPACK_MAX_DEPTH);
        f(&mut de).map_err(|e| Error::decode(format!("cannot decode the {CONTENT_TYPE} body")).with_source(e))?
    };
    if !rest.is_empty() {
        return Err(Error::decode(format!(
            "cannot decode the application/x-msgpack body: {} bytes after the value",
            rest.len()
        )));
    }
    Ok(out)
}
