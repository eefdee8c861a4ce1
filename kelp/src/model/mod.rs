//! The model layer.

pub(crate) mod channel;
pub(crate) mod connection;
pub(crate) mod consumer;
pub(crate) mod entity;
pub(crate) mod message;
pub(crate) mod producer;
pub(crate) mod setters;
