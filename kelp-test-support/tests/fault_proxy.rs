//! FaultProxy self-tests against small local servers (echo and sink).
//!
//! No wall-clock assertions: timeouts only guard against hanging, except where
//! a test checks that *nothing* arrives (black hole, frozen peer), which can
//! only be observed as a read that times out.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kelp_test_support::{FaultMode, FaultProxy, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(20);
/// How long "nothing arrives" is watched for.
const SILENCE: Duration = Duration::from_millis(700);

/// An echo server; returns its address.
async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

/// A server that reads and counts bytes, never answers; `closed` is set when
/// a connection ends (EOF or error).
struct Sink {
    addr: SocketAddr,
    received: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
}

async fn sink_server() -> Sink {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicBool::new(false));
    let (r2, c2) = (received.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (r3, c3) = (r2.clone(), c2.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            r3.fetch_add(n, Ordering::SeqCst);
                        }
                    }
                }
                c3.store(true, Ordering::SeqCst);
            });
        }
    });
    Sink {
        addr,
        received,
        closed,
    }
}

async fn roundtrip(s: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    let mut buf = vec![0u8; msg.len()];
    timeout(GUARD, s.read_exact(&mut buf))
        .await
        .map_err(|_| io::Error::other("read timed out"))??;
    Ok(buf)
}

/// Reads until the connection fails or ends; returns what happened.
async fn read_until_closed(s: &mut TcpStream) -> io::Result<usize> {
    let mut buf = [0u8; 1024];
    let mut total = 0;
    loop {
        match timeout(GUARD, s.read(&mut buf)).await {
            Err(_) => return Err(io::Error::other("connection neither closed nor reset")),
            Ok(Ok(0)) => return Ok(total),
            Ok(Ok(n)) => total += n,
            Ok(Err(e)) => return Err(e),
        }
    }
}

fn is_reset_or_eof(r: &io::Result<usize>) -> bool {
    match r {
        Ok(_) => true, // EOF
        Err(e) => matches!(
            e.kind(),
            io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        ),
    }
}

/// Connects and reads until the connection ends. A reset that arrives
/// before the (non-blocking) connect has been confirmed makes `connect`
/// itself fail with ECONNRESET, which counts as a reset too.
async fn connect_and_read_until_closed(addr: SocketAddr) -> io::Result<usize> {
    let mut s = TcpStream::connect(addr).await?;
    read_until_closed(&mut s).await
}

async fn wait_count(p: &FaultProxy, n: usize) {
    eventually(&format!("{n} open connections"), GUARD, async || {
        match p.connections() {
            have if have == n => Ok(()),
            have => Err(format!("{have} open connections")),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pass_through_echo_and_counts() {
    let up = echo_server().await;
    let p = FaultProxy::start(up).await.unwrap();
    assert_eq!(p.mode(), FaultMode::Pass);
    let mut a = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut a, b"hello").await.unwrap(), b"hello");
    let mut b = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut b, b"world").await.unwrap(), b"world");
    wait_count(&p, 2).await;
    assert_eq!(p.total_connections(), 2);

    // 4 MiB through the proxy and back, written and read concurrently:
    // exercises partial writes and backpressure.
    let data: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = a.into_split();
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w
    });
    let mut got = vec![0u8; expected.len()];
    timeout(GUARD, r.read_exact(&mut got))
        .await
        .expect("bulk echo timed out")
        .unwrap();
    assert!(got == expected, "bulk data corrupted");
    let w = writer.await.unwrap();

    // Half-close propagates: shutting down our write side ends the echo.
    let mut a = r.reunite(w).unwrap();
    a.shutdown().await.unwrap();
    assert_eq!(read_until_closed(&mut a).await.unwrap(), 0);
    drop(a);
    drop(b);
    wait_count(&p, 0).await;
    assert_eq!(p.total_connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mode_resets_existing_and_new_connections() {
    let up = echo_server().await;
    let p = FaultProxy::start(up).await.unwrap();
    let mut a = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut a, b"ping").await.unwrap(), b"ping");

    p.set_mode(FaultMode::Reset).await;
    let r = read_until_closed(&mut a).await;
    assert!(
        is_reset_or_eof(&r),
        "existing connection: expected reset/EOF, got {r:?}"
    );
    assert!(
        matches!(&r, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
        "SO_LINGER 0 should give a reset, got {r:?}"
    );
    wait_count(&p, 0).await;

    // New connections are accepted, then reset.
    let r = connect_and_read_until_closed(p.addr()).await;
    assert!(
        is_reset_or_eof(&r),
        "new connection: expected reset/EOF, got {r:?}"
    );

    p.set_mode(FaultMode::Pass).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"back").await.unwrap(), b"back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn black_hole_withholds_then_pass_resumes() {
    let up = echo_server().await;
    let p = FaultProxy::start(up).await.unwrap();
    let mut a = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut a, b"before").await.unwrap(), b"before");

    p.set_mode(FaultMode::BlackHole).await;
    a.write_all(b"held").await.unwrap();
    let mut buf = [0u8; 4];
    assert!(
        timeout(SILENCE, a.read_exact(&mut buf)).await.is_err(),
        "data flowed through a black hole"
    );
    // The socket is still open: writing still works and no EOF/reset arrived.
    a.write_all(b"more").await.unwrap();
    assert_eq!(p.connections(), 1);

    // A new connection is accepted but nothing flows.
    let mut b = TcpStream::connect(p.addr()).await.unwrap();
    b.write_all(b"new!").await.unwrap();
    let mut buf2 = [0u8; 4];
    assert!(
        timeout(SILENCE, b.read_exact(&mut buf2)).await.is_err(),
        "new connection got data in black hole"
    );
    wait_count(&p, 2).await;

    p.set_mode(FaultMode::Pass).await;
    // Withheld data is delivered, intact and in order.
    let mut got = [0u8; 8];
    timeout(GUARD, a.read_exact(&mut got))
        .await
        .expect("withheld data not delivered")
        .unwrap();
    assert_eq!(&got, b"heldmore");
    timeout(GUARD, b.read_exact(&mut buf2))
        .await
        .expect("withheld data not delivered")
        .unwrap();
    assert_eq!(&buf2, b"new!");
    // And new connections work.
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"after").await.unwrap(), b"after");
    assert_eq!(p.total_connections(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_delivers_intact_and_in_order() {
    let up = echo_server().await;
    let p = FaultProxy::start(up).await.unwrap();
    let mut a = TcpStream::connect(p.addr()).await.unwrap();
    p.set_mode(FaultMode::Delay(Duration::from_millis(100)))
        .await;
    assert_eq!(p.mode(), FaultMode::Delay(Duration::from_millis(100)));
    // Many small writes plus a large one.
    let mut expected = Vec::new();
    for i in 0..50u32 {
        let msg = format!("msg-{i};");
        a.write_all(msg.as_bytes()).await.unwrap();
        expected.extend_from_slice(msg.as_bytes());
    }
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    expected.extend_from_slice(&big);
    let (mut r, mut w) = a.into_split();
    let writer = tokio::spawn(async move { w.write_all(&big).await.map(|_| w) });
    let mut got = vec![0u8; expected.len()];
    timeout(GUARD, r.read_exact(&mut got))
        .await
        .expect("delayed data not delivered")
        .unwrap();
    assert!(got == expected, "delayed data corrupted or reordered");
    writer.await.unwrap().unwrap();
    // Extreme settings must not break the proxy's tasks (no overflow panics).
    p.set_mode(FaultMode::CloseAfter(u64::MAX)).await;
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut c, b"max").await.unwrap(), b"max");
    p.set_mode(FaultMode::Delay(Duration::MAX)).await;
    c.write_all(b"never").await.unwrap();
    let mut never = [0u8; 5];
    assert!(timeout(SILENCE, c.read_exact(&mut never)).await.is_err());
    p.set_mode(FaultMode::Delay(Duration::from_millis(100)))
        .await;
    timeout(GUARD, c.read_exact(&mut never))
        .await
        .expect("held data after Delay(MAX)")
        .unwrap();
    assert_eq!(&never, b"never");
    // A new connection under Delay works too.
    let mut b = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut b, b"slow").await.unwrap(), b"slow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_truncates_at_byte_count() {
    let sink = sink_server().await;
    let p = FaultProxy::start(sink.addr).await.unwrap();

    // New connection: exactly 300 bytes reach the server, then both sides close.
    p.set_mode(FaultMode::CloseAfter(300)).await;
    let mut a = TcpStream::connect(p.addr()).await.unwrap();
    a.write_all(&[7u8; 1000]).await.unwrap();
    let r = read_until_closed(&mut a).await;
    assert!(
        is_reset_or_eof(&r),
        "expected the connection to close, got {r:?}"
    );
    eventually("the server side closed", GUARD, async || {
        sink.closed.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(sink.received.load(Ordering::SeqCst), 300);
    wait_count(&p, 0).await;

    // Existing connection: counting starts when the mode is set.
    p.set_mode(FaultMode::Pass).await;
    sink.closed.store(false, Ordering::SeqCst);
    let mut b = TcpStream::connect(p.addr()).await.unwrap();
    b.write_all(&[1u8; 100]).await.unwrap();
    eventually("400 bytes passed through", GUARD, async || {
        sink.received.load(Ordering::SeqCst) == 400
    })
    .await;
    p.set_mode(FaultMode::CloseAfter(50)).await;
    b.write_all(&[2u8; 500]).await.unwrap();
    let r = read_until_closed(&mut b).await;
    assert!(
        is_reset_or_eof(&r),
        "expected the connection to close, got {r:?}"
    );
    eventually("the server side closed", GUARD, async || {
        sink.closed.load(Ordering::SeqCst)
    })
    .await;
    assert_eq!(sink.received.load(Ordering::SeqCst), 450);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_after_counts_both_directions() {
    let up = echo_server().await;
    let p = FaultProxy::start(up).await.unwrap();
    p.set_mode(FaultMode::CloseAfter(10)).await;
    let mut a = TcpStream::connect(p.addr()).await.unwrap();
    // 4 bytes out + 4 back = 8 of 10.
    assert_eq!(roundtrip(&mut a, b"abcd").await.unwrap(), b"abcd");
    // 2 more bytes forwarded to the server, then the connection is closed.
    a.write_all(b"efgh").await.unwrap();
    let r = read_until_closed(&mut a).await;
    assert!(
        is_reset_or_eof(&r),
        "expected the connection to close, got {r:?}"
    );
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "no echo may come back after the budget: {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuse_closes_listener_and_pass_reopens_same_port() {
    let up = echo_server().await;
    let p = FaultProxy::start(up).await.unwrap();
    let addr = p.addr();
    let mut a = TcpStream::connect(addr).await.unwrap();
    assert_eq!(roundtrip(&mut a, b"x").await.unwrap(), b"x");

    p.set_mode(FaultMode::Refuse).await;
    let r = read_until_closed(&mut a).await;
    assert!(
        is_reset_or_eof(&r),
        "existing connection: expected reset/EOF, got {r:?}"
    );
    let e = TcpStream::connect(addr)
        .await
        .expect_err("connect succeeded while refusing");
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    wait_count(&p, 0).await;

    p.set_mode(FaultMode::Pass).await;
    assert_eq!(p.addr(), addr);
    let mut b = TcpStream::connect(addr).await.unwrap();
    assert_eq!(roundtrip(&mut b, b"again").await.unwrap(), b"again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_resets_client_and_drop_releases_port() {
    // Nothing listens upstream.
    let dead = SocketAddr::from(([127, 0, 0, 1], kelp_test_support::free_port()));
    let p = FaultProxy::start(dead).await.unwrap();
    let r = connect_and_read_until_closed(p.addr()).await;
    assert!(is_reset_or_eof(&r), "expected reset/EOF, got {r:?}");

    // Dropping the proxy closes its connections and its port.
    let up = echo_server().await;
    let p = FaultProxy::start(up).await.unwrap();
    let addr = p.addr();
    let mut b = TcpStream::connect(addr).await.unwrap();
    assert_eq!(roundtrip(&mut b, b"y").await.unwrap(), b"y");
    drop(p);
    let r = read_until_closed(&mut b).await;
    assert!(is_reset_or_eof(&r), "expected EOF after drop, got {r:?}");
    eventually(
        "the port refuses connections after the drop",
        GUARD,
        async || TcpStream::connect(addr).await.is_err(),
    )
    .await;
}

/// The proxy also works on a current-thread runtime (the default of
/// `#[tokio::test]`): `set_mode` yields while waiting for the tasks.
#[tokio::test]
async fn works_on_current_thread_runtime() {
    let up = echo_server().await;
    let p = FaultProxy::start(up).await.unwrap();
    let mut a = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut a, b"one").await.unwrap(), b"one");
    p.set_mode(FaultMode::BlackHole).await;
    a.write_all(b"two").await.unwrap();
    let mut buf = [0u8; 3];
    assert!(timeout(SILENCE, a.read_exact(&mut buf)).await.is_err());
    p.set_mode(FaultMode::Reset).await;
    let r = read_until_closed(&mut a).await;
    assert!(is_reset_or_eof(&r), "{r:?}");
    p.set_mode(FaultMode::Pass).await;
    let mut b = TcpStream::connect(p.addr()).await.unwrap();
    assert_eq!(roundtrip(&mut b, b"three").await.unwrap(), b"three");
}
