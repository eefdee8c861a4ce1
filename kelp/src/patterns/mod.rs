//! The patterns layer.

pub(crate) mod dedup;
pub(crate) mod pools;
pub(crate) mod rpc;
pub(crate) mod runtime;
pub(crate) mod simple;
pub(crate) mod worker;
