//! Plumbing between blocking codecs and async HTTP: compression codecs, hashing/counting
//! writers, and channels that turn a blocking `Write`/`Read` into an HTTP body stream and back.
//! Bounded channels keep memory flat however large a NAR is.

use std::io::{self, Read, Write};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::hash::Sha256Hash;
use crate::narinfo::Compression;

/// Chunks buffered between a producer and the network (× [`CHUNK`] bytes each).
const CHANNEL_DEPTH: usize = 8;
/// Size of the chunks sent over channels.
const CHUNK: usize = 256 * 1024;

/// A decompressing reader for `compression`.
pub fn decoder<'a>(
    compression: Compression,
    reader: impl Read + Send + 'a,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match compression {
        Compression::None => Box::new(reader),
        Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(reader)),
    })
}

/// A compressing writer that must be finished explicitly.
pub trait FinishWrite: Write + Send {
    /// Flushes the codec's trailer and returns nothing else.
    fn finish_stream(self: Box<Self>) -> io::Result<()>;
}

struct Plain<W>(W);
impl<W: Write + Send> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}
impl<W: Write + Send> FinishWrite for Plain<W> {
    fn finish_stream(mut self: Box<Self>) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> FinishWrite for zstd::stream::write::Encoder<'static, W> {
    fn finish_stream(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.flush()
    }
}

impl<W: Write + Send> FinishWrite for xz2::write::XzEncoder<W> {
    fn finish_stream(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.flush()
    }
}

impl<W: Write + Send> FinishWrite for bzip2::write::BzEncoder<W> {
    fn finish_stream(self: Box<Self>) -> io::Result<()> {
        (*self).finish()?.flush()
    }
}

/// A compressing writer for `compression` (zstd level 3 as Nix's default, xz level 6).
pub fn encoder<W: Write + Send + 'static>(
    compression: Compression,
    writer: W,
) -> io::Result<Box<dyn FinishWrite>> {
    Ok(match compression {
        Compression::None => Box::new(Plain(writer)),
        Compression::Zstd => Box::new(zstd::stream::write::Encoder::new(writer, 3)?),
        Compression::Xz => Box::new(xz2::write::XzEncoder::new(writer, 6)),
        Compression::Bzip2 => Box::new(bzip2::write::BzEncoder::new(
            writer,
            bzip2::Compression::default(),
        )),
    })
}

/// Shared SHA-256 and byte count, readable after the writer that fed it moved away.
#[derive(Clone, Default)]
pub struct Digester {
    state: std::sync::Arc<std::sync::Mutex<(Sha256, u64)>>,
    count_only: bool,
}

impl Digester {
    /// A digester that only counts bytes (its hash is meaningless).
    pub fn counting() -> Self {
        Self {
            count_only: true,
            ..Self::default()
        }
    }

    /// Adds bytes.
    pub fn update(&self, data: &[u8]) {
        if let Ok(mut g) = self.state.lock() {
            if !self.count_only {
                g.0.update(data);
            }
            g.1 += data.len() as u64;
        }
    }

    /// The hash and size so far.
    pub fn result(&self) -> (Sha256Hash, u64) {
        match self.state.lock() {
            Ok(g) => (Sha256Hash(g.0.clone().finalize().into()), g.1),
            Err(_) => (Sha256Hash([0; 32]), 0),
        }
    }
}

/// A writer that hashes and counts what passes through to `inner`.
pub struct HashingWriter<W> {
    inner: W,
    digest: Digester,
}

impl<W> HashingWriter<W> {
    /// Wraps `inner`; `digest` sees every byte written.
    pub fn new(inner: W, digest: Digester) -> Self {
        Self { inner, digest }
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A plain hashing sink.
pub struct HashSink(pub Digester);

impl Write for HashSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that copies everything it reads into `copy` and hashes it.
pub struct TeeReader<R, W> {
    inner: R,
    copy: W,
    digest: Digester,
}

impl<R: Read, W: Write> TeeReader<R, W> {
    /// Wraps `inner`.
    pub fn new(inner: R, copy: W, digest: Digester) -> Self {
        Self {
            inner,
            copy,
            digest,
        }
    }

    /// Reads what the consumer left unread (trailing bytes) so the copy is complete.
    pub fn drain(mut self) -> io::Result<W> {
        io::copy(&mut self, &mut io::sink())?;
        self.copy.flush()?;
        Ok(self.copy)
    }
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        self.digest.update(&buf[..n]);
        Ok(n)
    }
}

/// The sending half: a blocking `Write` whose bytes become an async stream of chunks.
pub struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "upload stopped"))
    }

    /// A handle that can abort the stream after the writer moved into a codec.
    pub fn failure_handle(&self) -> FailureHandle {
        FailureHandle(self.tx.clone())
    }
}

/// Aborts a [`body_channel`] stream, so a failed producer fails the upload instead of letting
/// a truncated body complete.
pub struct FailureHandle(mpsc::Sender<io::Result<Bytes>>);

impl FailureHandle {
    /// Ends the stream with an error.
    pub fn fail(self, message: String) {
        let _ = self.0.blocking_send(Err(io::Error::other(message)));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.send_buf();
    }
}

/// A channel whose sending half is a blocking writer and whose receiving half is an HTTP body.
pub fn body_channel() -> (ChannelWriter, reqwest::Body) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        reqwest::Body::wrap_stream(stream),
    )
}

/// The receiving half: a blocking `Read` over chunks an async task pushes.
pub struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A channel whose sending half is fed by an async task and whose receiving half is a
/// blocking reader.
pub fn read_channel() -> (mpsc::Sender<io::Result<Bytes>>, ChannelReader) {
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH * 4);
    (
        tx,
        ChannelReader {
            rx,
            current: Bytes::new(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_round_trip() {
        let data: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for c in [
            Compression::None,
            Compression::Xz,
            Compression::Zstd,
            Compression::Bzip2,
        ] {
            let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
            impl Write for Shared {
                fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                    self.0.lock().unwrap().extend_from_slice(b);
                    Ok(b.len())
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            let mut enc = encoder(c, Shared(out.clone())).unwrap();
            enc.write_all(&data).unwrap();
            enc.finish_stream().unwrap();
            let compressed = out.lock().unwrap().clone();
            let mut back = Vec::new();
            decoder(c, &compressed[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "{c:?}");
        }
    }
}
