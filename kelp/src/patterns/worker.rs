//! [`Worker`]: consume forever, through failovers and errors (Kombu's
//! `ConsumerMixin`, with a stop signal and a graceful shutdown).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::model::connection::Connection;
use crate::model::entity::Queue;
use crate::event::Event;
use crate::model::message::Message;
use crate::error::{Error, Result};

type BoxFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;
type Handler = Arc<dyn Fn(Message) -> BoxFuture + Send + Sync>;
type ErrorHook = Arc<dyn Fn(&str) + Send + Sync>;
type RevivedHook = Arc<dyn Fn() + Send + Sync>;

struct Spec {
    queues: Vec<Queue>,
    prefetch: u16,
    handler: Handler,
}

/// Options of a [`Worker`]; finish with [`build`](WorkerBuilder::build).
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use std::time::Duration;
/// use kelp::{Connection, Queue, Worker};
///
/// let conn = Connection::new("memory://")?;
/// let worker = Worker::builder(&conn)
///     .consumer([Queue::new("worker-builder-doc-emails")], 10, |message| async move {
///         message.ack().await
///     })
///     .consumer([Queue::new("worker-builder-doc-reports")], 1, |message| async move {
///         message.ack().await
///     })
///     .on_connection_error(|reason| eprintln!("consuming interrupted: {reason}"))
///     .min_restart_interval(Duration::from_secs(5))
///     .build()?;
/// # drop(worker);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[must_use = "a builder does nothing until built"]
pub struct WorkerBuilder {
    connection: Connection,
    specs: Vec<Spec>,
    on_connection_error: Option<ErrorHook>,
    on_connection_revived: Option<RevivedHook>,
    min_restart_interval: Duration,
}

impl WorkerBuilder {
    /// Consume `queues` (declared first) with `prefetch` unacknowledged
    /// messages at most, calling `handler` for each message in turn. The
    /// handler settles the message; an unsettled message is acked when the
    /// handler returns `Ok` and requeued when it returns an error.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Error, Queue, Worker};
    /// use tokio::sync::mpsc;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let queue = Queue::new("worker-consumer-doc");
    /// queue.declare(&conn.default_channel().await?).await?;
    /// conn.producer().routing_key("worker-consumer-doc").build().await?.publish("flaky").send().await?;
    ///
    /// let (report, mut reports) = mpsc::unbounded_channel();
    /// let worker = Worker::builder(&conn)
    ///     .consumer([queue], 1, move |message| {
    ///         let report = report.clone();
    ///         async move {
    ///             let _ = report.send(message.redelivered());
    ///             // Fail the first time: the worker requeues; succeed the second: it acks.
    ///             if message.redelivered() { Ok(()) } else { Err(Error::from_handler("try again")) }
    ///         }
    ///     })
    ///     .build()?;
    /// let stop = worker.stop_handle();
    /// let running = tokio::spawn(worker.run());
    /// assert_eq!(reports.recv().await, Some(false));
    /// assert_eq!(reports.recv().await, Some(true));
    /// stop.stop();
    /// running.await.expect("the worker task")?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn consumer<I, F, Fut>(mut self, queues: I, prefetch: u16, handler: F) -> WorkerBuilder
    where
        I: IntoIterator<Item = Queue>,
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |m| Box::pin(handler(m)));
        self.specs.push(Spec {
            queues: queues.into_iter().collect(),
            prefetch,
            handler,
        });
        self
    }

    /// Called with the reason when the connection is lost or consuming fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use std::time::Duration;
    /// use kelp::{Connection, Queue, Worker};
    /// use tokio::sync::mpsc;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let queue = Queue::new("worker-error-doc");
    /// queue.declare(&conn.default_channel().await?).await?;
    /// let (started, mut started_rx) = mpsc::unbounded_channel();
    /// let (failed, mut failed_rx) = mpsc::unbounded_channel();
    /// let worker = Worker::builder(&conn)
    ///     .consumer([queue.clone()], 1, move |message| {
    ///         let _ = started.send(());
    ///         async move { message.ack().await }
    ///     })
    ///     .on_connection_error(move |reason| {
    ///         let _ = failed.send(reason.to_string());
    ///     })
    ///     .min_restart_interval(Duration::from_millis(10))
    ///     .build()?;
    /// let stop = worker.stop_handle();
    /// let running = tokio::spawn(worker.run());
    ///
    /// conn.producer().routing_key("worker-error-doc").build().await?.publish("x").send().await?;
    /// started_rx.recv().await; // the worker is consuming
    /// queue.delete(&conn.channel().await?, false, false).await?; // pull the rug
    /// let reason = failed_rx.recv().await.expect("the hook was called");
    /// assert!(reason.contains("deleted"));
    /// stop.stop();
    /// running.await.expect("the worker task")?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn on_connection_error<F: Fn(&str) + Send + Sync + 'static>(mut self, hook: F) -> WorkerBuilder {
        self.on_connection_error = Some(Arc::new(hook));
        self
    }

    /// Called when consuming resumes after a failover or a restart.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use std::time::Duration;
    /// use kelp::{Connection, Queue, Worker};
    /// use tokio::sync::mpsc;
    ///
    /// let conn = Connection::new("memory://")?;
    /// let queue = Queue::new("worker-revived-doc");
    /// queue.declare(&conn.default_channel().await?).await?;
    /// let (handled, mut handled_rx) = mpsc::unbounded_channel();
    /// let (revived, mut revived_rx) = mpsc::unbounded_channel();
    /// let worker = Worker::builder(&conn)
    ///     .consumer([queue.clone()], 1, move |message| {
    ///         let _ = handled.send(());
    ///         async move { message.ack().await }
    ///     })
    ///     .on_connection_revived(move || {
    ///         let _ = revived.send(());
    ///     })
    ///     .min_restart_interval(Duration::from_millis(10))
    ///     .build()?;
    /// let stop = worker.stop_handle();
    /// let running = tokio::spawn(worker.run());
    ///
    /// conn.producer().routing_key("worker-revived-doc").build().await?.publish("x").send().await?;
    /// handled_rx.recv().await;
    /// queue.delete(&conn.channel().await?, false, false).await?;
    /// // The worker declares the queue again and resumes.
    /// assert_eq!(revived_rx.recv().await, Some(()));
    /// stop.stop();
    /// running.await.expect("the worker task")?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn on_connection_revived<F: Fn() + Send + Sync + 'static>(mut self, hook: F) -> WorkerBuilder {
        self.on_connection_revived = Some(Arc::new(hook));
        self
    }

    /// At most one restart of a consumer per this interval (default 1 s, as
    /// Kombu's restart token bucket).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use std::time::Duration;
    /// use kelp::{Connection, Queue, Worker};
    ///
    /// let conn = Connection::new("memory://")?;
    /// // A broker that keeps cancelling consumers costs at most one restart a minute.
    /// let worker = Worker::builder(&conn)
    ///     .consumer([Queue::new("restart-interval-doc")], 5, |message| async move { message.ack().await })
    ///     .min_restart_interval(Duration::from_secs(60))
    ///     .build()?;
    /// # drop(worker);
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn min_restart_interval(mut self, interval: Duration) -> WorkerBuilder {
        self.min_restart_interval = interval;
        self
    }

    /// Create the worker.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Connection, Worker};
    ///
    /// let conn = Connection::new("memory://")?;
    /// // A worker with nothing to consume is a configuration mistake.
    /// let error = Worker::builder(&conn).build().err().expect("no consumer given");
    /// assert!(error.is_config());
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn build(self) -> Result<Worker> {
        if self.specs.is_empty() {
            return Err(Error::config("a worker needs at least one consumer"));
        }
        let (stop, _) = watch::channel(false);
        Ok(Worker {
            connection: self.connection,
            specs: self.specs,
            on_connection_error: self.on_connection_error,
            on_connection_revived: self.on_connection_revived,
            min_restart_interval: self.min_restart_interval,
            stop,
        })
    }
}

/// Runs consumers until stopped, rebuilding them after any error.
///
/// With automatic recovery (kelp's default) a failover does not even
/// interrupt consuming; the worker adds restarts after the errors recovery
/// cannot absorb (a consumer cancelled by the broker, recovery giving up),
/// rate-limited, and a graceful stop: the message in hand is finished and
/// settled, consumers are cancelled, the connection is closed.
///
/// # Examples
///
/// ```
/// # async fn demo() -> kelp::Result<()> {
/// use kelp::{Connection, Queue, Worker};
/// use tokio::sync::mpsc;
///
/// let conn = Connection::new("memory://")?;
/// let jobs = Queue::new("worker-doc-jobs");
/// jobs.declare(&conn.default_channel().await?).await?;
/// let producer = conn.producer().routing_key("worker-doc-jobs").build().await?;
/// for n in 1..=3 {
///     producer.publish(&n).send().await?;
/// }
///
/// let (done, mut done_rx) = mpsc::unbounded_channel();
/// let worker = Worker::builder(&conn)
///     .consumer([jobs], 10, move |message| {
///         let done = done.clone();
///         async move {
///             let n: u32 = message.decode()?;
///             let _ = done.send(n * n);
///             message.ack().await
///         }
///     })
///     .build()?;
/// let stop = worker.stop_handle();
/// let running = tokio::spawn(worker.run());
///
/// let mut results = Vec::new();
/// while results.len() < 3 {
///     results.extend(done_rx.recv().await);
/// }
/// assert_eq!(results, [1, 4, 9]);
/// stop.stop();
/// running.await.expect("the worker task")?;
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
pub struct Worker {
    connection: Connection,
    specs: Vec<Spec>,
    on_connection_error: Option<ErrorHook>,
    on_connection_revived: Option<RevivedHook>,
    min_restart_interval: Duration,
    stop: watch::Sender<bool>,
}

/// Stops a running [`Worker`] gracefully.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> kelp::Result<()> {
/// // Not run: it waits for Ctrl-C.
/// use kelp::{Connection, Queue, Worker};
///
/// let conn = Connection::new("amqp://rabbit//")?;
/// let worker = Worker::builder(&conn)
///     .consumer([Queue::new("emails")], 10, |message| async move { message.ack().await })
///     .build()?;
/// let stop = worker.stop_handle();
/// tokio::spawn(async move {
///     let _ = tokio::signal::ctrl_c().await;
///     stop.stop(); // finish the message in hand, then shut down
/// });
/// worker.run().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[derive(Debug)]
pub struct StopHandle {
    stop: watch::Sender<bool>,
}

impl StopHandle {
    /// Ask the worker to stop after the message in hand.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use std::time::Duration;
    /// use kelp::{Connection, Queue, Worker};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let worker = Worker::builder(&conn)
    ///     .consumer([Queue::new("stop-doc")], 1, |message| async move { message.ack().await })
    ///     .build()?;
    /// let stop = worker.stop_handle();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    ///     stop.stop();
    /// });
    /// worker.run().await?; // returns once stopped
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

impl Worker {
    /// Options for a worker on `connection`.
    ///
    /// # Examples
    ///
    /// ```
    /// use kelp::{Connection, Queue, Worker};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let worker = Worker::builder(&conn)
    ///     .consumer([Queue::new("builder-fn-doc")], 10, |message| async move { message.ack().await })
    ///     .build()?;
    /// # drop(worker);
    /// # Ok::<(), kelp::Error>(())
    /// ```
    pub fn builder(connection: &Connection) -> WorkerBuilder {
        WorkerBuilder {
            connection: connection.clone(),
            specs: Vec::new(),
            on_connection_error: None,
            on_connection_revived: None,
            min_restart_interval: Duration::from_secs(1),
        }
    }

    /// A handle that stops the worker.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue, Worker};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let worker = Worker::builder(&conn)
    ///     .consumer([Queue::new("stop-handle-doc")], 1, |message| async move { message.ack().await })
    ///     .build()?;
    /// let stop = worker.stop_handle();
    /// stop.stop(); // before it even started: run returns at once
    /// worker.run().await?;
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            stop: self.stop.clone(),
        }
    }

    /// Run until stopped. Returns after the graceful shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo() -> kelp::Result<()> {
    /// use kelp::{Connection, Queue, Worker};
    ///
    /// let conn = Connection::new("memory://")?;
    /// let worker = Worker::builder(&conn)
    ///     .consumer([Queue::new("worker-run-doc")], 1, |message| async move { message.ack().await })
    ///     .build()?;
    /// let stop = worker.stop_handle();
    /// let running = tokio::spawn(worker.run());
    /// stop.stop();
    /// running.await.expect("the worker task")?;
    /// assert!(!conn.is_connected()); // the shutdown closed the connection
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn run(self) -> Result<()> {
        let watcher = tokio::spawn(watch_events(
            self.connection.clone(),
            self.on_connection_error.clone(),
            self.on_connection_revived.clone(),
            self.stop.subscribe(),
        ));
        let mut tasks = Vec::new();
        for spec in self.specs {
            tasks.push(tokio::spawn(consume_forever(
                self.connection.clone(),
                spec,
                self.stop.subscribe(),
                self.on_connection_error.clone(),
                self.on_connection_revived.clone(),
                self.min_restart_interval,
            )));
        }
        for task in tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a worker consumer task failed");
            }
        }
        watcher.abort();
        self.connection.close().await
    }
}

/// Tell the hooks about failovers the connection recovered from by itself.
async fn watch_events(
    connection: Connection,
    on_error: Option<ErrorHook>,
    on_revived: Option<RevivedHook>,
    mut stop: watch::Receiver<bool>,
) {
    let mut events = connection.events();
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            _ = stop.wait_for(|s| *s) => return,
        };
        match event {
            Ok(Event::ConnectionLost { reason, .. }) => {
                if let Some(hook) = &on_error {
                    hook(&reason);
                }
            }
            Ok(Event::Recovered { .. }) => {
                if let Some(hook) = &on_revived {
                    hook();
                }
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn consume_forever(
    connection: Connection,
    spec: Spec,
    mut stop: watch::Receiver<bool>,
    on_error: Option<ErrorHook>,
    on_revived: Option<RevivedHook>,
    min_restart_interval: Duration,
) {
    let mut last_start: Option<Instant> = None;
    let mut restarted = false;
    while !*stop.borrow() {
        // Rate-limit restarts, waking early for a stop.
        if let Some(at) = last_start {
            let wait = min_restart_interval.saturating_sub(at.elapsed());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        last_start = Some(Instant::now());
        let built = async {
            let channel = connection.channel().await?;
            channel
                .consumer(spec.queues.iter().cloned())
                .prefetch_count(spec.prefetch)
                .build()
                .await
        };
        let mut consumer = match built.await {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::warn!(error = %e, "worker: cannot start consuming; will retry");
                if let Some(hook) = &on_error {
                    hook(&e.to_string());
                }
                continue;
            }
        };
        if restarted
            && let Some(hook) = &on_revived {
                hook();
            }
        restarted = true;
        loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                _ = stop.wait_for(|s| *s) => break,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "worker: consuming failed; restarting");
                    if let Some(hook) = &on_error {
                        hook(&e.to_string());
                    }
                    break;
                }
                None => break,
            };
            handle(&spec.handler, message).await;
        }
        if let Err(e) = consumer.cancel().await {
            tracing::debug!(error = %e, "worker: cancelling a consumer failed");
        }
    }
}

/// Run the handler; settle what it left unsettled. The handler gets the
/// message by value, the worker keeps a twin sharing its settle state.
async fn handle(handler: &Handler, mut message: Message) {
    let twin = message.twin();
    let outcome = handler(message).await;
    if twin.is_settled() {
        return;
    }
    let settled = match &outcome {
        Ok(()) => twin.ack().await,
        Err(e) => {
            tracing::warn!(error = %e, "worker: the handler failed; the message goes back to the queue");
            twin.requeue().await
        }
    };
    if let Err(e) = settled
        && !e.is_stale() && !e.is_message_state() {
            tracing::warn!(error = %e, "worker: could not settle a message");
        }
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("connection", &self.connection)
            .field("consumers", &self.specs.len())
            .field("min_restart_interval", &self.min_restart_interval)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("connection", &self.connection)
            .field("consumers", &self.specs.len())
            .finish_non_exhaustive()
    }
}
