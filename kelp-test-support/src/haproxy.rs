//! HAProxy in front of RabbitMQ nodes, as in the RabbitMQ cluster failover
//! chapter: one address, round-robin over the nodes, TCP health checks, so
//! that a client reconnecting through it lands on a live node.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::names::unique_name;
use crate::poll::wait_for;
use crate::procs::free_port;

/// A running `haproxy` process (killed on drop).
pub struct HaProxy {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl HaProxy {
    /// Start HAProxy on a free port, balancing round-robin over `backends`
    /// with a health check every 500 ms (down after 2 failures, up after 1
    /// success), and redispatching a connection whose backend is down.
    pub fn start(backends: &[SocketAddr]) -> Result<HaProxy> {
        let haproxy = which("haproxy").ok_or_else(|| {
            Error::new("haproxy is not installed (Debian: apt-get install -y haproxy)".to_owned())
        })?;
        let port = free_port();
        let dir = std::env::temp_dir().join(unique_name("kelp-test-haproxy"));
        std::fs::create_dir_all(&dir).map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
        let mut config = format!(
            "global\n    maxconn 256\n\ndefaults\n    mode tcp\n    timeout connect 2s\n    \
             timeout client 1h\n    timeout server 1h\n    retries 3\n    option redispatch\n\n\
             listen rabbitmq\n    bind 127.0.0.1:{port}\n    balance roundrobin\n"
        );
        for (i, backend) in backends.iter().enumerate() {
            config.push_str(&format!("    server node{i} {backend} check inter 500 fall 2 rise 1\n"));
        }
        let config_path = dir.join("haproxy.cfg");
        std::fs::write(&config_path, config)
            .map_err(|e| Error::new(format!("cannot write {}: {e}", config_path.display())))?;
        let child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::new(format!("cannot start haproxy: {e}")))?;
        let proxy = HaProxy { child, port, dir };
        let addr = proxy.addr();
        wait_for(
            || TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok(),
            Duration::from_secs(10),
        )
        .map_err(|_| Error::new(format!("haproxy did not listen on {addr}")))?;
        Ok(proxy)
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `amqp://guest:guest@127.0.0.1:<port>//`.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}//", self.port)
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
