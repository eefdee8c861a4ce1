//! The channel errors the broker raises, worded as RabbitMQ words them.

use crate::error::Error;
use crate::error::reply_code::{ACCESS_REFUSED, NOT_FOUND, PRECONDITION_FAILED};

pub(super) fn not_found(what: &str, name: &str, vhost: &str) -> Error {
    Error::channel_closed(NOT_FOUND, format!("NOT_FOUND - no {what} '{name}' in vhost '{vhost}'"))
}

pub(super) fn precondition(text: String) -> Error {
    Error::channel_closed(PRECONDITION_FAILED, format!("PRECONDITION_FAILED - {text}"))
}

pub(super) fn access_refused(text: String) -> Error {
    Error::channel_closed(ACCESS_REFUSED, format!("ACCESS_REFUSED - {text}"))
}
