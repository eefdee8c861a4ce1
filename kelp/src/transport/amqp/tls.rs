//! TLS for `amqps://` with rustls: a CA file or the system's roots, an
//! optional client certificate (for EXTERNAL login), and server name
//! verification — configured from the URL's `ssl_*` options as Kombu does
//! (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`,
//! `ssl_check_hostname`, `ssl_server_hostname`).

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::crypto::{CryptoProvider, ring};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::url::BrokerUrl;
use crate::error::{Error, ErrorKind, Result};

pub(crate) type TlsStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Where Debian, Ubuntu, Fedora and Alpine keep the system's trusted roots.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

fn tls_config_error(message: String) -> Error {
    Error::config(message)
}

fn option<'a>(url: &'a BrokerUrl, key: &str) -> Option<&'a str> {
    url.ssl_options()
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn load_certs(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: std::result::Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls_config_error(format!("cannot read the {what} '{path}': {e}")))?
        .collect();
    let certs = certs.map_err(|e| tls_config_error(format!("cannot parse the {what} '{path}': {e}")))?;
    if certs.is_empty() {
        return Err(tls_config_error(format!("the {what} '{path}' holds no PEM certificate")));
    }
    Ok(certs)
}

fn roots(url: &BrokerUrl) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    let (certs, source) = match option(url, "ca_certs") {
        Some(path) => (load_certs(path, "CA file")?, path.to_owned()),
        None => {
            let bundle = SYSTEM_BUNDLES
                .iter()
                .find(|p| std::path::Path::new(p).exists())
                .ok_or_else(|| {
                    tls_config_error(
                        "no CA file given (ssl_ca_certs=...) and no system certificate bundle found".into(),
                    )
                })?;
            (load_certs(bundle, "system certificate bundle")?, (*bundle).to_owned())
        }
    };
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(tls_config_error(format!("no usable CA certificate in '{source}'")));
    }
    Ok(store)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Build the client configuration the URL asks for.
fn config(url: &BrokerUrl) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_config_error(format!("TLS set-up failed: {e}")))?;
    let verify = option(url, "cert_reqs").unwrap_or("required");
    let check_hostname = option(url, "check_hostname") != Some("false");
    let builder = if verify == "none" {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(url)?), provider())
            .build()
            .map_err(|e| tls_config_error(format!("TLS verifier set-up failed: {e}")))?;
        if check_hostname {
            builder.with_webpki_verifier(verifier)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
        }
    };
    let config = match (option(url, "certfile"), option(url, "keyfile")) {
        (Some(cert), Some(key)) => {
            let certs = load_certs(cert, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| tls_config_error(format!("cannot read the client key '{key}': {e}")))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| tls_config_error(format!("the client certificate and key do not match: {e}")))?
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(tls_config_error(
                "a client certificate needs both ssl_certfile and ssl_keyfile".into(),
            ));
        }
        (None, None) => builder.with_no_client_auth(),
    };
    Ok(config)
}

/// TLS handshake over `tcp`; a certificate that does not verify is a clear
/// error naming the broker and the reason.
pub(crate) async fn connect(tcp: TcpStream, url: &BrokerUrl) -> Result<TlsStream> {
    let config = config(url)?;
    let name = option(url, "server_hostname").unwrap_or(url.host()).to_owned();
    let server_name = ServerName::try_from(name.clone())
        .map_err(|e| tls_config_error(format!("'{name}' is not a valid TLS server name: {e}")))?;
    TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|e| {
            let reason = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .map_or_else(|| e.to_string(), ToString::to_string);
            Error::new(
                ErrorKind::Connection,
                format!("TLS handshake with {url} failed: {reason}"),
            )
        })
}

/// `ssl_cert_reqs=none`: accept any certificate (as Kombu's CERT_NONE). Only
/// for tests and trusted networks.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `ssl_check_hostname=false`: verify the chain, accept any name.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
