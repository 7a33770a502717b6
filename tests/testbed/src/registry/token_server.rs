//! A token server per the Docker registry token spec, for the registry's Bearer mode.
//!
//! `GET /token?service=…&scope=…` (scopes may repeat) and the OAuth2 form `POST /token`
//! (`grant_type=password` or `refresh_token`) answer `{"token", "access_token", "expires_in",
//! "issued_at"}`, plus `refresh_token` when authenticated clients ask for one
//! (`offline_token=true`, `access_type=offline`).
//! Anonymous requests get only the `pull` actions they ask for; valid Basic credentials get
//! everything they ask for; wrong credentials get 401. Tokens are RS256 JWTs whose header carries
//! the signing certificate in `x5c`, which the registry checks against its `rootcertbundle`.
//! Runs in-process on its own thread and tokio runtime; stops when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::http_fixture::HttpFixture;
use crate::tools::{require, run};

/// How long issued tokens are valid, in seconds.
pub const TOKEN_LIFETIME_SECS: u64 = 300;

/// One request the token server answered, for tests that check what a client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The user from the Basic credentials (or the password grant), if any.
    pub user: Option<String>,
    /// The `scope` values asked for, in order.
    pub scopes: Vec<String>,
    /// Whether the credentials were accepted (anonymous requests count as accepted).
    pub granted: bool,
}

/// The running token server; stops when dropped.
pub struct TokenServer {
    server: HttpFixture,
    state: Arc<Issuer>,
    root_cert: PathBuf,
}

/// What the handlers share: the signing key and the accepted credentials.
struct Issuer {
    key: ring::signature::RsaKeyPair,
    cert_der_base64: String,
    service: String,
    issuer: String,
    user: String,
    pass: String,
    requests: Mutex<Vec<TokenRequest>>,
    serial: AtomicU64,
}

impl TokenServer {
    /// Starts serving tokens for `service` as `issuer`, accepting `user`/`pass`. The RSA signing
    /// key and its self-signed certificate ([`TokenServer::root_cert_path`], the registry's
    /// `rootcertbundle`) are made once per machine.
    pub fn start(service: &str, issuer: &str, user: &str, pass: &str) -> TokenServer {
        let keys = crate::tools::machine_cache("token-signing-key-v1", generate_signing_key);
        let pkcs8 = std::fs::read(keys.join("token.pk8")).expect("read token key");
        let cert_der = std::fs::read(keys.join("token.der")).expect("read token certificate");
        let key = ring::signature::RsaKeyPair::from_pkcs8(&pkcs8).expect("parse token key");
        let state = Arc::new(Issuer {
            key,
            cert_der_base64: STANDARD.encode(cert_der),
            service: service.to_owned(),
            issuer: issuer.to_owned(),
            user: user.to_owned(),
            pass: pass.to_owned(),
            requests: Mutex::new(Vec::new()),
            serial: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/token", get(token_get).post(token_post))
            .with_state(Arc::clone(&state));
        let server = HttpFixture::serve("token-server", app);
        TokenServer {
            server,
            state,
            root_cert: keys.join("token.crt"),
        }
    }

    /// The PEM certificate of the signing key: the registry's `rootcertbundle`.
    pub fn root_cert_path(&self) -> &Path {
        &self.root_cert
    }

    /// The token endpoint, the registry's `realm`: `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("{}/token", self.server.url())
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state
            .requests
            .lock()
            .map(|requests| requests.clone())
            .unwrap_or_default()
    }
}

/// Writes an RSA 2048 key (`token.pk8`, PKCS#8 DER) and its self-signed certificate
/// (`token.crt` PEM, `token.der` DER) into `dir`.
fn generate_signing_key(dir: &Path) {
    let openssl = require("openssl", "openssl");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-nodes",
            "-newkey",
            "rsa:2048",
            "-days",
            "3650",
            "-subj",
            "/CN=testbed token issuer",
            "-keyout",
            "token.key",
            "-out",
            "token.crt",
        ],
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "token.key",
            "-outform",
            "DER",
            "-out",
            "token.pk8",
        ],
        &[
            "x509",
            "-in",
            "token.crt",
            "-outform",
            "DER",
            "-out",
            "token.der",
        ],
    ];
    for args in steps {
        run(&openssl, args, dir);
    }
}

/// `GET /token`: credentials (optional) in a Basic `Authorization` header.
async fn token_get(
    State(issuer): State<Arc<Issuer>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = parse_form(query.as_deref().unwrap_or(""));
    let credentials = basic_credentials(&headers);
    issuer.answer(credentials, &params)
}

/// `POST /token`: the OAuth2 password grant (`grant_type=password&username=…&password=…`).
async fn token_post(State(issuer): State<Arc<Issuer>>, body: String) -> Response {
    let params = parse_form(&body);
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let credentials = match param("grant_type").as_deref() {
        Some("password") => param("username").zip(param("password")),
        Some("refresh_token") => {
            if param("refresh_token").as_deref() != Some(issuer.refresh_token().as_str()) {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "invalid refresh token",
                );
            }
            Some((issuer.user.clone(), issuer.pass.clone()))
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                "unsupported grant_type",
            );
        }
    };
    issuer.answer(credentials, &params)
}

impl Issuer {
    /// The one refresh token this server issues (to the accepted user) and accepts.
    fn refresh_token(&self) -> String {
        format!("testbed-refresh-{}", self.user)
    }

    /// Checks the credentials, records the request and answers with a token (or 401).
    fn answer(
        &self,
        credentials: Option<(String, String)>,
        params: &[(String, String)],
    ) -> Response {
        let scopes: Vec<String> = params
            .iter()
            .filter(|(key, _)| key == "scope")
            .flat_map(|(_, value)| value.split(' ').map(str::to_owned))
            .filter(|scope| !scope.is_empty())
            .collect();
        let authenticated = match &credentials {
            None => false,
            Some((user, pass)) if *user == self.user && *pass == self.pass => true,
            Some(_) => {
                self.record(credentials.as_ref(), &scopes, false);
                return error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required",
                );
            }
        };
        self.record(credentials.as_ref(), &scopes, true);
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|scope| grant(scope, authenticated))
            .collect();
        let subject = credentials.map(|(user, _)| user).unwrap_or_default();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let claims = serde_json::json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + TOKEN_LIFETIME_SECS,
            "nbf": now.saturating_sub(10),
            "iat": now,
            "jti": format!("{}-{now}-{serial}", std::process::id()),
            "access": access,
        });
        let token = self.sign(&claims);
        let issued_at = humantime_utc(now);
        let mut body = serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": TOKEN_LIFETIME_SECS,
            "issued_at": issued_at,
        });
        // `offline_token=true` (GET) and `access_type=offline` (POST) ask for a refresh token.
        let offline = params.iter().any(|(key, value)| {
            (key == "offline_token" && value == "true")
                || (key == "access_type" && value == "offline")
        });
        if authenticated && offline {
            body["refresh_token"] = serde_json::Value::String(self.refresh_token());
        }
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }

    fn record(&self, credentials: Option<&(String, String)>, scopes: &[String], granted: bool) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(TokenRequest {
                user: credentials.map(|(user, _)| user.clone()),
                scopes: scopes.to_vec(),
                granted,
            });
        }
    }

    /// An RS256 JWT over `claims`, with the signing certificate in `x5c`.
    fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({
            "typ": "JWT",
            "alg": "RS256",
            "x5c": [self.cert_der_base64],
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .expect("RS256 signing");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The access entry for one `type:name:actions` scope: everything asked for when
/// authenticated, only `pull` when anonymous (`None` when nothing is left).
fn grant(scope: &str, authenticated: bool) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions
        .split(',')
        .filter(|action| authenticated || *action == "pull")
        .collect();
    (!actions.is_empty())
        .then(|| serde_json::json!({"type": kind, "name": name, "actions": actions}))
}

/// `user:pass` from a Basic `Authorization` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// The key/value pairs of an `application/x-www-form-urlencoded` string, repeats kept.
fn parse_form(input: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(input.as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

/// A registry-style error body.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"testbed token server\""),
        );
    }
    response
}

/// `secs` since the epoch as RFC 3339 UTC (`2024-01-02T03:04:05Z`).
fn humantime_utc(secs: u64) -> String {
    resource_protocol::timestamp::rfc3339_utc(secs as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_follow_the_credentials() {
        let check = |scope: &str, authenticated: bool, expect: Option<serde_json::Value>| {
            assert_eq!(
                grant(scope, authenticated),
                expect,
                "{scope} {authenticated}"
            );
        };
        let entry = |kind: &str, name: &str, actions: &[&str]| {
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
        };
        check(
            "repository:a/b:pull,push",
            true,
            entry("repository", "a/b", &["pull", "push"]),
        );
        check(
            "repository:a/b:pull,push",
            false,
            entry("repository", "a/b", &["pull"]),
        );
        check("repository:a/b:push", false, None);
        check(
            "registry:catalog:*",
            true,
            entry("registry", "catalog", &["*"]),
        );
        check("nonsense", true, None);
    }

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(humantime_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(humantime_utc(1_709_251_199), "2024-02-29T23:59:59Z");
    }
}
