//! Process, port and temporary-directory plumbing shared by the spawners
//! (Linux `/proc` based).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::names::nanos_now;
use crate::signals::{Signal, kill_pid};

/// Environment variable carrying `<owner pid>:<owner start time>` on every
/// process this crate starts.
pub(crate) const OWNER_ENV: &str = "KELP_TEST_OWNER";
/// Environment variable carrying the temporary directory of the process.
pub(crate) const DIR_ENV: &str = "KELP_TEST_DIR";
/// Prefix of every temporary directory this crate creates.
pub(crate) const DIR_PREFIX: &str = "kelp-test-";

// ---------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
static PORT_COUNTER: AtomicU64 = AtomicU64::new(0);

const RESERVED_PORTS: &[u16] = &[
    4369, 5671, 5672, 6379, 6380, 15671, 15672, 15674, 15675, 15692, 25672, 26379, 35672, 1883,
    4222, 5432, 3306, 8080, 8443, 11211, 27017,
];

fn ephemeral_range() -> (u16, u16) {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Picks a TCP port that is currently free on 127.0.0.1.
///
/// Ports are picked at random **below** the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, usually from 32768), between
/// 10000 and its start, so that an outgoing connection can never occupy the
/// port between this call and the server's bind, or while a node is down
/// between `kill()` and `restart()`. Well-known ports of the default services
/// (5672, 15672, 25672, 6379, 26379, 4369, ...) are never returned, nor a port
/// this process already handed out.
pub fn free_port() -> u16 {
    let (lo, hi) = ephemeral_range();
    // Prefer [10000, lo); if the ephemeral range starts too low, use (hi, 65535].
    let (start, end) = if lo > 11_000 {
        (10_000u32, lo as u32)
    } else {
        (hi as u32 + 1, 65_536u32)
    };
    let span = end.saturating_sub(start).max(1);
    let seed = splitmix(
        nanos_now()
            ^ ((std::process::id() as u64) << 32)
            ^ PORT_COUNTER.fetch_add(1, Ordering::Relaxed),
    );
    let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let handed = guard.get_or_insert_with(HashSet::new);
    for i in 0..(span as u64).min(20_000) {
        let p = (start + ((seed.wrapping_add(i.wrapping_mul(7919))) % span as u64) as u32) as u16;
        if p == 0 || RESERVED_PORTS.contains(&p) || handed.contains(&p) {
            continue;
        }
        if port_is_free(p) {
            handed.insert(p);
            return p;
        }
    }
    // Extremely unlikely: fall back to the kernel's choice.
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("cannot bind any port on 127.0.0.1");
    l.local_addr().expect("local_addr").port()
}

/// Whether 127.0.0.1:`port` can be bound (nobody listens there).
pub(crate) fn port_is_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
        && TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// Whether process `pid` holds a socket listening on TCP `port` (IPv4 or IPv6).
/// The socket tables read are those of `pid`'s network namespace
/// (`/proc/<pid>/net`), so this works for a node in a namespace too.
pub(crate) fn pid_listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = HashSet::new();
    for table in [format!("/proc/{pid}/net/tcp"), format!("/proc/{pid}/net/tcp6")] {
        let Ok(text) = fs::read_to_string(&table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue; // not LISTEN
            }
            let Some((_, p)) = f[1].rsplit_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                inodes.insert(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .map(|l| inodes.contains(l.to_string_lossy().as_ref()))
            .unwrap_or(false)
    })
}

// ---------------------------------------------------------------------------
// /proc
// ---------------------------------------------------------------------------

/// (state, ppid, starttime) from /proc/<pid>/stat.
fn proc_stat(pid: u32) -> Option<(char, u32, u64)> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: parse after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest fields: 0 state, 1 ppid, ..., 19 starttime (field 22 overall)
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(19)?.parse().ok()?,
    ))
}

/// Whether process `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((state, _, _)) if state != 'Z' && state != 'X')
}

pub(crate) fn proc_comm(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

pub(crate) fn proc_cmdline(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

fn proc_environ(pid: u32) -> Option<Vec<String>> {
    let raw = fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

fn all_pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// All live descendants of `root` (not including `root`), parents first.
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in all_pids() {
        if let Some((_, ppid, _)) = proc_stat(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        if let Some(cs) = children.get(&p) {
            for &c in cs {
                out.push(c);
                stack.push(c);
            }
        }
    }
    out
}

/// This process's pid and start time (clock ticks since boot): together
/// they name it, even after its pid is reused.
pub(crate) fn owner_id() -> (u32, u64) {
    let me = std::process::id();
    let start = proc_stat(me).map(|(_, _, st)| st).unwrap_or(0);
    (me, start)
}

fn owner_marker() -> String {
    let (me, start) = owner_id();
    format!("{me}:{start}")
}

/// Whether the process `pid` that started at `start` ([`owner_id`]) still
/// runs.
pub(crate) fn owner_alive(pid: u32, start: u64) -> bool {
    matches!(proc_stat(pid), Some((s, _, st)) if st == start && s != 'Z')
}

/// Adds the owner and directory markers to a command's environment.
pub(crate) fn mark(cmd: &mut Command, dir: &Path) {
    cmd.env(OWNER_ENV, owner_marker());
    cmd.env(DIR_ENV, dir);
}

/// Kills every process started by this crate (they carry a
/// `KELP_TEST_OWNER` environment marker) whose owning test process no
/// longer exists, and removes their temporary directories; the process half
/// of [`crate::reap_orphans`]. Returns the number of processes killed.
pub(crate) fn reap_orphan_processes() -> usize {
    let mut killed = 0;
    let mut dirs = HashSet::new();
    let me = std::process::id();
    for pid in all_pids() {
        if pid == me {
            continue;
        }
        let Some((owner_alive, dir)) = owner_of(pid) else {
            continue;
        };
        if owner_alive {
            continue;
        }
        let _ = kill_pid(pid, Signal::Cont);
        if kill_pid(pid, Signal::Kill).is_ok() {
            killed += 1;
        }
        if let Some(d) = dir {
            dirs.insert(d);
        }
    }
    if killed > 0 {
        std::thread::sleep(Duration::from_millis(200));
    }
    for d in dirs {
        let is_ours = d
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        if is_ours {
            let _ = fs::remove_dir_all(&d);
        }
    }
    if killed > 0 {
        eprintln!("kelp-test-support: killed {killed} orphaned test process(es) of dead test runs");
    }
    killed
}

/// Whether `pid` was started by this crate, and if so whether its owner is
/// alive and which directory it used. Two ways to tell:
/// * the `KELP_TEST_OWNER` environment marker (owner pid and start time);
/// * for `redis-server` only, whose process-title code overwrites the
///   environment block: its working directory, named
///   `kelp-test-<kind>-<owner pid>-<n>-<time>`.
fn owner_of(pid: u32) -> Option<(bool, Option<PathBuf>)> {
    let env = proc_environ(pid).unwrap_or_default();
    let owner_prefix = format!("{OWNER_ENV}=");
    let dir_prefix = format!("{DIR_ENV}=");
    if let Some(owner) = env.iter().find_map(|v| v.strip_prefix(&owner_prefix)) {
        let (opid, ostart) = owner.split_once(':')?;
        let (opid, ostart) = (opid.parse::<u32>().ok()?, ostart.parse::<u64>().ok()?);
        let alive = owner_alive(opid, ostart);
        let dir = env
            .iter()
            .find_map(|v| v.strip_prefix(&dir_prefix))
            .map(PathBuf::from);
        return Some((alive, dir));
    }
    if !proc_comm(pid)?.starts_with("redis") {
        return None;
    }
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    let cwd = PathBuf::from(cwd.to_string_lossy().trim_end_matches(" (deleted)"));
    let name = cwd.file_name()?.to_str()?;
    if !name.starts_with(DIR_PREFIX) {
        return None;
    }
    // kelp-test-<kind>-<owner pid>-<n>-<time>
    let mut parts = name.rsplit('-');
    let (_time, _n) = (parts.next()?, parts.next()?);
    let opid: u32 = parts.next()?.parse().ok()?;
    let alive = pid_alive(opid);
    Some((alive, Some(cwd)))
}

// ---------------------------------------------------------------------------
// Temporary directories and files
// ---------------------------------------------------------------------------

static DIR_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Creates a fresh directory `<tmp>/kelp-test-<kind>-<pid>-<n>-<time>`.
pub(crate) fn make_temp_dir(kind: &str) -> Result<PathBuf> {
    let base = match std::env::var_os("KELP_TEST_TMPDIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => std::env::temp_dir(),
    };
    let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!(
        "{DIR_PREFIX}{kind}-{}-{n}-{:x}",
        std::process::id(),
        (nanos_now() / 1000) & 0xff_ffff_ffff
    ));
    fs::create_dir_all(&dir)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

pub(crate) fn write_file(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents)
        .map_err(|e| Error::new(format!("cannot write {}: {e}", path.display())))
}

/// The last `lines` lines of a file (at most the last 64 KiB), or a note that
/// it cannot be read.
pub(crate) fn tail_file(path: &Path, lines: usize) -> String {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return format!("(cannot read {}: {e})", path.display()),
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(64 * 1024);
    let _ = f.seek(SeekFrom::Start(from));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    if all.is_empty() {
        return format!("({} is empty)", path.display());
    }
    all[start..].join("\n")
}

pub(crate) fn remove_dir_retrying(dir: &Path) {
    for _ in 0..10 {
        match fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Opens `path` for appending (creating it), for a child's stdout/stderr.
pub(crate) fn append_log(path: &Path) -> Result<(Stdio, Stdio)> {
    let open = || {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::new(format!("cannot open {}: {e}", path.display())))
    };
    Ok((Stdio::from(open()?), Stdio::from(open()?)))
}

// ---------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------

/// Waits for `child` to exit for at most `timeout`.
pub(crate) fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    let mut interval = Duration::from_millis(5);
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return Some(st),
            Ok(None) => {}
            Err(_) => return None,
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(100));
    }
}

/// Waits until `pid` is gone (or a zombie) for at most `timeout`.
pub(crate) fn wait_pid_gone(pid: u32, timeout: Duration) -> bool {
    crate::poll::wait_for(|| !pid_alive(pid), timeout).is_ok()
}

/// SIGCONT + SIGKILL `child` and all its descendants, then reap `child`.
pub(crate) fn kill_tree(child: &mut Child) {
    let root = child.id();
    let mut pids = vec![root];
    pids.extend(descendants(root)); // parents first
    for &p in &pids {
        let _ = kill_pid(p, Signal::Cont);
    }
    // Deepest first, so that parents can still reap their children.
    for &p in pids.iter().rev() {
        let _ = kill_pid(p, Signal::Kill);
    }
    let _ = wait_child(child, Duration::from_secs(10));
    for p in pids {
        wait_pid_gone(p, Duration::from_secs(5));
    }
}

/// Output of a command run by [`run_with_timeout`].
pub(crate) struct CmdOutput {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `cmd` with stdout/stderr captured to files in `scratch` (no pipe
/// dead-locks), killing it (and its descendants) after `timeout`.
pub(crate) fn run_with_timeout(
    mut cmd: Command,
    scratch: &Path,
    timeout: Duration,
) -> Result<CmdOutput> {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("cmd-{n}.out"));
    let err_path = scratch.join(format!("cmd-{n}.err"));
    let create = |p: &Path| {
        fs::File::create(p).map_err(|e| Error::new(format!("cannot create {}: {e}", p.display())))
    };
    cmd.stdin(Stdio::null())
        .stdout(create(&out_path)?)
        .stderr(create(&err_path)?);
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(format!("cannot run {program}: {e}")))?;
    let status = wait_child(&mut child, timeout);
    if status.is_none() {
        kill_tree(&mut child);
    }
    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = fs::read_to_string(&err_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    let _ = fs::remove_file(&err_path);
    Ok(CmdOutput {
        status,
        stdout,
        stderr,
    })
}

/// Finds `name` in `PATH`.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A short random-looking token (letters only).
pub(crate) fn random_token(len: usize) -> String {
    let mut x = splitmix(
        nanos_now() ^ ((std::process::id() as u64) << 20) ^ DIR_COUNTER.load(Ordering::Relaxed),
    );
    (0..len)
        .map(|_| {
            x = splitmix(x);
            (b'A' + (x % 26) as u8) as char
        })
        .collect()
}
