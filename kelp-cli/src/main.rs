//! The `kelp` command line: publish, consume and benchmark over any kelp
//! transport. Its options and output format are a stable interface that
//! scripts rely on: extend them, never rename or reshape them.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use kelp_cli::bench::BenchArgs;
use kelp_cli::commands::{ConsumeArgs, PublishArgs};
use kelp_cli::drill::command::DrillArgs;

#[derive(Parser)]
#[command(name = "kelp", version, about = "Publish, consume and benchmark messages over memory://, amqp:// and redis://")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish a message (BODY is JSON text) and wait for the broker's confirm.
    Publish(PublishArgs),
    /// Print messages from a queue, one JSON object per line, acking each.
    Consume(ConsumeArgs),
    /// Measure throughput and latency of a producer and a consumer in one process.
    Bench(BenchArgs),
    /// Check that no confirmed message is lost while brokers fail (a Jepsen-style drill).
    Drill(DrillArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kelp: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Publish(args) => kelp_cli::commands::publish(args).await,
            Command::Consume(args) => kelp_cli::commands::consume(args).await,
            Command::Bench(args) => kelp_cli::bench::run(args).await,
            Command::Drill(args) => kelp_cli::drill::command::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kelp: {e}");
            ExitCode::FAILURE
        }
    }
}
