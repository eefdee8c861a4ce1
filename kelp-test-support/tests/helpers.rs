//! Self-tests of the small helpers (default brokers, names, ports, signals,
//! waiting).

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use kelp_test_support::{
    Signal, amqp_probe, default_amqp_url, default_redis_url, eventually, eventually_blocking,
    free_port, kill_pid, pid_alive, require_rabbitmq, require_rabbitmq_async, require_redis,
    unique_name, wait_for, wait_for_async,
};

#[test]
fn default_brokers_are_required_and_reachable() {
    // These run against the machine's default services (never skipped).
    assert_eq!(require_rabbitmq(), default_amqp_url());
    assert_eq!(require_redis(), default_redis_url());
    if std::env::var_os("KELP_TEST_AMQP_URL").is_none() {
        assert_eq!(default_amqp_url(), "amqp://guest:guest@127.0.0.1:5672//");
        amqp_probe("127.0.0.1:5672".parse().unwrap(), Duration::from_secs(10)).unwrap();
    }
    if std::env::var_os("KELP_TEST_REDIS_URL").is_none() {
        assert_eq!(default_redis_url(), "redis://127.0.0.1:6379/0");
    }
}

#[tokio::test]
async fn require_rabbitmq_from_async() {
    assert_eq!(require_rabbitmq_async().await, default_amqp_url());
}

#[test]
fn unique_names_and_free_ports() {
    let names: HashSet<String> = (0..1000).map(|_| unique_name("kelp")).collect();
    assert_eq!(names.len(), 1000);
    let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
    let distinct: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        ports.len(),
        "free_port handed out a port twice"
    );
    for p in ports {
        assert!(p >= 10_000, "{p}");
        assert!(![5672, 15672, 25672, 6379].contains(&p));
        std::net::TcpListener::bind(("127.0.0.1", p)).expect("free port is bindable");
    }
}

#[test]
fn kill_pid_stops_continues_and_kills() {
    let mut child = Command::new("sleep").arg("300").spawn().unwrap();
    let pid = child.id();
    let state = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next())
    };
    kill_pid(pid, Signal::Stop).unwrap();
    eventually_blocking("the child is stopped", Duration::from_secs(10), || {
        state() == Some('T')
    });
    kill_pid(pid, Signal::Cont).unwrap();
    eventually_blocking("the child runs again", Duration::from_secs(10), || {
        state() == Some('S') || state() == Some('R')
    });
    kill_pid(pid, Signal::Kill).unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(!pid_alive(pid));
    assert!(
        kill_pid(0, Signal::Term).is_err(),
        "pid 0 (own process group) must be refused"
    );
}

#[test]
fn wait_for_times_out_with_error() {
    let mut n = 0;
    assert!(
        wait_for(
            || {
                n += 1;
                n >= 3
            },
            Duration::from_secs(10)
        )
        .is_ok()
    );
    let e = wait_for(|| false, Duration::from_millis(50)).unwrap_err();
    assert!(e.message().contains("still false"), "{e}");
}

#[tokio::test]
async fn wait_for_async_works() {
    let mut n = 0;
    assert!(
        wait_for_async(
            || {
                n += 1;
                let done = n >= 3;
                async move { done }
            },
            Duration::from_secs(10)
        )
        .await
        .is_ok()
    );
    // A condition that never completes is cut off by the timeout.
    let r = wait_for_async(std::future::pending::<bool>, Duration::from_millis(50)).await;
    assert!(r.is_err());
}

#[tokio::test]
async fn eventually_returns_what_the_check_found() {
    let mut n = 0;
    let found = eventually("the third try", Duration::from_secs(10), async || {
        n += 1;
        (n >= 3).then_some(n)
    })
    .await;
    assert_eq!(found, 3);
    eventually("a bool that holds", Duration::from_secs(10), async || true).await;
    let ok: u8 = eventually("an Ok", Duration::from_secs(10), async || {
        Ok::<u8, String>(7)
    })
    .await;
    assert_eq!(ok, 7);
}

#[tokio::test]
#[should_panic(expected = "the never-ready thing: still not so after 50ms")]
async fn eventually_panics_with_what_it_awaited() {
    eventually(
        "the never-ready thing",
        Duration::from_millis(50),
        async || false,
    )
    .await;
}

#[tokio::test]
#[should_panic(expected = "last seen: 2 of 3")]
async fn eventually_shows_the_last_error_seen() {
    eventually("three", Duration::from_millis(50), async || {
        Err::<(), _>("2 of 3")
    })
    .await;
}

#[tokio::test]
#[should_panic(expected = "last seen: the last check was still running")]
async fn eventually_cuts_off_a_check_that_hangs() {
    eventually("a hanging check", Duration::from_millis(50), async || {
        std::future::pending::<bool>().await
    })
    .await;
}

#[test]
fn eventually_blocking_returns_the_value_or_panics_with_what() {
    let mut n = 0;
    let found = eventually_blocking("the second try", Duration::from_secs(10), || {
        n += 1;
        (n == 2).then_some("two")
    });
    assert_eq!(found, "two");
    let panic = std::panic::catch_unwind(|| {
        eventually_blocking("never", Duration::from_millis(20), || false)
    })
    .expect_err("a check that never holds panics");
    let message = panic
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(
        message.starts_with("never: still not so after 20ms"),
        "{message}"
    );
}

/// This process's `<pid>:<start time>` marker, as the library computes it.
fn my_owner_marker() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let start = rest.split_whitespace().nth(19).unwrap();
    format!("{}:{start}", std::process::id())
}

#[test]
fn reap_orphans_kills_only_processes_of_dead_owners() {
    // A PID that certainly belongs to no live owner with that start time.
    let mut t = Command::new("true").spawn().unwrap();
    let dead = t.id();
    t.wait().unwrap();
    let dir = std::env::temp_dir().join(unique_name("kelp-test-orphan"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut orphan = Command::new("sleep")
        .arg("300")
        .env("KELP_TEST_OWNER", format!("{dead}:1"))
        .env("KELP_TEST_DIR", &dir)
        .spawn()
        .unwrap();
    let mut mine = Command::new("sleep")
        .arg("300")
        .env("KELP_TEST_OWNER", my_owner_marker())
        .spawn()
        .unwrap();
    // Let the children exec (their environ is readable from then on).
    eventually_blocking(
        "the orphan's environment shows its owner",
        Duration::from_secs(10),
        || {
            std::fs::read(format!("/proc/{}/environ", orphan.id()))
                .is_ok_and(|e| e.windows(15).any(|w| w == b"KELP_TEST_OWNER"))
        },
    );
    assert!(kelp_test_support::reap_orphans() >= 1);
    let status = orphan.wait().unwrap();
    assert!(!status.success(), "the orphan was killed");
    assert!(!dir.exists(), "the orphan's directory was removed");
    assert!(
        mine.try_wait().unwrap().is_none(),
        "a live owner's process was killed"
    );
    mine.kill().unwrap();
    mine.wait().unwrap();
}
