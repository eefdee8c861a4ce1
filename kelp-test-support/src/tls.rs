//! Test certificates (made with the `openssl` command line tool) and an AMQPS
//! probe.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::procs;
use crate::error::{Error, Result};

/// The password of [`TestPki::client_p12`].
pub const CLIENT_P12_PASSWORD: &str = "kelp-test";

/// Paths of a generated test PKI (all PEM unless noted; keys are unencrypted
/// PKCS#8).
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The directory holding everything.
    pub dir: PathBuf,
    /// The CA certificate (`CN=kelp test CA`); trust this in clients, and use
    /// it as the server's `cacertfile` to verify client certificates.
    pub ca_cert: PathBuf,
    /// The CA key.
    pub ca_key: PathBuf,
    /// The server certificate: `CN=localhost`, SANs `DNS:localhost`,
    /// `IP:127.0.0.1`, `IP:::1`; extended key usage serverAuth.
    pub server_cert: PathBuf,
    /// The server key.
    pub server_key: PathBuf,
    /// The client certificate: `CN=kelp-test-client`; extended key usage
    /// clientAuth.
    pub client_cert: PathBuf,
    /// The client key.
    pub client_key: PathBuf,
    /// The client certificate, key and CA as PKCS#12 (DER), password
    /// [`CLIENT_P12_PASSWORD`] (for native-tls style clients).
    pub client_p12: PathBuf,
}

/// Whether the `openssl` command line tool can be run.
pub fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(dir);
    let out = procs::run_with_timeout(cmd, dir, Duration::from_secs(120)).map_err(|e| {
        Error::new(format!(
            "{e} (the openssl command line tool is needed; Debian: apt-get install openssl)"
        ))
    })?;
    match out.status {
        Some(s) if s.success() => Ok(()),
        s => Err(Error::new(format!(
            "openssl {} failed ({s:?}):\n{}{}",
            args.join(" "),
            out.stdout,
            out.stderr
        ))),
    }
}

/// Creates, in `dir` (created if missing), a CA, a server certificate for
/// `localhost` / `127.0.0.1` / `::1` and a client certificate, all signed by
/// the CA, valid from now for ~2 years (RSA 2048, SHA-256). Uses the `openssl`
/// command line tool; takes about a second.
pub fn generate_test_pki(dir: &Path) -> Result<TestPki> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
    let dir =
        std::fs::canonicalize(dir).map_err(|e| Error::new(format!("{}: {e}", dir.display())))?;
    let p = |n: &str| dir.join(n);
    let pki = TestPki {
        dir: dir.clone(),
        ca_cert: p("ca.crt"),
        ca_key: p("ca.key"),
        server_cert: p("server.crt"),
        server_key: p("server.key"),
        client_cert: p("client.crt"),
        client_key: p("client.key"),
        client_p12: p("client.p12"),
    };
    procs::write_file(
        &p("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\n",
    )?;
    procs::write_file(
        &p("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n",
    )?;
    procs::write_file(
        &p("client.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n",
    )?;
    // CA: a CSR self-signed with the CA extensions.
    openssl(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.csr",
            "-subj",
            "/CN=kelp test CA",
        ],
    )?;
    openssl(
        &dir,
        &[
            "x509", "-req", "-in", "ca.csr", "-signkey", "ca.key", "-sha256", "-days", "3650",
            "-extfile", "ca.ext", "-out", "ca.crt",
        ],
    )?;
    for (name, cn) in [("server", "localhost"), ("client", "kelp-test-client")] {
        let subj = format!("/CN={cn}");
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        openssl(
            &dir,
            &[
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr,
                "-subj", &subj,
            ],
        )?;
        // Distinct serials per certificate (and per run).
        let serial = format!(
            "0x{:x}{}",
            crate::names::nanos_now() & 0xffff_ffff_ffff,
            if name == "server" { 1 } else { 2 }
        );
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial,
                "-sha256",
                "-days",
                "825",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ],
        )?;
    }
    let pass = format!("pass:{CLIENT_P12_PASSWORD}");
    openssl(
        &dir,
        &[
            "pkcs12",
            "-export",
            "-out",
            "client.p12",
            "-inkey",
            "client.key",
            "-in",
            "client.crt",
            "-certfile",
            "ca.crt",
            "-passout",
            &pass,
        ],
    )?;
    Ok(pki)
}

/// Connects to `127.0.0.1:<port>` with `openssl s_client` (verifying the
/// server certificate against `ca_cert` and the host name `localhost`,
/// presenting `client` = (cert, key) if given), sends the AMQP 0-9-1 protocol
/// header through TLS and waits (at most `timeout`) for the broker's
/// `connection.start` (recognised by its `PLAIN` mechanism list). Ok means a
/// TLS session was established and AMQP spoken over it.
pub fn probe_amqps(
    port: u16,
    ca_cert: &Path,
    client: Option<(&Path, &Path)>,
    timeout: Duration,
) -> Result<()> {
    let connect = format!("127.0.0.1:{port}");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &connect,
        "-servername",
        "localhost",
        "-verify_hostname",
        "localhost",
        "-verify_return_error",
        "-quiet",
        "-CAfile",
    ])
    .arg(ca_cert);
    if let Some((cert, key)) = client {
        cmd.arg("-cert").arg(cert).arg("-key").arg(key);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::new(format!("cannot run openssl s_client: {e}")))?;
    // Kept open until the end, so that s_client does not close the session
    // on EOF before the answer arrives.
    let mut stdin = child.stdin.take();
    if let Some(w) = stdin.as_mut() {
        let _ = w.write_all(b"AMQP\x00\x00\x09\x01");
        let _ = w.flush();
    }
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut got = Vec::new();
    let ok = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break false;
        }
        match rx.recv_timeout(left) {
            Ok(chunk) => {
                got.extend_from_slice(&chunk);
                if got.len() >= 11
                    && got[0] == 1
                    && got[7..11] == [0, 10, 0, 10]
                    && contains(&got, b"PLAIN")
                {
                    break true;
                }
            }
            Err(_) => break false, // timeout or EOF
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    drop(stdin);
    let _ = reader.join();
    let err = err_reader.join().unwrap_or_default();
    if ok {
        Ok(())
    } else {
        Err(Error::new(format!(
            "no AMQP connection.start over TLS from 127.0.0.1:{port} (got {} bytes); openssl s_client said:\n{}",
            got.len(),
            err.trim_end()
        )))
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
