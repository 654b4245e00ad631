//! The system's CA roots, shared by Lift's own https clients (the JWKS fetcher and the
//! threat webhook).
//!
//! They are read from disk once per process, and only when an https client first needs them:
//! a function that never fetches over https never pays for it, and one that does pays once.
//! Reading them is a cold-start cost worth avoiding: on a Debian-like host
//! `rustls-native-certs` opens the bundle and then every file of `/etc/ssl/certs` (about 290),
//! milliseconds of CPU that a Lambda sandbox's share of a vCPU stretches further.

use std::sync::{Arc, LazyLock};

use rustls::pki_types::CertificateDer;

static NATIVE: LazyLock<Vec<CertificateDer<'static>>> = LazyLock::new(|| {
    let loaded = rustls_native_certs::load_native_certs();
    for err in &loaded.errors {
        // Unreadable system certificates are skipped: the rest (or the extra roots a client
        // adds) may be all that is needed.
        tracing::debug!(error = %err, "a system CA certificate was skipped");
    }
    loaded.certs
});

/// A root store with the system's CA roots (read on the first call) and `extra`.
pub(crate) fn roots(
    native: bool,
    extra: &[CertificateDer<'static>],
) -> Result<rustls::RootCertStore, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    if native {
        roots.add_parsable_certificates(NATIVE.iter().cloned());
    }
    for cert in extra {
        roots.add(cert.clone())?;
    }
    Ok(roots)
}

/// A client configuration over `roots`, with ring named explicitly: with several rustls
/// providers in the dependency graph there is no process default to fall back on.
pub(crate) fn client_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_roots_are_read_once_and_extra_roots_are_added() {
        let none = roots(false, &[]).unwrap();
        assert!(none.is_empty());
        let native = roots(true, &[]).unwrap();
        let again = roots(true, &[]).unwrap();
        assert_eq!(native.len(), again.len());
        let cert = rcgen::generate_simple_self_signed(vec!["example.test".to_owned()]).unwrap();
        let extra = roots(false, &[cert.cert.der().clone()]).unwrap();
        assert_eq!(extra.len(), 1);
        assert!(roots(false, &[CertificateDer::from(vec![1, 2, 3])]).is_err());
        assert!(client_config(native).is_ok());
    }
}
