//! Transient failures: a plain binary cache (GET/HEAD/PUT of files, as nginx WebDAV serves
//! them) that answers 503 or cuts a download short on demand. `out` and `in` retry and still
//! produce a cache real Nix accepts; a cache that keeps failing fails the step clearly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use testbed::tools::temp_dir;

use crate::support::{build_closure, get, nix, nix_keys, out};

/// Faults, counted down as they are served.
#[derive(Default)]
struct Faults {
    /// The next N `PUT`s of NARs answer 503.
    nar_put_503: u32,
    /// The next N `GET`s of narinfos answer 500.
    narinfo_get_500: u32,
    /// The next N `GET`s of NARs send half the body and then break the connection.
    nar_get_cut: u32,
    /// Every request answers 500.
    always_500: bool,
}

#[derive(Default)]
struct Files {
    files: HashMap<String, Bytes>,
    faults: Faults,
    requests: usize,
    /// (path, whether an Authorization header came) of every request.
    seen: Vec<(String, bool)>,
}

type Shared = Arc<Mutex<Files>>;

struct FaultyCache {
    addr: SocketAddr,
    shared: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FaultyCache {
    fn start() -> FaultyCache {
        let shared: Shared = Arc::default();
        let app = Router::new().fallback(serve).with_state(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = stopped => {}
                }
            });
        });
        FaultyCache {
            addr,
            shared,
            _stop: stop,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/c", self.addr)
    }

    fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.shared.lock().unwrap().faults);
    }

    fn requests(&self) -> usize {
        self.shared.lock().unwrap().requests
    }

    fn seen(&self) -> Vec<(String, bool)> {
        self.shared.lock().unwrap().seen.clone()
    }

    fn file(&self, path: &str) -> Option<Bytes> {
        self.shared.lock().unwrap().files.get(path).cloned()
    }

    fn put_file(&self, path: &str, bytes: Bytes) {
        self.shared
            .lock()
            .unwrap()
            .files
            .insert(path.to_owned(), bytes);
    }
}

async fn serve(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let mut files = shared.lock().unwrap();
    files.requests += 1;
    let authorized = headers.contains_key("authorization");
    files.seen.push((path.clone(), authorized));
    let faults = &mut files.faults;
    if faults.always_500 {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let is_nar = path.contains("/nar/");
    let is_narinfo = path.ends_with(".narinfo");
    if method == Method::PUT && is_nar && faults.nar_put_503 > 0 {
        faults.nar_put_503 -= 1;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if method == Method::GET && is_narinfo && faults.narinfo_get_500 > 0 {
        faults.narinfo_get_500 -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let cut = method == Method::GET && is_nar && faults.nar_get_cut > 0;
    if cut {
        faults.nar_get_cut -= 1;
    }
    match method {
        Method::PUT => {
            files.files.insert(path, body);
            StatusCode::CREATED.into_response()
        }
        Method::GET | Method::HEAD => match files.files.get(&path) {
            Some(bytes) if cut => {
                let half = bytes.slice(..bytes.len() / 2);
                let stream = futures::stream::iter(vec![
                    Ok(half),
                    Err(std::io::Error::other("connection cut by the fixture")),
                ]);
                Response::builder()
                    .header("content-length", bytes.len())
                    .body(Body::from_stream(stream))
                    .unwrap()
            }
            Some(bytes) => bytes.clone().into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        },
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

#[test]
fn transient_failures_are_retried() {
    let tmp = temp_dir("nix-faults");
    let xdg = tmp.path();
    let keys = nix_keys(xdg, "faults-1");
    let paths = build_closure(xdg, "faults");
    let top = &paths[0];
    let cache = FaultyCache::start();
    cache.faults(|f| f.nar_put_503 = 2);
    let src = xdg.join("src");
    std::fs::create_dir(&src).unwrap();
    let source = json!({"url": cache.url(), "signing_key": keys.secret,
                        "trusted_public_keys": [keys.public]});
    let pushed = out(&src, &source, &json!({"paths": [top]}));
    pushed.json();
    assert!(pushed.stderr.contains("retrying"), "{}", pushed.stderr);

    cache.faults(|f| {
        f.narinfo_get_500 = 2;
        f.nar_get_cut = 2;
    });
    let dest = xdg.join("dest");
    get(&dest, &source, &json!({"store_path": top}), &json!({})).json();
    assert_eq!(
        std::fs::read_to_string(dest.join("store-path")).unwrap(),
        format!("{top}\n")
    );
    cache.faults(|f| assert_eq!((f.narinfo_get_500, f.nar_get_cut), (0, 0)));

    // What we pushed through the faults is intact for real Nix.
    let store = xdg.join("nix-store-copy");
    let copied = nix(
        xdg,
        &[
            "copy",
            "--from",
            &cache.url(),
            "--to",
            store.to_str().unwrap(),
            "--option",
            "trusted-public-keys",
            &keys.public,
            top,
        ],
    );
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );

    // A cache that keeps failing fails the step after a bounded number of tries.
    cache.faults(|f| f.always_500 = true);
    let before = cache.requests();
    let run = get(
        &xdg.join("dest2"),
        &source,
        &json!({"store_path": top}),
        &json!({}),
    );
    run.failed_with("server answered 500 Internal Server Error");
    assert!(
        cache.requests() - before <= 4,
        "{} requests",
        cache.requests() - before
    );
    assert!(!xdg.join("dest2/store-path").exists());
}

#[test]
fn credentials_stay_on_the_cache_host() {
    let tmp = temp_dir("nix-cross-host");
    let xdg = tmp.path();
    let paths = build_closure(xdg, "crosshost");
    let top = &paths[0];
    let cache = FaultyCache::start();
    let elsewhere = FaultyCache::start();
    let source = json!({"url": cache.url(), "username": "ci", "password": "hunter2-pass"});
    let src = xdg.join("src");
    std::fs::create_dir(&src).unwrap();
    out(&src, &source, &json!({"paths": [top]})).json();
    // The top path's NAR moves to another host; its narinfo points there by absolute URL.
    let narinfo_path = format!("/c/{}.narinfo", &top[11..43]);
    let text = String::from_utf8(cache.file(&narinfo_path).unwrap().to_vec()).unwrap();
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("URL: "))
        .unwrap()
        .to_owned();
    elsewhere.put_file(
        &format!("/c/{url}"),
        cache.file(&format!("/c/{url}")).unwrap(),
    );
    let moved = text.replace(
        &format!("URL: {url}"),
        &format!("URL: {}/{url}", elsewhere.url()),
    );
    cache.put_file(&narinfo_path, Bytes::from(moved));
    get(
        &xdg.join("dest"),
        &source,
        &json!({"store_path": top}),
        &json!({}),
    )
    .json();
    let fetched_elsewhere: Vec<(String, bool)> = elsewhere
        .seen()
        .into_iter()
        .filter(|(p, _)| p.contains("/nar/"))
        .collect();
    assert_eq!(fetched_elsewhere.len(), 1, "{fetched_elsewhere:?}");
    assert!(!fetched_elsewhere[0].1, "credentials went to another host");
    assert!(cache.seen().iter().all(|(_, authorized)| *authorized));
}
