//! A node's processes: booting the `rabbitmq-server` script and finding
//! its Erlang VM, waiting until the node is ready, killing and stopping it.
//! See the [parent module](super) for how the VM's PID is found and what
//! "ready" means.

use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::config::NodeConfig;
use super::ctl::ctl_ok;
use crate::procs;
use crate::error::{Error, Result};
use crate::signals::{Signal, kill_pid};

/// Serialises boots within this process (they are CPU heavy; see crate docs).
static BOOT_LOCK: Mutex<()> = Mutex::new(());

#[derive(Debug, Default)]
pub(super) struct NodeState {
    /// The `rabbitmq-server` script process.
    pub(super) script: Option<Child>,
    /// The Erlang VM.
    pub(super) beam: Option<u32>,
    pub(super) frozen: bool,
}

#[derive(Debug)]
pub(super) struct NodeInner {
    pub(super) cfg: NodeConfig,
    state: Mutex<NodeState>,
    /// The beam PID, or 0 when not running (readable without the state lock).
    pub(super) pid: AtomicU32,
}

impl NodeInner {
    /// A node that is not running (yet).
    pub(super) fn new(cfg: NodeConfig) -> NodeInner {
        NodeInner {
            cfg,
            state: Mutex::new(NodeState::default()),
            pid: AtomicU32::new(0),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, NodeState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Boots the node (state must be "not running"). Holds the boot lock.
    pub(super) fn boot(&self, st: &mut NodeState) -> Result<()> {
        let _boot = BOOT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let cfg = &self.cfg;
        let mut cmd = cfg.command("rabbitmq-server")?;
        let (out, err) = procs::append_log(&cfg.startup_log())?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        let _ = std::fs::remove_file(cfg.pid_file());
        let t0 = Instant::now();
        let mut child = cmd.spawn().map_err(|e| {
            Error::new(format!(
                "cannot run {}/rabbitmq-server: {e}",
                cfg.sbin.display()
            ))
        })?;
        let deadline = t0 + cfg.start_timeout;
        let mut beam: Option<u32> = None;
        let mut last_probe = String::from("no probe yet");
        let fail = |child: &mut Child, why: String| -> Error {
            procs::kill_tree(child);
            let diag = cfg.diagnostics();
            let port_conflict = diag.contains("eaddrinuse") || why.contains("another process");
            let mut e = Error::new(format!(
                "RabbitMQ node {} (AMQP {}:{}, dist port {}, dir {}) failed to start: {why}\n{diag}",
                cfg.name,
                cfg.ip,
                cfg.amqp_port,
                cfg.dist_port,
                cfg.dir.display()
            ));
            e.port_conflict = port_conflict;
            e
        };
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    return Err(fail(
                        &mut child,
                        format!("rabbitmq-server exited with {status}"),
                    ));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(fail(
                        &mut child,
                        format!("cannot wait for rabbitmq-server: {e}"),
                    ));
                }
            }
            if beam.is_none() {
                beam = find_beam(child.id(), &cfg.name);
            }
            if let Some(pid) = beam {
                if !procs::pid_alive(pid) {
                    return Err(fail(
                        &mut child,
                        format!("the Erlang VM (pid {pid}) died during boot"),
                    ));
                }
                match cfg.probe_amqp(Duration::from_secs(2)) {
                    Ok(()) => {
                        if procs::pid_listens_on(pid, cfg.amqp_port) {
                            break;
                        }
                        last_probe = format!(
                            "port {} answers AMQP, but the listening socket belongs to another process than our VM (pid {pid})",
                            cfg.amqp_port
                        );
                    }
                    Err(e) => last_probe = e.to_string(),
                }
            }
            if Instant::now() >= deadline {
                let why = match beam {
                    None => format!(
                        "no beam.smp process appeared under rabbitmq-server (pid {}) within {:?}",
                        child.id(),
                        cfg.start_timeout
                    ),
                    Some(pid) => format!(
                        "not ready within {:?} (beam pid {pid}); last AMQP probe: {last_probe}",
                        cfg.start_timeout
                    ),
                };
                return Err(fail(&mut child, why));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let pid = beam.expect("beam pid known when ready");
        // Cross-check with the pid file RabbitMQ writes.
        if let Ok(text) = std::fs::read_to_string(cfg.pid_file())
            && let Ok(file_pid) = text.trim().parse::<u32>()
            && file_pid != pid
        {
            return Err(fail(
                &mut child,
                format!(
                    "pid file {} says {file_pid}, but /proc says the VM is {pid}",
                    cfg.pid_file().display()
                ),
            ));
        }
        if let Some(tls_port) = cfg.tls_port {
            loop {
                if cfg.accepts(tls_port, Duration::from_secs(2))
                    && procs::pid_listens_on(pid, tls_port)
                {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(fail(
                        &mut child,
                        format!(
                            "AMQP is up but the TLS listener on {}:{tls_port} is not (check the certificate paths)",
                            cfg.ip
                        ),
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        eprintln!(
            "kelp-test-support: RabbitMQ node {} ready on {}:{} after {:.1} s (beam pid {pid})",
            cfg.name,
            cfg.ip,
            cfg.amqp_port,
            t0.elapsed().as_secs_f64()
        );
        st.script = Some(child);
        st.beam = Some(pid);
        st.frozen = false;
        self.pid.store(pid, Ordering::SeqCst);
        Ok(())
    }

    /// SIGKILLs the VM (and the script), waits until both are gone.
    pub(super) fn kill_locked(&self, st: &mut NodeState) {
        if let Some(pid) = st.beam.take() {
            if st.frozen {
                let _ = kill_pid(pid, Signal::Cont);
            }
            let _ = kill_pid(pid, Signal::Kill);
            procs::wait_pid_gone(pid, Duration::from_secs(30));
        }
        if let Some(mut child) = st.script.take() {
            // The script exits by itself once the VM is gone; make sure.
            if procs::wait_child(&mut child, Duration::from_secs(10)).is_none() {
                procs::kill_tree(&mut child);
            } else {
                // Any straggler (erl_child_setup etc.) re-parented elsewhere
                // dies with its VM; nothing else to do.
            }
        }
        st.frozen = false;
        self.pid.store(0, Ordering::SeqCst);
    }

    pub(super) fn stop_locked(&self, st: &mut NodeState) -> Result<()> {
        if st.beam.is_none() {
            return Ok(());
        }
        if st.frozen {
            if let Some(pid) = st.beam {
                let _ = kill_pid(pid, Signal::Cont);
            }
            st.frozen = false;
        }
        let res = ctl_ok(&self.cfg, &["stop"], Duration::from_secs(120));
        let beam = st.beam;
        let exited = match st.script.as_mut() {
            Some(child) => procs::wait_child(child, Duration::from_secs(60)).is_some(),
            None => true,
        } && beam
            .map(|p| procs::wait_pid_gone(p, Duration::from_secs(10)))
            .unwrap_or(true);
        if !exited {
            self.kill_locked(st);
            return Err(Error::new(format!(
                "node {} did not exit within 60 s of `rabbitmqctl stop` ({}); it was SIGKILLed\n{}",
                self.cfg.name,
                match &res {
                    Ok(_) => "stop succeeded".to_string(),
                    Err(e) => e.to_string(),
                },
                self.cfg.diagnostics()
            )));
        }
        st.beam = None;
        st.script = None;
        self.pid.store(0, Ordering::SeqCst);
        res.map(|_| ())
    }
}

impl Drop for NodeInner {
    fn drop(&mut self) {
        let mut st = std::mem::take(&mut *self.lock());
        self.kill_locked(&mut st);
        // Stragglers (rabbitmqctl runs killed at timeout are reaped already).
        procs::remove_dir_retrying(&self.cfg.dir);
    }
}

/// Finds the `beam.smp` descendant of `script_pid` carrying our marker.
fn find_beam(script_pid: u32, node_name: &str) -> Option<u32> {
    let mut candidates = procs::descendants(script_pid);
    candidates.insert(0, script_pid);
    candidates.into_iter().find(|&pid| {
        procs::proc_comm(pid).as_deref() == Some("beam.smp")
            && procs::proc_cmdline(pid).is_some_and(|args| {
                args.windows(2)
                    .any(|w| w[0] == "-kelp_test_node" && w[1] == node_name)
            })
    })
}
