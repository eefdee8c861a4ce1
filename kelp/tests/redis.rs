//! The conformance suite on `redis://`, against the real Redis on
//! 127.0.0.1:6379 (or `KELP_TEST_REDIS_URL`). Fails loudly when it is down.
//!
//! Every scenario runs. What Redis (like Kombu's Redis transport) has no
//! such thing for, its capabilities say, and the scenarios assert the
//! refusal instead: headers exchanges, exchange-to-exchange bindings,
//! `x-message-ttl`, `x-max-length` and `x-max-length-bytes`; and, since
//! exchanges are not stored in Redis, a publish to an undeclared exchange
//! is taken and goes nowhere rather than being an error.

mod conformance;

fn url() -> String {
    kelp_test_support::require_redis()
}

conformance_suite!(url());
