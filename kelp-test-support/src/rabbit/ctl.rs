//! `rabbitmqctl -n <node>`, run with the node's environment (and so its
//! Erlang cookie), killed if it outlives its timeout.

use std::time::Duration;

use super::config::NodeConfig;
use crate::procs::{self, CmdOutput};
use crate::error::{Error, Result};

/// Runs `rabbitmqctl -n <node> <args>`; its output whatever the outcome.
pub(super) fn ctl(cfg: &NodeConfig, args: &[&str], timeout: Duration) -> Result<CmdOutput> {
    let mut cmd = cfg.command("rabbitmqctl")?;
    cmd.arg("-n").arg(&cfg.name).args(args);
    procs::run_with_timeout(cmd, &cfg.dir, timeout)
}

/// [`ctl`]'s stdout, or an error (with stdout and stderr) if it exits
/// non-zero or is killed at the timeout.
pub(super) fn ctl_ok(cfg: &NodeConfig, args: &[&str], timeout: Duration) -> Result<String> {
    let out = ctl(cfg, args, timeout)?;
    match out.status {
        Some(s) if s.success() => Ok(out.stdout),
        status => Err(Error::new(format!(
            "rabbitmqctl -n {} {} failed ({}):\nstdout: {}\nstderr: {}",
            cfg.name,
            args.join(" "),
            match status {
                Some(s) => s.to_string(),
                None => format!("killed after {timeout:?}"),
            },
            out.stdout.trim_end(),
            out.stderr.trim_end()
        ))),
    }
}
