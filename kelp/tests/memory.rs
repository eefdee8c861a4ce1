//! The conformance suite on the embedded `memory://` transport.

mod conformance;

conformance_suite!("memory://".to_owned());
