//! TLS for the HTTP client of queries and SSE streams: the platform's root certificates, loaded
//! once per process. Loading them parses the system's whole CA bundle (about 50 ms in a debug
//! build), which each client creation paid twice (the query source and the SSE source) before.

use std::sync::{Arc, OnceLock};

static HTTP_TLS: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();

/// The rustls configuration reqwest would build for itself (the platform verifier, aws-lc-rs),
/// shared by every client of the process. `Err` when the system has no usable root
/// certificates: the HTTP client cannot be built (queries reject, SSE streams report it).
pub(crate) fn http_tls() -> Result<rustls::ClientConfig, String> {
    HTTP_TLS
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).map_err(|e| format!("TLS root certificates: {e}"))?;
            Ok(rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS configuration: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth())
        })
        .clone()
}
