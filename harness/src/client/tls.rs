//! How https targets are trusted: the platform's roots (`SSL_CERT_FILE` and
//! `SSL_CERT_DIR` honoured, as curl and OpenSSL do), webpki's, the CAs given with
//! `--ca-cert`, or nothing checked at all with `--insecure`. One rustls
//! configuration serves both HTTP clients; a failed handshake is named as TLS.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The TLS flags (`--ca-cert`, `--insecure`); the configuration is built once.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM files of CAs (or self-signed certificates) to trust besides the platform's.
    pub ca_certs: Vec<PathBuf>,
    /// Accept any certificate (the connection is encrypted, the server unverified).
    pub insecure: bool,
    built: Arc<OnceLock<Result<Arc<ClientConfig>, String>>>,
}

impl TlsOptions {
    pub fn new(ca_certs: Vec<PathBuf>, insecure: bool) -> TlsOptions {
        TlsOptions { ca_certs, insecure, built: Arc::default() }
    }

    /// The client configuration (HTTP/1.1 by ALPN), or what is wrong with a `--ca-cert`.
    pub fn config(&self) -> Result<Arc<ClientConfig>, String> {
        self.built.get_or_init(|| self.build().map(Arc::new)).clone()
    }

    fn build(&self) -> Result<ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?;
        let mut config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        } else {
            builder.with_root_certificates(self.roots()?).with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    fn roots(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // Unreadable platform certificates are skipped, as curl does; the
        // handshake says so if the one needed was among them.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        for path in &self.ca_certs {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--ca-cert {}: cannot read it: {e}", path.display()))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--ca-cert {}: not a PEM certificate file: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!(
                    "--ca-cert {}: no certificate in it (expected PEM, -----BEGIN CERTIFICATE-----)",
                    path.display()
                ));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| format!("--ca-cert {}: {e}", path.display()))?;
            }
        }
        Ok(roots)
    }
}

/// `--insecure`: every certificate is accepted; signatures are still checked so
/// the handshake itself is sound.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls error anywhere in `e`'s source chain: the handshake's own words.
pub(crate) fn tls_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if let Some(t) = io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
                return Some(t.to_string());
            }
        }
        source = s.source();
    }
    None
}

/// What to do about a failed handshake, in words.
pub fn advice(cause: &str) -> &'static str {
    if cause.contains("certificate") {
        "the server's certificate is not trusted here: pass --ca-cert FILE (its CA, or the self-signed \
         certificate itself, PEM), or point SSL_CERT_FILE at it, or use --insecure to skip verification \
         (encrypted, but any server is believed)"
    } else if cause.contains("corrupt message") || cause.contains("InvalidContentType") {
        "the port did not answer in TLS: is it an http:// port?"
    } else {
        "check that the target speaks TLS 1.2 or 1.3 on that port"
    }
}
