//! `http-tls`: the TLS trust settings our HTTP clients take from a resource's `source`.
//!
//! `ca_certs` (PEM strings, each possibly a bundle) means the same in registry-image,
//! registry-tag and nix-cache, so it is parsed in one place: every entry must hold at least one
//! certificate, and an error names the entry's index. Callers prefix the field path they own
//! (`source.`) when they report it.

/// A `ca_certs` entry that holds no usable certificate.
#[derive(Debug, thiserror::Error)]
#[error("ca_certs[{index}]: {reason}")]
pub struct CaCertError {
    /// Which entry of `ca_certs`.
    pub index: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Adds every certificate of `ca_certs` to the roots `builder` trusts (besides the system ones).
pub fn trust_ca_certs(
    mut builder: reqwest::ClientBuilder,
    ca_certs: &[String],
) -> Result<reqwest::ClientBuilder, CaCertError> {
    for (index, pem) in ca_certs.iter().enumerate() {
        let certs =
            reqwest::Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| CaCertError {
                index,
                reason: error_chain(&e),
            })?;
        if certs.is_empty() {
            return Err(CaCertError {
                index,
                reason: "no PEM certificate found".to_owned(),
            });
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

/// Whether `err` (or one of its causes) is a certificate failure: a connect error that retrying
/// cannot fix. rustls is not a direct dependency, so its errors are recognised by their message.
pub fn is_certificate_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.to_string().to_lowercase().contains("certificate") {
            return true;
        }
        cause = e.source();
    }
    false
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cause = err.source();
    while let Some(e) = cause {
        parts.push(e.to_string());
        cause = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_without_certificates_are_named() {
        let cases = [
            (vec![], None),
            (
                vec!["not a pem".to_owned()],
                Some("ca_certs[0]: no PEM certificate found"),
            ),
            (
                vec![String::new(), "x".to_owned()],
                Some("ca_certs[0]: no PEM certificate found"),
            ),
            (
                vec![
                    "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
                        .to_owned(),
                ],
                Some("ca_certs[0]: "),
            ),
        ];
        for (certs, expected) in cases {
            let result = trust_ca_certs(reqwest::Client::builder(), &certs);
            match (result, expected) {
                (Ok(_), None) => {}
                (Err(err), Some(expected)) => {
                    assert!(err.to_string().starts_with(expected), "{certs:?}: {err}")
                }
                (Ok(_), Some(expected)) => panic!("{certs:?} accepted; expected {expected}"),
                (Err(err), None) => panic!("{certs:?} rejected: {err}"),
            }
        }
    }

    #[test]
    fn certificate_errors_are_found_in_the_chain() {
        let inner = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let outer = std::io::Error::other(inner);
        assert!(is_certificate_error(&outer));
        assert!(!is_certificate_error(&std::io::Error::other(
            "connection refused"
        )));
    }
}
