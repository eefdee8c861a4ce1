//! Run a scenario on every transport: `memory://`, the real RabbitMQ and
//! the real Redis (each fails loudly when its broker is down).

#![allow(dead_code)]

pub fn memory() -> String {
    "memory://".to_owned()
}

#[cfg(feature = "amqp")]
pub fn amqp() -> String {
    kelp_test_support::require_rabbitmq()
}

#[cfg(feature = "redis")]
pub fn redis() -> String {
    kelp_test_support::require_redis()
}

/// One async test per transport for each named `async fn scenario(url: &str)`.
#[macro_export]
macro_rules! on_every_transport {
    ($($scenario:ident),* $(,)?) => {
        mod on_memory {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $scenario() { super::$scenario(&super::every_transport::memory()).await } )*
        }
        #[cfg(feature = "amqp")]
        mod on_amqp {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $scenario() { super::$scenario(&super::every_transport::amqp()).await } )*
        }
        #[cfg(feature = "redis")]
        mod on_redis {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $scenario() { super::$scenario(&super::every_transport::redis()).await } )*
        }
    };
}

/// One plain (synchronous) test per transport for each named `fn scenario(url: &str)`.
#[macro_export]
macro_rules! on_every_transport_blocking {
    ($($scenario:ident),* $(,)?) => {
        mod on_memory {
            $( #[test] fn $scenario() { super::$scenario(&super::every_transport::memory()) } )*
        }
        #[cfg(feature = "amqp")]
        mod on_amqp {
            $( #[test] fn $scenario() { super::$scenario(&super::every_transport::amqp()) } )*
        }
        #[cfg(feature = "redis")]
        mod on_redis {
            $( #[test] fn $scenario() { super::$scenario(&super::every_transport::redis()) } )*
        }
    };
}
