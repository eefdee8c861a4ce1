//! The conformance suite on `amqp://`, against the real RabbitMQ on
//! 127.0.0.1:5672 (or `KELP_TEST_AMQP_URL`). Fails loudly when it is down.

mod conformance;

fn url() -> String {
    kelp_test_support::require_rabbitmq()
}

conformance_suite!(url());
