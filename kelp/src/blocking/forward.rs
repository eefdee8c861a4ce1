//! [`forward_setters!`]: the blocking builders' setters, generated from the
//! same option lists as the async builders' (see `model::setters`), each
//! forwarding to the async builder it wraps. An option added to an async
//! builder appears here by itself.

/// Expands option items into setters of a blocking builder whose `inner`
/// field is the async builder named first (for its documentation links).
macro_rules! forward_setters {
    ($async_builder:literal; $(
        $(#[$attr:meta])*
        fn $name:ident $(<$($gen:ident),+>)? ($this:ident $(, $arg:ident : $ty:ty)*) $(where [$($bound:tt)*])? $body:block
    )*) => {$(
        #[doc = concat!("See [`", $async_builder, "::", stringify!($name), "`](crate::", $async_builder, "::", stringify!($name), ").")]
        pub fn $name $(<$($gen),+>)? (self $(, $arg: $ty)*) -> Self $(where $($bound)*)? {
            Self { inner: self.inner.$name($($arg),*) }
        }
    )*};
}
pub(crate) use forward_setters;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::blocking::Connection;
    use crate::{Queue, RetryPolicy};

    /// The options the blocking builders once lacked are there, and work.
    #[test]
    fn the_blocking_builders_take_every_option_of_the_async_ones() {
        let conn = Connection::builder("memory://").heartbeat(Some(Duration::from_secs(5))).build().unwrap();
        let producer = conn
            .producer()
            .routing_key("forward-test")
            .retry_nacked(true)
            .retry_unroutable(true)
            .retry_policy(RetryPolicy::default().max_retries(2))
            .build()
            .unwrap();
        let mut consumer = conn
            .consumer([])
            .queues([Queue::new("forward-test")])
            .argument("x-priority", 5)
            .on_decode_error(|message, _error| async move { message.reject().await })
            .build()
            .unwrap();
        producer.publish("hi").send().unwrap();
        let message = consumer.next().expect("the consumer is live").unwrap();
        assert_eq!(message.decode::<String>().unwrap(), "hi");
        message.ack().unwrap();
    }
}
