//! Registry authentication: `WWW-Authenticate` challenges, Basic credentials and Docker token
//! (Bearer) exchange.
//!
//! Tokens are cached per scope set. Credentials are only ever attached to requests for the
//! registry's own origin; the client strips them on redirects elsewhere (see `client.rs`).

use std::collections::BTreeMap;

use base64::Engine as _;
use resource_protocol::Secret;
use serde::Deserialize;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm="…"`.
    Basic,
    /// `Bearer realm="…",service="…",scope="…"`.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service` parameter to pass to the token endpoint.
        service: Option<String>,
        /// Scope the registry asked for, if it named one.
        scope: Option<String>,
    },
}

/// Parses one `WWW-Authenticate` header value; `None` for schemes we do not speak.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// Parses `key="quoted \"value\"", key2=token` into a map (keys lowercased).
fn parse_params(input: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            return params;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        params.insert(key, value);
    }
}

/// A user name and password.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password (or token used as a password).
    pub password: Secret,
}

impl Credentials {
    /// The `Authorization: Basic …` header value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password.expose());
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The token endpoint's answer (Docker token spec; `access_token` is the OAuth2 spelling).
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn into_token(self) -> Option<Secret> {
        self.token
            .or(self.access_token)
            .filter(|t| !t.is_empty())
            .map(Secret::new)
    }
}

/// The scope for pulling from `repository`.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The scope for pushing to (and pulling from) `repository`.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(header: &str, expect: Option<Challenge>) {
        assert_eq!(parse_challenge(header), expect, "{header}");
    }

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Option<Challenge> {
        Some(Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        })
    }

    #[test]
    fn parses_challenges() {
        check(r#"Basic realm="test""#, Some(Challenge::Basic));
        check(r#"basic realm="Registry Realm""#, Some(Challenge::Basic));
        check("Basic", Some(Challenge::Basic));
        check(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
            bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/ubuntu:pull"),
            ),
        );
        check(
            r#"Bearer realm="http://127.0.0.1:1/token", service="s", scope="repository:a:pull,push""#,
            bearer(
                "http://127.0.0.1:1/token",
                Some("s"),
                Some("repository:a:pull,push"),
            ),
        );
        check(
            r#"Bearer realm=https://ghcr.io/token,service=ghcr.io"#,
            bearer("https://ghcr.io/token", Some("ghcr.io"), None),
        );
        check(r#"Bearer realm="a\"b""#, bearer("a\"b", None, None));
        check(r#"Bearer service="x""#, None);
        check("Negotiate abc", None);
        check("", None);
    }

    #[test]
    fn basic_header_encodes() {
        let c = Credentials {
            username: "user".into(),
            password: Secret::new("pass"),
        };
        assert_eq!(c.basic_header(), "Basic dXNlcjpwYXNz");
        assert!(!format!("{c:?}").contains("pass\""));
    }
}
