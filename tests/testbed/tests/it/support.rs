//! Helpers shared by the self-tests.

use std::io::{Read, Write};
use std::net::TcpStream;

/// Status and body of a plain-HTTP request to `url` (`http://host/path?query`).
pub fn http_request(method: &str, url: &str, headers: &[&str], body: &str) -> (u16, String) {
    let (status, _, body) = http_exchange(method, url, headers, body);
    (status, body)
}

/// Status, response head (status line and headers) and body of a plain-HTTP request.
pub fn http_exchange(
    method: &str,
    url: &str,
    headers: &[&str],
    body: &str,
) -> (u16, String, String) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = TcpStream::connect(host).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(&format!("{header}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (status, head.to_owned(), body.to_owned())
}
