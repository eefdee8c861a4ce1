//! The conformance suite on `amqp://`, against the real RabbitMQ on
//! 127.0.0.1:5672 (or `KELP_TEST_AMQP_URL`). Fails loudly when it is down.

mod conformance;

fn url() -> String {
    kelp_test_support::require_rabbitmq()
}

conformance_suite! {
    url();
    connect_close_reconnect,
    default_channel_connects_lazily,
    as_uri_masks_password,
    publish_consume_json,
    every_serializer_round_trips,
    compression_round_trips,
    empty_queue_get_returns_none,
    simple_put_get,
    direct_routing,
    topic_routing,
    fanout_routing,
    headers_routing,
    exchange_to_exchange_binding,
    unroutable_mandatory_is_returned,
    publish_to_missing_exchange_is_a_channel_error,
    conflicting_redeclare_is_a_precondition_error,
    passive_declare_of_missing_queue_is_not_found,
    ack_reject_requeue,
    ack_multiple,
    reject_multiple_requeues_or_drops_earlier_messages,
    unacked_messages_return_when_the_channel_closes,
    dropped_consumer_gives_back_its_messages,
    prefetch_limits_unacked_deliveries,
    no_ack_consumer_needs_no_settling,
    accept_list_refuses_without_losing,
    decode_errors_go_to_the_hook,
    message_ttl_expires,
    priority_ordering,
    max_length_drops_head_or_rejects,
    purge_and_delete,
    server_named_queue,
    exclusive_queue_is_locked_to_its_connection,
    auto_delete_queue_goes_with_its_last_consumer,
    deleting_a_consumed_queue_cancels_the_consumer,
    transient_delivery_mode,
    many_messages_in_flight,
}
