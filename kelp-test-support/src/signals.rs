//! Signals to processes (SIGKILL, SIGSTOP, SIGCONT...).

use std::io;

/// A signal for [`kill_pid`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGKILL
    Kill,
    /// SIGTERM
    Term,
    /// SIGINT
    Int,
    /// SIGHUP
    Hup,
    /// SIGSTOP: freeze the process.
    Stop,
    /// SIGCONT: thaw a stopped process.
    Cont,
    /// Any other signal number.
    Other(i32),
}

impl Signal {
    /// The raw signal number.
    pub fn as_raw(self) -> i32 {
        match self {
            Signal::Kill => libc::SIGKILL,
            Signal::Term => libc::SIGTERM,
            Signal::Int => libc::SIGINT,
            Signal::Hup => libc::SIGHUP,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
            Signal::Other(n) => n,
        }
    }
}

/// Sends `signal` to process `pid` (`kill(2)`).
pub fn kill_pid(pid: u32, signal: Signal) -> io::Result<()> {
    if pid == 0 || pid > i32::MAX as u32 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad pid {pid}"),
        ));
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal.as_raw()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
