//! The bottom layer: plain data that every other layer speaks — values and
//! field tables, cheap shared text, a message's properties and body, where
//! it was delivered, a message the broker returned, the kinds of exchange,
//! random identifiers. No I/O, and nothing from the layers above.

pub(crate) mod exchange;
pub(crate) mod ids;
pub(crate) mod message;
pub(crate) mod text;
pub(crate) mod value;
