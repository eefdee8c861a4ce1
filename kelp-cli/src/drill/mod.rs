//! `kelp drill`: a Jepsen-style check that no confirmed message is lost
//! while brokers fail. Producers publish distinct, numbered, persistent
//! messages with confirms; consumers with manual acks record every
//! delivery; faults are marked as they happen (by a test's nemesis, by
//! `--fault-cmd`, or by the person who runs it); at the end the queue is
//! drained and every message is accounted for by id ([`checker`]).
//!
//! Files, bottom to top: `history` and `faults` (the record), `checker`,
//! `stats` and `resources` (what is measured), `config`, `workload` (the
//! clients), `report`, `run` ([`Drill`]) and `command` (`kelp drill`).

pub mod checker;
pub mod command;
pub mod config;
pub mod faults;
pub mod history;
pub mod report;
pub mod resources;
pub mod run;
pub mod stats;
pub mod workload;

pub use config::DrillConfig;
pub use faults::FaultLog;
pub use report::Report;
pub use run::Drill;
pub use workload::Progress;
