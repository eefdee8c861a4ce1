//! The conformance suite on `redis://`, against the real Redis on
//! 127.0.0.1:6379 (or `KELP_TEST_REDIS_URL`). Fails loudly when it is down.
//!
//! Left out, because Redis (like Kombu's Redis transport) has no such
//! thing: headers exchanges, exchange-to-exchange bindings, per-message
//! TTL, `x-max-length`, and a publish to an undeclared exchange being an
//! error (exchanges are not stored in Redis, so it cannot tell).

mod conformance;

fn url() -> String {
    kelp_test_support::require_redis()
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
    unroutable_mandatory_is_returned,
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
    priority_ordering,
    purge_and_delete,
    server_named_queue,
    exclusive_queue_is_locked_to_its_connection,
    auto_delete_queue_goes_with_its_last_consumer,
    deleting_a_consumed_queue_cancels_the_consumer,
    transient_delivery_mode,
    many_messages_in_flight,
}
