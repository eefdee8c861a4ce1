//! Network namespaces for nodes that must be cut off from each other: a
//! bridge in the root namespace, one namespace per node joined to it by a
//! veth pair, nftables rules and htb shaping on those links, and the
//! reaping of what a test run that died without unwinding left behind.
//! Linux only; needs root and the `ip` (iproute2), `nft` (nftables) and
//! `tc` tools.
//!
//! # Names and owners
//!
//! Everything created carries its owner, the test process (pid and start
//! time, as the process markers of [`crate::reap_orphans`] do):
//!
//! * namespaces: `kelp-<owner pid>-<owner start>-<subnet #>-<node #>`;
//! * links (15 characters at most, so only the pid fits in the name): the
//!   bridge `kb<pid>x<subnet #>`, the root ends of the veths
//!   `kv<pid>x<subnet #>n<node #>` (counters in base 36), each with the
//!   interface alias `kelp-test owner=<pid>:<start>`.
//!
//! Each subnet is a /24 of `10.77.0.0/16` that no interface or route of the
//! root namespace uses yet: the bridge is `.1`, node `i` is `.(i + 2)` on
//! `eth0` of its namespace.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::names::nanos_now;
use crate::procs;
use crate::signals::{Signal, kill_pid};

const NS_PREFIX: &str = "kelp-";
const ALIAS_PREFIX: &str = "kelp-test owner=";
const NETNS_DIR: &str = "/run/netns";
/// The name of the nftables table this module owns in a namespace.
const TABLE: &str = "kelp";
/// The interface of a node inside its namespace.
pub(crate) const NODE_DEV: &str = "eth0";

static SUBNET_COUNTER: AtomicU64 = AtomicU64::new(0);
/// Third octets of `10.77.x.0/24` held by live subnets of this process.
static CLAIMED: Mutex<Option<HashSet<u8>>> = Mutex::new(None);

/// The full path of a system tool (`ip`, `nft`, `tc`), searched in `PATH`
/// and the sbin directories (not always in a test runner's `PATH`).
pub(crate) fn tool_path(name: &str) -> Result<PathBuf> {
    procs::which(name)
        .or_else(|| {
            ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(|d| Path::new(d).join(name))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            let package = match name {
                "nft" => "nftables",
                _ => "iproute2",
            };
            Error::new(format!(
                "`{name}` not found: install it (Debian package {package}; scripts/deps.sh does)"
            ))
        })
}

/// Runs `name args...` (stdin from `input`), returns its stdout, or an
/// error with the command line and its stderr.
pub(crate) fn run_tool(name: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let mut cmd = Command::new(tool_path(name)?);
    cmd.args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let line = format!("{name} {}", args.join(" "));
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(format!("cannot run {line}: {e}")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| Error::new(format!("{line}: cannot write its input: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::new(format!("{line}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::new(format!(
            "{line} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end(),
            input.map(|t| format!("\ninput:\n{t}")).unwrap_or_default()
        )))
    }
}

/// `ip netns exec <ns> <program>`: a command that runs `program` in `ns`
/// (with the caller's environment).
pub(crate) fn command_in(ns: &str, program: &Path) -> Result<Command> {
    let mut cmd = Command::new(tool_path("ip")?);
    cmd.args(["netns", "exec", ns]).arg(program);
    Ok(cmd)
}

/// Runs `f` on a thread that has entered the network namespace `ns`
/// (sockets it opens live there), and returns what it returned.
pub(crate) fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> Result<T> {
    let path = Path::new(NETNS_DIR).join(ns);
    let file = fs::File::open(&path)
        .map_err(|e| Error::new(format!("cannot open {}: {e}", path.display())))?;
    std::thread::scope(|s| {
        let handle = s.spawn(move || {
            // SAFETY: setns(2) on a file descriptor we own; with
            // CLONE_NEWNET it moves only the calling thread, which ends
            // after `f`.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                let e = std::io::Error::last_os_error();
                return Err(Error::new(format!(
                    "cannot enter network namespace {ns}: {e}"
                )));
            }
            Ok(f())
        });
        match handle.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// A bridge in the root namespace and one namespace per node linked to it
/// (see the [module docs](self)). Dropping it kills whatever still runs in
/// the namespaces and deletes them, the veths and the bridge.
#[derive(Debug)]
pub(crate) struct Subnet {
    /// `10.77.<octet>.0/24`, once claimed.
    octet: Option<u8>,
    /// The bridge, once created.
    bridge: Option<String>,
    /// Node namespaces created so far.
    pub(crate) namespaces: Vec<String>,
    /// Root ends of the veth pairs created so far.
    pub(crate) veths: Vec<String>,
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

impl Subnet {
    /// Creates the bridge on a free `/24` and `nodes` namespaces linked to
    /// it, each with its address on `eth0` and `lo` up.
    pub(crate) fn create(nodes: usize) -> Result<Subnet> {
        if nodes == 0 || nodes > 36 {
            return Err(Error::new(format!(
                "a subnet holds 1 to 36 nodes, not {nodes}"
            )));
        }
        for t in ["ip", "nft", "tc"] {
            tool_path(t)?;
        }
        let (pid, start) = procs::owner_id();
        // Names only need to be unique among this process's live subnets.
        let n = base36(SUBNET_COUNTER.fetch_add(1, Ordering::Relaxed) % 1296);
        let alias = format!("{ALIAS_PREFIX}{pid}:{start}");
        let mut sub = Subnet {
            octet: None,
            bridge: None,
            namespaces: Vec::new(),
            veths: Vec::new(),
        };
        let bridge = format!("kb{pid}x{n}");
        run_tool("ip", &["link", "add", &bridge, "type", "bridge"], None)?;
        sub.bridge = Some(bridge.clone());
        run_tool(
            "ip",
            &["link", "set", "dev", &bridge, "alias", &alias],
            None,
        )?;
        sub.octet = Some(claim_octet(&bridge)?);
        run_tool("ip", &["link", "set", "dev", &bridge, "up"], None)?;
        for i in 0..nodes {
            let ns = format!("{NS_PREFIX}{pid}-{start}-{n}-{i}");
            run_tool("ip", &["netns", "add", &ns], None)?;
            sub.namespaces.push(ns.clone());
            let veth = format!("kv{pid}x{n}n{}", base36(i as u64));
            run_tool(
                "ip",
                &[
                    "link", "add", &veth, "type", "veth", "peer", "name", NODE_DEV, "netns", &ns,
                ],
                None,
            )?;
            sub.veths.push(veth.clone());
            run_tool("ip", &["link", "set", "dev", &veth, "alias", &alias], None)?;
            run_tool(
                "ip",
                &["link", "set", "dev", &veth, "master", &bridge, "up"],
                None,
            )?;
            let addr = format!("{}/24", sub.node_ip(i));
            run_tool(
                "ip",
                &["-n", &ns, "addr", "add", &addr, "dev", NODE_DEV],
                None,
            )?;
            run_tool(
                "ip",
                &["-n", &ns, "link", "set", "dev", NODE_DEV, "up"],
                None,
            )?;
            run_tool("ip", &["-n", &ns, "link", "set", "dev", "lo", "up"], None)?;
        }
        Ok(sub)
    }

    fn octet(&self) -> u8 {
        self.octet.unwrap_or(0)
    }

    /// The bridge's address: where the root namespace's traffic to the
    /// nodes comes from.
    pub(crate) fn bridge_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.octet(), 1)
    }

    /// Node `i`'s address.
    pub(crate) fn node_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.octet(), i as u8 + 2)
    }

    /// The bridge's name.
    pub(crate) fn bridge(&self) -> &str {
        self.bridge.as_deref().unwrap_or("")
    }
}

impl Drop for Subnet {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            kill_all_in(ns);
        }
        // Deleting the root end deletes the pair at once; a namespace's
        // own devices go only when the kernel gets round to it.
        for veth in &self.veths {
            let _ = run_tool("ip", &["link", "del", "dev", veth], None);
        }
        for ns in &self.namespaces {
            let _ = run_tool("ip", &["netns", "del", ns], None);
        }
        if let Some(bridge) = &self.bridge {
            let _ = run_tool("ip", &["link", "del", "dev", bridge], None);
        }
        if let Some(octet) = self.octet {
            let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(set) = claimed.as_mut() {
                set.remove(&octet);
            }
        }
    }
}

/// Picks a `10.77.x.0/24` no interface or route of the root namespace
/// overlaps, puts `.1` on `bridge`, and checks that nobody took the same
/// /24 meanwhile (another test process).
fn claim_octet(bridge: &str) -> Result<u8> {
    let mut claimed = CLAIMED.lock().unwrap_or_else(|e| e.into_inner());
    let claimed = claimed.get_or_insert_with(HashSet::new);
    let first = (nanos_now() ^ u64::from(std::process::id())) % 256;
    for t in 0..256u64 {
        let octet = ((first + t) % 256) as u8;
        if claimed.contains(&octet) || !subnet_users(octet, bridge)?.is_empty() {
            continue;
        }
        let cidr = format!("10.77.{octet}.1/24");
        run_tool("ip", &["addr", "add", &cidr, "dev", bridge], None)?;
        if subnet_users(octet, bridge)?.is_empty() {
            claimed.insert(octet);
            return Ok(octet);
        }
        run_tool("ip", &["addr", "del", &cidr, "dev", bridge], None)?;
    }
    Err(Error::new(
        "no free /24 left in 10.77.0.0/16 for a test subnet (see `ip -4 addr`, `ip -4 route`)",
    ))
}

/// What in the root namespace, other than `bridge`, has an address or a
/// route overlapping `10.77.<octet>.0/24` (a default route does not count).
fn subnet_users(octet: u8, bridge: &str) -> Result<Vec<String>> {
    let ours = u32::from(Ipv4Addr::new(10, 77, octet, 0));
    let overlaps = |cidr: &str| -> bool {
        let (addr, len) = cidr.split_once('/').unwrap_or((cidr, "32"));
        let (Ok(addr), Ok(len)) = (addr.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
            return false;
        };
        let len = len.min(32);
        let mask = |l: u32| if l == 0 { 0 } else { u32::MAX << (32 - l) };
        let common = mask(len.min(24));
        (u32::from(addr) & common) == (ours & common)
    };
    let mut users = Vec::new();
    // "5: br0    inet 10.77.3.1/24 brd ... scope global br0\ ..."
    for line in run_tool("ip", &["-o", "-4", "addr", "show"], None)?.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 3 && f[1] != bridge && overlaps(f[3]) {
            users.push(line.to_string());
        }
    }
    // "10.77.0.0/16 dev tun0 ..." (no "/len" means a host route)
    for line in run_tool("ip", &["-o", "-4", "route", "show", "table", "all"], None)?.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let dst = f
            .iter()
            .copied()
            .find(|w| w.contains('.') || *w == "default");
        let dev = f.windows(2).find(|w| w[0] == "dev").map(|w| w[1]);
        match dst {
            Some(dst) if dst != "default" && dev != Some(bridge) && overlaps(dst) => {
                users.push(line.to_string())
            }
            _ => {}
        }
    }
    Ok(users)
}

/// SIGKILLs every process in namespace `ns` (epmd, a VM, a CLI run) and
/// waits until they are gone, so the namespace can go.
fn kill_all_in(ns: &str) {
    let Ok(out) = run_tool("ip", &["netns", "pids", ns], None) else {
        return;
    };
    let pids: Vec<u32> = out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for &pid in &pids {
        let _ = kill_pid(pid, Signal::Cont);
        let _ = kill_pid(pid, Signal::Kill);
    }
    for pid in pids {
        procs::wait_pid_gone(pid, Duration::from_secs(10));
    }
}

/// Replaces this module's nftables table in namespace `ns` with one whose
/// chains hook `dev`'s ingress and egress (before and after the IP stack:
/// a dropped packet is lost on the wire, its sender sees no error) and
/// hold these rules; with no rules the table is deleted. One atomic nft
/// transaction, so calling it again with the same rules changes nothing.
pub(crate) fn set_filter(ns: &str, dev: &str, ingress: &[String], egress: &[String]) -> Result<()> {
    let mut script = format!("table netdev {TABLE} {{}}\ndelete table netdev {TABLE}\n");
    if !ingress.is_empty() || !egress.is_empty() {
        script.push_str(&format!("table netdev {TABLE} {{\n"));
        for (chain, rules) in [("ingress", ingress), ("egress", egress)] {
            script.push_str(&format!(
                "  chain {chain} {{\n    type filter hook {chain} device \"{dev}\" priority 0; policy accept;\n"
            ));
            for rule in rules {
                script.push_str(&format!("    {rule}\n"));
            }
            script.push_str("  }\n");
        }
        script.push_str("}\n");
    }
    let nft = tool_path("nft")?;
    let nft = nft.to_string_lossy();
    run_tool("ip", &["netns", "exec", ns, &nft, "-f", "-"], Some(&script)).map(|_| ())
}

/// The rules of this module's table in `ns` (`nft list table`), empty if
/// there is none.
pub(crate) fn list_filter(ns: &str) -> Result<String> {
    let nft = tool_path("nft")?;
    let nft = nft.to_string_lossy();
    let all = run_tool("ip", &["netns", "exec", ns, &nft, "list", "tables"], None)?;
    if !all
        .lines()
        .any(|l| l.trim() == format!("table netdev {TABLE}"))
    {
        return Ok(String::new());
    }
    run_tool(
        "ip",
        &["netns", "exec", ns, &nft, "list", "table", "netdev", TABLE],
        None,
    )
}

/// Limits the IPv4 traffic leaving `dev` (in namespace `ns`, or in the root
/// namespace for `None`) that matches the u32 selector `ip <selector>`
/// (e.g. `dst 10.77.3.1/32`) to `bits_per_sec` with an htb class; other
/// traffic goes through a class of 10 Gbit/s. `None` removes the qdisc.
pub(crate) fn set_rate_limit(
    ns: Option<&str>,
    dev: &str,
    selector: &str,
    bits_per_sec: Option<u64>,
) -> Result<()> {
    let tc = |args: &[&str]| -> Result<String> {
        let mut all: Vec<&str> = Vec::new();
        if let Some(ns) = ns {
            all.extend(["-n", ns]);
        }
        all.extend(args);
        run_tool("tc", &all, None)
    };
    // Absent already is fine: that is the state asked for.
    let _ = tc(&["qdisc", "del", "dev", dev, "root"]);
    let Some(bits) = bits_per_sec else {
        return Ok(());
    };
    let rate = format!("{}bit", bits.max(8));
    let mut sel: Vec<&str> = vec![
        "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip",
    ];
    sel.extend(["prio", "1", "u32", "match", "ip"]);
    sel.extend(selector.split_whitespace());
    sel.extend(["flowid", "1:2"]);
    tc(&[
        "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "1",
    ])?;
    tc(&[
        "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit",
        "quantum", "60000",
    ])?;
    tc(&[
        "class", "add", "dev", dev, "parent", "1:", "classid", "1:2", "htb", "rate", &rate, "ceil",
        &rate, "quantum", "1514",
    ])?;
    tc(&sel).map(|_| ())
}

/// Deletes the namespaces and links of owners that are gone (see the
/// [module docs](self) for how they are named), first killing whatever
/// still runs in such a namespace. Returns how many were deleted. Quiet and
/// cheap when there is nothing to do (no tool is run then).
pub(crate) fn reap_orphan_networks() -> usize {
    let mut removed = 0;
    if let Ok(entries) = fs::read_dir(NETNS_DIR) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(NS_PREFIX) else {
                continue;
            };
            let mut parts = rest.split('-');
            let (Some(Ok(pid)), Some(Ok(start))) = (
                parts.next().map(str::parse::<u32>),
                parts.next().map(str::parse::<u64>),
            ) else {
                continue;
            };
            if procs::owner_alive(pid, start) {
                continue;
            }
            kill_all_in(&name);
            if run_tool("ip", &["netns", "del", &name], None).is_ok() {
                removed += 1;
            }
        }
    }
    if let Ok(entries) = fs::read_dir("/sys/class/net") {
        for entry in entries.flatten() {
            let Ok(alias) = fs::read_to_string(entry.path().join("ifalias")) else {
                continue;
            };
            let Some((pid, start)) = alias
                .trim()
                .strip_prefix(ALIAS_PREFIX)
                .and_then(|o| o.split_once(':'))
            else {
                continue;
            };
            let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
                continue;
            };
            if procs::owner_alive(pid, start) {
                continue;
            }
            let dev = entry.file_name().to_string_lossy().into_owned();
            if run_tool("ip", &["link", "del", "dev", &dev], None).is_ok() {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        eprintln!(
            "kelp-test-support: deleted {removed} network namespace(s)/link(s) of dead test runs"
        );
    }
    removed
}

#[cfg(test)]
mod tests {
    #[test]
    fn base36_names_stay_short() {
        assert_eq!(super::base36(0), "0");
        assert_eq!(super::base36(35), "z");
        assert_eq!(super::base36(1295), "zz");
        // kv + 7-digit pid + x + 2 + n + 1 = 14 <= 15 (IFNAMSIZ - 1)
        assert!(
            format!(
                "kv{}x{}n{}",
                4_194_304,
                super::base36(1295),
                super::base36(35)
            )
            .len()
                <= 15
        );
    }
}
