//! Serving an axum `Router` on `127.0.0.1` from its own thread and tokio runtime, for the
//! in-process fixtures (token server, LFS, keyserver, API fixtures).
//!
//! Tests stay synchronous: the fixture owns its runtime, and dropping the handle stops it
//! (open connections included).

use std::net::{SocketAddr, TcpListener};

use axum::Router;

/// A running in-process HTTP server; stops when dropped.
pub struct HttpFixture {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl HttpFixture {
    /// Serves `app` on a free port of `127.0.0.1`, named `name` (the thread's name).
    pub fn serve(name: &str, app: Router) -> HttpFixture {
        // Bound here, before the thread starts: the port is ours and known at once.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fixture");
        listener
            .set_nonblocking(true)
            .expect("non-blocking fixture listener");
        let addr = listener.local_addr().expect("fixture address");
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fixture runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("fixture listener");
                    // Not a graceful shutdown: idle keep-alive connections would hold it open.
                    tokio::select! {
                        _ = axum::serve(listener, app) => {}
                        _ = stop => {}
                    }
                });
            })
            .expect("spawn fixture thread");
        HttpFixture {
            addr,
            shutdown: Some(shutdown),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn serves_until_dropped() {
        let app = Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let fixture = HttpFixture::serve("self-test", app);
        let addr = fixture.addr();
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.ends_with("hello"), "{response}");
        // An idle keep-alive connection must not keep it alive.
        let _idle = TcpStream::connect(addr).unwrap();
        drop(fixture);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(addr).is_ok() {
            assert!(Instant::now() < deadline, "still listening after drop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
