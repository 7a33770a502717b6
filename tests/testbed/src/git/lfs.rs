//! A Git LFS server (batch API, `basic` transfers) for LFS tests, since none is packaged.
//!
//! Routes, for any repo path `R`: `POST /R/info/lfs/objects/batch` (upload and download),
//! `PUT /R/info/lfs/objects/OID` (checks size and SHA-256), `GET /R/info/lfs/objects/OID`.
//! Answers follow the Git LFS batch API spec: `application/vnd.git-lfs+json`, per-object
//! `{"error": {"code": 404, "message": "Object does not exist"}}` for missing downloads, 401 with
//! `LFS-Authenticate` when credentials are required and missing or wrong. Objects live in memory
//! (shared by all repos). Runs in-process on its own thread; stops when dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::Digest as _;

use crate::http_fixture::HttpFixture;

/// The media type of every LFS API body.
pub const LFS_MEDIA_TYPE: &str = "application/vnd.git-lfs+json";

/// One batch request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LfsBatch {
    /// `download` or `upload`.
    pub operation: String,
    /// The requested object ids, in order.
    pub oids: Vec<String>,
    /// The Basic-auth user, if any.
    pub user: Option<String>,
}

/// A running LFS server; stops when dropped.
pub struct LfsServer {
    server: HttpFixture,
    state: Arc<LfsState>,
}

struct LfsState {
    credentials: Option<(String, String)>,
    objects: Mutex<HashMap<String, Vec<u8>>>,
    batches: Mutex<Vec<LfsBatch>>,
}

impl LfsServer {
    /// Starts a server; with `credentials`, every request needs them as Basic auth.
    pub fn start(credentials: Option<(&str, &str)>) -> LfsServer {
        let state = Arc::new(LfsState {
            credentials: credentials.map(|(u, p)| (u.to_owned(), p.to_owned())),
            objects: Mutex::new(HashMap::new()),
            batches: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(route).with_state(Arc::clone(&state));
        let server = HttpFixture::serve("lfs-server", app);
        LfsServer { server, state }
    }

    /// The LFS endpoint for `repo` (e.g. `r.git`): `http://127.0.0.1:PORT/r.git/info/lfs`, the
    /// value for `lfs.url` in a repo's `.lfsconfig`.
    pub fn lfs_url(&self, repo: &str) -> String {
        format!("{}/{}/info/lfs", self.server.url(), repo.trim_matches('/'))
    }

    /// Stores `content` as an object (as a push would) and returns its pointer file text.
    pub fn store(&self, content: &[u8]) -> String {
        let oid = hex::encode(sha2::Sha256::digest(content));
        if let Ok(mut objects) = self.state.objects.lock() {
            objects.insert(oid, content.to_vec());
        }
        pointer(content)
    }

    /// The object with id `oid`, if stored.
    pub fn object(&self, oid: &str) -> Option<Vec<u8>> {
        self.state
            .objects
            .lock()
            .ok()
            .and_then(|objects| objects.get(oid).cloned())
    }

    /// Every batch request answered so far.
    pub fn batches(&self) -> Vec<LfsBatch> {
        self.state
            .batches
            .lock()
            .map(|batches| batches.clone())
            .unwrap_or_default()
    }
}

/// The LFS pointer file for `content`: what git stores instead of the object.
pub fn pointer(content: &[u8]) -> String {
    format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
        hex::encode(sha2::Sha256::digest(content)),
        content.len()
    )
}

/// Dispatches on the path: `…/info/lfs/objects/batch` or `…/info/lfs/objects/OID`.
async fn route(
    State(state): State<Arc<LfsState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let user = match state.authenticate(&headers) {
        Ok(user) => user,
        Err(response) => return *response,
    };
    let path = uri.path();
    let Some((repo, rest)) = path.split_once("/info/lfs/objects") else {
        return lfs_error(StatusCode::NOT_FOUND, "not an LFS route");
    };
    match (method, rest) {
        (Method::POST, "/batch") => {
            let host = headers
                .get(header::HOST)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("127.0.0.1");
            state.batch(host, repo, user, &body)
        }
        (Method::GET, oid) if is_oid(oid) => state.download(&oid[1..]),
        (Method::PUT, oid) if is_oid(oid) => state.upload(&oid[1..], &body),
        _ => lfs_error(StatusCode::NOT_FOUND, "not an LFS route"),
    }
}

/// Whether `segment` is `/` followed by a SHA-256 hex object id.
fn is_oid(segment: &str) -> bool {
    segment
        .strip_prefix('/')
        .is_some_and(|oid| oid.len() == 64 && oid.bytes().all(|b| b.is_ascii_hexdigit()))
}

impl LfsState {
    /// The Basic-auth user, or the 401 answer when credentials are required and not right.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Option<String>, Box<Response>> {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|pair| {
                pair.split_once(':')
                    .map(|(u, p)| (u.to_owned(), p.to_owned()))
            });
        match &self.credentials {
            Some(expected) if given.as_ref() != Some(expected) => {
                let mut response = lfs_error(StatusCode::UNAUTHORIZED, "credentials needed");
                response.headers_mut().insert(
                    "LFS-Authenticate",
                    header::HeaderValue::from_static("Basic realm=\"testbed lfs\""),
                );
                Err(Box::new(response))
            }
            _ => Ok(given.map(|(user, _)| user)),
        }
    }

    /// Answers a batch request; action URLs point back at `host` (the request's `Host`).
    fn batch(&self, host: &str, repo: &str, user: Option<String>, body: &[u8]) -> Response {
        let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
            return lfs_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid batch request");
        };
        let operation = request["operation"].as_str().unwrap_or_default().to_owned();
        if operation != "download" && operation != "upload" {
            return lfs_error(StatusCode::UNPROCESSABLE_ENTITY, "unknown operation");
        }
        let requested: Vec<(String, u64)> = request["objects"]
            .as_array()
            .map(|objects| {
                objects
                    .iter()
                    .map(|o| {
                        (
                            o["oid"].as_str().unwrap_or_default().to_owned(),
                            o["size"].as_u64().unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if let Ok(mut batches) = self.batches.lock() {
            batches.push(LfsBatch {
                operation: operation.clone(),
                oids: requested.iter().map(|(oid, _)| oid.clone()).collect(),
                user,
            });
        }
        let objects = self
            .objects
            .lock()
            .map(|objects| objects.clone())
            .unwrap_or_default();
        let answers: Vec<serde_json::Value> = requested
            .iter()
            .map(|(oid, size)| {
                let href = format!("http://{host}{repo}/info/lfs/objects/{oid}");
                let action = serde_json::json!({"href": href, "expires_in": 3600});
                let stored = objects.get(oid);
                match (operation.as_str(), stored) {
                    ("download", Some(content)) => serde_json::json!({
                        "oid": oid, "size": content.len(), "authenticated": true,
                        "actions": {"download": action}}),
                    ("download", None) => serde_json::json!({
                        "oid": oid, "size": size,
                        "error": {"code": 404, "message": "Object does not exist"}}),
                    // Already stored: no action, the client skips the upload.
                    (_, Some(_)) => serde_json::json!({"oid": oid, "size": size}),
                    (_, None) => serde_json::json!({
                        "oid": oid, "size": size, "authenticated": true,
                        "actions": {"upload": action}}),
                }
            })
            .collect();
        lfs_json(
            StatusCode::OK,
            &serde_json::json!({"transfer": "basic", "objects": answers, "hash_algo": "sha256"}),
        )
    }

    fn download(&self, oid: &str) -> Response {
        let stored = self
            .objects
            .lock()
            .ok()
            .and_then(|objects| objects.get(oid).cloned());
        match stored {
            Some(content) => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/octet-stream")],
                content,
            )
                .into_response(),
            None => lfs_error(StatusCode::NOT_FOUND, "Object does not exist"),
        }
    }

    fn upload(&self, oid: &str, body: &[u8]) -> Response {
        if hex::encode(sha2::Sha256::digest(body)) != oid {
            return lfs_error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "content does not match oid",
            );
        }
        if let Ok(mut objects) = self.objects.lock() {
            objects.insert(oid.to_owned(), body.to_vec());
        }
        StatusCode::OK.into_response()
    }
}

fn lfs_json(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, LFS_MEDIA_TYPE)],
        body.to_string(),
    )
        .into_response()
}

fn lfs_error(status: StatusCode, message: &str) -> Response {
    lfs_json(status, &serde_json::json!({"message": message}))
}
