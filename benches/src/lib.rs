//! Reference AMQP 0-9-1 peers for kelp's benchmark: lapin, amqprs and
//! Python Kombu (py-amqp), each running the same three workloads against
//! the same RabbitMQ, so that kelp's numbers can be printed beside theirs in
//! one run. The Redis bench ([`redis_contenders`]) does the same on Redis
//! with Kombu's Redis transport and a bare LPUSH/BRPOP loop
//! ([`redis_bare_peer`]).
//!
//! - [`Workload::Publish`]: persistent messages to a fresh durable queue
//!   through the default exchange, publisher confirms, `window` in flight.
//!   Latencies: publish→confirm of each message.
//! - [`Workload::Consume`]: a pre-filled durable queue drained with manual
//!   acks, one per message, `prefetch` unacked. Timed from `basic.consume`
//!   to the last ack. No latencies.
//! - [`Workload::RoundTrip`]: publish one message, wait for its delivery on
//!   another channel of the same connection, ack, repeat. Latencies: the
//!   round trips.
//!
//! Every row's CPU time is the process's user + system time
//! (`getrusage(RUSAGE_SELF)`) over the timed part; for Kombu, the Python
//! process's.
//!
//! The Rust peers are plain async functions that run on whatever tokio
//! runtime calls them (rows are named after it: `lapin/ct`, `lapin/mt`);
//! [`run_on`] runs one on a fresh current-thread or 2-worker multi-thread
//! runtime, and [`peer_contenders`] lists every peer × runtime as a
//! [`Contender`], the shape in which kelp joins the table.

pub mod amqprs_peer;
pub mod common;
pub mod kelp_peer;
pub mod kombu_peer;
pub mod lapin_peer;
pub mod redis_bare_peer;
pub mod report;

use std::future::Future;
use std::time::Duration;

pub use common::{AmqpUrl, DEFAULT_URL, Params, Workload, check_broker, process_cpu_time};
pub use kelp_cli::measure::BenchResult;

/// A tokio runtime shape a Rust peer is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// `new_current_thread`: everything on the calling thread.
    CurrentThread,
    /// `new_multi_thread` with 2 workers (the machine has 2 cores).
    MultiThread,
}

impl Flavor {
    /// `ct` or `mt`, as in row names.
    pub fn tag(self) -> &'static str {
        match self {
            Flavor::CurrentThread => "ct",
            Flavor::MultiThread => "mt",
        }
    }

    /// A fresh runtime of this shape, with I/O and timers.
    pub fn build(self) -> Result<tokio::runtime::Runtime, String> {
        let mut builder = match self {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Flavor::MultiThread => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            }
        };
        builder
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build a {} tokio runtime: {e}", self.tag()))
    }
}

/// Both runtime shapes, current-thread first.
pub fn runtime_variants() -> [Flavor; 2] {
    [Flavor::CurrentThread, Flavor::MultiThread]
}

/// Run `make()`'s future on a fresh runtime of `flavor`, as a spawned task
/// (so on the multi-thread runtime it runs on the workers, not on the
/// calling thread), then shut the runtime down.
pub fn run_on<T, F, Fut>(flavor: Flavor, make: F) -> Result<T, String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, String>> + Send + 'static,
    T: Send + 'static,
{
    let runtime = flavor.build()?;
    let task = runtime.spawn(make());
    let result = runtime
        .block_on(task)
        .map_err(|e| format!("the benchmark task failed: {e}"))?;
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

/// Run one Rust peer's workload on a fresh runtime of `flavor`.
pub fn run_rust_peer(
    peer: RustPeer,
    flavor: Flavor,
    workload: Workload,
    params: &Params,
) -> Result<BenchResult, String> {
    let params = params.clone();
    run_on(flavor, move || async move {
        match peer {
            RustPeer::Kelp => kelp_peer::run(workload, &params).await,
            RustPeer::Lapin => lapin_peer::run(workload, &params).await,
            RustPeer::Amqprs => amqprs_peer::run(workload, &params).await,
        }
    })
}

/// The Rust peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RustPeer {
    /// kelp itself.
    Kelp,
    /// lapin 4.
    Lapin,
    /// amqprs 2.
    Amqprs,
}

impl RustPeer {
    /// Every Rust contender, kelp first so that its rows head the tables.
    pub const ALL: [RustPeer; 3] = [RustPeer::Kelp, RustPeer::Lapin, RustPeer::Amqprs];

    /// `lapin` or `amqprs`.
    pub fn name(self) -> &'static str {
        match self {
            RustPeer::Kelp => kelp_peer::NAME,
            RustPeer::Lapin => lapin_peer::NAME,
            RustPeer::Amqprs => amqprs_peer::NAME,
        }
    }
}

/// How a [`Contender`] runs one workload.
pub type RunFn = Box<dyn Fn(Workload, &Params) -> Result<BenchResult, String>>;

/// Something measured in the table: a name and a way to run a workload,
/// synchronously (it brings its own runtime or process).
pub struct Contender {
    /// Row name, e.g. `lapin/ct`, `kombu`, `kelp/ct`.
    pub name: String,
    /// Which peer family it belongs to (`lapin`, `amqprs`, `kombu`, `kelp`),
    /// for filtering with `KELP_BENCH_PEERS`.
    pub family: String,
    /// Run one workload.
    pub run: RunFn,
    /// What to print under the table for a workload, if anything.
    pub note: fn(Workload) -> Option<&'static str>,
}

impl Contender {
    /// One run of one workload, announced and reported on stderr under
    /// `bench` (`run` is `(round, of)`). A failure is noted under `section`
    /// and added to `failures`; then `None`.
    pub fn run_once(
        &self,
        bench: &str,
        workload: Workload,
        params: &Params,
        run: (u32, u32),
        section: &mut report::Section,
        failures: &mut Vec<(String, String)>,
    ) -> Option<BenchResult> {
        let size = params.size;
        eprintln!("{bench}: {} {workload} {size} B (run {}/{}) ...", self.name, run.0, run.1);
        match (self.run)(workload, params) {
            Ok(mut row) => {
                row.name = self.name.clone();
                eprintln!(
                    "{bench}:   {:.0} msg/s, {} CPU µs/msg",
                    row.rate(),
                    row.cpu_us_per_message().map_or("n/a".to_owned(), |c| format!("{c:.1}"))
                );
                Some(row)
            }
            Err(error) => {
                eprintln!("{bench}: {} {workload} {size} B FAILED: {error}", self.name);
                section.notes.push(format!("{} FAILED: {}", self.name, error.lines().next().unwrap_or("")));
                failures.push((format!("{}/{workload}/{size}", self.name), error));
                None
            }
        }
    }
}

impl std::fmt::Debug for Contender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contender")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn no_note(_: Workload) -> Option<&'static str> {
    None
}

fn kombu_note(workload: Workload) -> Option<&'static str> {
    (workload == Workload::Publish).then_some(kombu_peer::PUBLISH_NOTE)
}

/// Every reference peer: lapin and amqprs on both runtimes, then Kombu in
/// the interpreter `python` (see [`kombu_peer::python`]).
pub fn peer_contenders(python: String) -> Vec<Contender> {
    let mut contenders = Vec::new();
    for peer in RustPeer::ALL {
        for flavor in runtime_variants() {
            contenders.push(Contender {
                name: format!("{}/{}", peer.name(), flavor.tag()),
                family: peer.name().to_owned(),
                run: Box::new(move |workload, params| run_rust_peer(peer, flavor, workload, params)),
                note: no_note,
            });
        }
    }
    contenders.push(Contender {
        name: kombu_peer::NAME.to_owned(),
        family: kombu_peer::NAME.to_owned(),
        run: Box::new(move |workload, params| {
            let python = python.clone();
            let params = params.clone();
            run_on(Flavor::CurrentThread, move || async move {
                kombu_peer::run(&python, workload, &params).await
            })
        }),
        note: kombu_note,
    });
    contenders
}

/// The Redis bench's contenders: kelp (its `redis://` transport) and the
/// bare LPUSH/BRPOP loop on both runtimes, Kombu's Redis transport, and
/// Kombu publishing through `Producer.batch()`. With each, the workloads it
/// runs (`kombu-batch` only publishes).
pub fn redis_contenders(python: String) -> Vec<(Contender, &'static [Workload])> {
    const BOTH: &[Workload] = &[Workload::Publish, Workload::Consume];
    const PUBLISH: &[Workload] = &[Workload::Publish];
    let mut contenders = Vec::new();
    for flavor in runtime_variants() {
        contenders.push((
            Contender {
                name: format!("{}/{}", kelp_peer::NAME, flavor.tag()),
                family: kelp_peer::NAME.to_owned(),
                run: Box::new(move |workload, params| run_rust_peer(RustPeer::Kelp, flavor, workload, params)),
                note: no_note,
            },
            BOTH,
        ));
    }
    for flavor in runtime_variants() {
        contenders.push((
            Contender {
                name: format!("{}/{}", redis_bare_peer::NAME, flavor.tag()),
                family: redis_bare_peer::NAME.to_owned(),
                run: Box::new(move |workload, params| {
                    let params = params.clone();
                    run_on(flavor, move || async move { redis_bare_peer::run(workload, &params).await })
                }),
                note: no_note,
            },
            BOTH,
        ));
    }
    const CONSUME: &[Workload] = &[Workload::Consume];
    for flavor in runtime_variants() {
        contenders.push((
            Contender {
                name: format!("{}/{}", redis_bare_peer::ACK_NAME, flavor.tag()),
                family: redis_bare_peer::ACK_NAME.to_owned(),
                run: Box::new(move |_workload, params| {
                    let params = params.clone();
                    run_on(flavor, move || async move {
                        redis_bare_peer::consume_acked(&params.url, params.messages, params.size, params.prefetch, params.window).await
                    })
                }),
                note: no_note,
            },
            CONSUME,
        ));
    }
    for batch in [false, true] {
        let python = python.clone();
        contenders.push((
            Contender {
                name: if batch { kombu_peer::BATCH_NAME } else { kombu_peer::NAME }.to_owned(),
                family: kombu_peer::NAME.to_owned(),
                run: Box::new(move |workload, params| {
                    let python = python.clone();
                    let params = params.clone();
                    run_on(Flavor::CurrentThread, move || async move {
                        kombu_peer::run_redis(&python, workload, &params, batch).await
                    })
                }),
                note: no_note,
            },
            if batch { PUBLISH } else { BOTH },
        ));
    }
    contenders
}
