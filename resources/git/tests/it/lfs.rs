//! `in` with Git LFS: pointer files replaced by objects from an LFS server. The server is a
//! fixture speaking the LFS batch API (`basic` transfer, Basic auth), checked against the spec's
//! request shape.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;

use serde_json::{Value, json};
use sha2::Digest;

use crate::support::{Env, Repo};

/// Serves `objects` (oid -> content) on 127.0.0.1; the batch call needs `Basic user:pass`.
fn start_lfs_server(objects: BTreeMap<String, Vec<u8>>, auth: &str) -> u16 {
    use base64::Engine;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(auth)
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = BTreeMap::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
            }
            let length: usize = headers
                .get("content-length")
                .map_or(0, |l| l.parse().unwrap());
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let mut parts = request_line.split_whitespace();
            let (method, path) = (parts.next().unwrap(), parts.next().unwrap().to_owned());
            let (status, content_type, payload): (&str, &str, Vec<u8>) =
                if method == "POST" && path == "/objects/batch" {
                    if headers.get("authorization") != Some(&expected) {
                        ("401 Unauthorized", "text/plain", b"no".to_vec())
                    } else {
                        let request: Value = serde_json::from_slice(&body).unwrap();
                        assert_eq!(request["operation"], "download");
                        assert_eq!(
                            headers.get("accept").map(String::as_str),
                            Some("application/vnd.git-lfs+json")
                        );
                        let objects: Vec<Value> = request["objects"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|o| {
                                let oid = o["oid"].as_str().unwrap();
                                json!({"oid": oid, "size": o["size"], "actions": {"download": {
                                    "href": format!("http://127.0.0.1:{port}/objects/{oid}"),
                                    "header": {"X-Fixture": "yes"}
                                }}})
                            })
                            .collect();
                        let answer = json!({"transfer": "basic", "objects": objects});
                        (
                            "200 OK",
                            "application/vnd.git-lfs+json",
                            serde_json::to_vec(&answer).unwrap(),
                        )
                    }
                } else if let Some(oid) = path.strip_prefix("/objects/") {
                    assert_eq!(headers.get("x-fixture").map(String::as_str), Some("yes"));
                    match objects.get(oid) {
                        Some(content) => ("200 OK", "application/octet-stream", content.clone()),
                        None => ("404 Not Found", "text/plain", b"missing".to_vec()),
                    }
                } else {
                    ("404 Not Found", "text/plain", b"missing".to_vec())
                };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            );
            let _ = stream.write_all(&payload);
        }
    });
    port
}

fn pointer(content: &[u8]) -> (String, String) {
    let oid = hex::encode(sha2::Sha256::digest(content));
    let text = format!(
        "version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {}\n",
        content.len()
    );
    (oid, text)
}

#[test]
fn pointer_files_become_their_objects() {
    let env = Env::new();
    let content = b"hello from lfs\n".to_vec();
    let (oid, text) = pointer(&content);
    let (bad_oid, bad_text) = pointer(b"the real content");
    let mut objects = BTreeMap::new();
    objects.insert(oid.clone(), content.clone());
    objects.insert(bad_oid, b"something else".to_vec());
    let port = start_lfs_server(objects, "lfs-user:lfs-pa55");
    let repo = Repo::new();
    std::fs::write(
        repo.path.join(".gitattributes"),
        "*.bin filter=lfs diff=lfs merge=lfs -text\n",
    )
    .unwrap();
    std::fs::write(
        repo.path.join(".lfsconfig"),
        format!("[lfs]\n\turl = http://127.0.0.1:{port}\n"),
    )
    .unwrap();
    std::fs::write(repo.path.join("big.bin"), &text).unwrap();
    std::fs::write(repo.path.join("not-lfs.txt"), &text).unwrap();
    repo.git(&["add", "--all"]);
    repo.git(&["commit", "-q", "-m", "lfs"]);
    let good = repo.head();
    let source = json!({"uri": repo.uri(), "username": "lfs-user", "password": "lfs-pa55"});

    let dest = env.dir.path().join("d");
    env.get(&dest, &source, &json!({"ref": good}), &json!({}))
        .json();
    assert_eq!(std::fs::read(dest.join("big.bin")).unwrap(), content);
    assert_eq!(
        std::fs::read_to_string(dest.join("not-lfs.txt")).unwrap(),
        text,
        "only filter=lfs paths"
    );
    assert!(
        dest.join(".git/lfs/objects")
            .join(&oid[..2])
            .join(&oid[2..4])
            .join(&oid)
            .exists()
    );

    let dest = env.dir.path().join("pointers");
    env.get(
        &dest,
        &source,
        &json!({"ref": good}),
        &json!({"disable_git_lfs": true}),
    )
    .json();
    assert_eq!(std::fs::read_to_string(dest.join("big.bin")).unwrap(), text);

    let run = env.get(
        &env.dir.path().join("wrong"),
        &json!({"uri": repo.uri(), "username": "lfs-user", "password": "wrong-pa55"}),
        &json!({"ref": good}),
        &json!({}),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("git-lfs batch request"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("wrong-pa55"));

    std::fs::write(repo.path.join("big.bin"), &bad_text).unwrap();
    repo.git(&["commit", "-q", "-am", "corrupt object"]);
    let run = env.get(
        &env.dir.path().join("corrupt"),
        &source,
        &json!({}),
        &json!({}),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("is corrupt"), "{}", run.stderr);
}
