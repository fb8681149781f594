//! One v1 layer turned into a v2 layer blob while it streams: a gzipped
//! layer is kept byte for byte and decompressed only to hash it; a plain
//! tar is compressed once, deterministically (gzip header without time or
//! name, fixed level). Three SHA-256s run over the one pass: of the stored
//! (compressed) bytes (the blob digest), of the tar (the `diff_id`), and of
//! the v1 JSON, a newline and the layer as docker-registry stored it (its
//! `sha256:` checksum). Memory is a few buffers, whatever the layer size.
//!
//! The work is CPU-bound and runs on the blocking pool; the compressed
//! bytes leave through a bounded channel to whoever writes them (the
//! store's upload), so compressing and writing overlap. This module does
//! not write storage.

use std::io::Write;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};

use crate::registry::oci::Digest;
use crate::registry::storage::{ByteStream, fill_batch};

/// gzip level of compressed plain layers. Part of the output: changing it
/// changes the digests a second run produces (so it must not change
/// between runs over one store).
pub(crate) const GZIP_LEVEL: u32 = 6;

/// Bytes of tar given to the compressor at a time (see `feed`). Part of
/// the output, like [`GZIP_LEVEL`].
const DEFLATE_BLOCK: usize = 1 << 16;

/// Bytes handed to the writer at a time.
const OUT_CHUNK: usize = 1 << 20;

/// What a layer became.
#[derive(Debug, Clone)]
pub(crate) struct Converted {
    /// Digest of the stored (gzip) blob.
    pub(crate) digest: Digest,
    /// Size of the stored blob.
    pub(crate) size: u64,
    /// Digest of the uncompressed tar.
    pub(crate) diff_id: Digest,
    /// Bytes of the v1 layer read.
    pub(crate) read: u64,
    /// `sha256:` of the v1 JSON, `\n` and the layer (docker-registry's
    /// checksum).
    pub(crate) v1_checksum: String,
}

/// Why a layer could not be converted.
#[derive(Debug)]
pub(crate) enum LayerError {
    /// The layer is compressed in a way docker does not pull (`what`).
    Unsupported(&'static str),
    /// The gzip stream is corrupt.
    Corrupt(String),
    /// Reading the v1 layer failed.
    Read(crate::registry::storage::StorageError),
    /// The writer went away (its own error says why).
    Closed,
}

fn hex_digest(h: Sha256) -> Digest {
    let hex = hex::encode(h.finalize());
    // 64 hex digits always parse.
    Digest::parse(&format!("sha256:{hex}")).unwrap_or_else(|_| Digest::sha256_of(b""))
}

/// Hashes (and counts) what is written to it.
#[derive(Default)]
struct HashWriter {
    h: Sha256,
    n: u64,
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.h.update(buf);
        self.n += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Mode {
    /// Kept as is; decompressed into the `diff_id` hash.
    Gzip(flate2::write::MultiGzDecoder<HashWriter>),
    /// Compressed; the tar goes to the `diff_id` hash as it comes.
    Plain(flate2::write::GzEncoder<Vec<u8>>, HashWriter),
}

/// The synchronous core: feed the layer's bytes, take what to store.
pub(crate) struct Converter {
    mode: Option<Mode>,
    head: Vec<u8>,
    /// Tar bytes waiting for a full [`DEFLATE_BLOCK`].
    block: Vec<u8>,
    stored: HashWriter,
    v1: Sha256,
    read: u64,
}

/// Bytes needed to tell the format (a tar's `ustar` magic ends at 262).
const SNIFF: usize = 262;

impl Converter {
    pub(crate) fn new(v1_json: &[u8]) -> Self {
        let mut v1 = Sha256::new();
        v1.update(v1_json);
        v1.update(b"\n");
        Self {
            mode: None,
            head: Vec::new(),
            block: Vec::new(),
            stored: HashWriter::default(),
            v1,
            read: 0,
        }
    }

    /// Picks the format from the first bytes and feeds them.
    fn start(&mut self) -> Result<Vec<u8>, LayerError> {
        let h = &self.head;
        let mode = if h.starts_with(&[0x1f, 0x8b]) {
            Mode::Gzip(flate2::write::MultiGzDecoder::new(HashWriter::default()))
        } else if h.starts_with(b"BZh") {
            return Err(LayerError::Unsupported("bzip2"));
        } else if h.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            return Err(LayerError::Unsupported("xz"));
        } else if h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(LayerError::Unsupported("zstd"));
        } else {
            // No mtime, no name, OS "unknown": the same tar always gives
            // the same bytes.
            let enc = flate2::GzBuilder::new()
                .operating_system(255)
                .write(Vec::new(), flate2::Compression::new(GZIP_LEVEL));
            Mode::Plain(enc, HashWriter::default())
        };
        self.mode = Some(mode);
        let head = std::mem::take(&mut self.head);
        self.feed(&head)
    }

    /// Takes `data` (the next bytes of the layer); returns bytes to store.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, LayerError> {
        self.read += data.len() as u64;
        self.v1.update(data);
        if self.mode.is_none() {
            self.head.extend_from_slice(data);
            if self.head.len() < SNIFF {
                return Ok(Vec::new());
            }
            return self.start();
        }
        self.feed(data)
    }

    fn feed(&mut self, data: &[u8]) -> Result<Vec<u8>, LayerError> {
        match self.mode.as_mut() {
            Some(Mode::Gzip(dec)) => {
                dec.write_all(data)
                    .map_err(|e| LayerError::Corrupt(e.to_string()))?;
                self.stored.h.update(data);
                self.stored.n += data.len() as u64;
                Ok(data.to_vec())
            }
            Some(Mode::Plain(enc, tar)) => {
                tar.h.update(data);
                tar.n += data.len() as u64;
                // The deflate output depends on how its input is cut into
                // writes; fixed blocks make it depend on the tar alone, not
                // on the chunks a driver happens to return.
                let mut data = data;
                while fill_batch(&mut self.block, &mut data, DEFLATE_BLOCK) {
                    enc.write_all(&self.block)
                        .map_err(|e| LayerError::Corrupt(e.to_string()))?;
                    self.block.clear();
                }
                let out = std::mem::take(enc.get_mut());
                self.stored.h.update(&out);
                self.stored.n += out.len() as u64;
                Ok(out)
            }
            None => Ok(Vec::new()),
        }
    }

    /// Ends the layer: the last bytes to store and what it became.
    pub(crate) fn finish(mut self) -> Result<(Vec<u8>, Converted), LayerError> {
        let mut last = Vec::new();
        if self.mode.is_none() {
            last = self.start()?;
        }
        let (diff_id, stored_tail) = match self.mode.take() {
            Some(Mode::Gzip(dec)) => {
                let tar = dec
                    .finish()
                    .map_err(|e| LayerError::Corrupt(e.to_string()))?;
                (hex_digest(tar.h), Vec::new())
            }
            Some(Mode::Plain(mut enc, tar)) => {
                enc.write_all(&self.block)
                    .map_err(|e| LayerError::Corrupt(e.to_string()))?;
                let tail = enc
                    .finish()
                    .map_err(|e| LayerError::Corrupt(e.to_string()))?;
                self.stored.h.update(&tail);
                self.stored.n += tail.len() as u64;
                (hex_digest(tar.h), tail)
            }
            None => return Err(LayerError::Corrupt("no data".into())),
        };
        last.extend_from_slice(&stored_tail);
        let v1_checksum = format!("sha256:{}", hex::encode(self.v1.finalize()));
        Ok((
            last,
            Converted {
                size: self.stored.n,
                digest: hex_digest(self.stored.h),
                diff_id,
                read: self.read,
                v1_checksum,
            },
        ))
    }
}

/// Converts `src` on the blocking pool, sending what to store through
/// `out` (or nowhere, for a dry run) in chunks of about [`OUT_CHUNK`];
/// `progress` is told of every batch of bytes read.
pub(crate) async fn convert(
    mut src: ByteStream,
    v1_json: Bytes,
    out: Option<tokio::sync::mpsc::Sender<Bytes>>,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<Converted, LayerError> {
    let handle = tokio::runtime::Handle::current();
    let task = tokio::task::spawn_blocking(move || {
        let mut c = Converter::new(&v1_json);
        let mut pending: Vec<u8> = Vec::new();
        let send = |pending: &mut Vec<u8>, force: bool| -> Result<(), LayerError> {
            if pending.is_empty() || (!force && pending.len() < OUT_CHUNK) {
                return Ok(());
            }
            let chunk = Bytes::from(std::mem::take(pending));
            match &out {
                Some(tx) => tx.blocking_send(chunk).map_err(|_| LayerError::Closed),
                None => Ok(()),
            }
        };
        while let Some(chunk) = handle.block_on(src.next()) {
            let chunk = chunk.map_err(LayerError::Read)?;
            progress(chunk.len() as u64);
            let produced = c.push(&chunk)?;
            if pending.is_empty() {
                pending = produced;
            } else {
                pending.extend_from_slice(&produced);
            }
            send(&mut pending, false)?;
        }
        let (last, converted) = c.finish()?;
        pending.extend_from_slice(&last);
        send(&mut pending, true)?;
        Ok(converted)
    });
    task.await
        .map_err(|e| LayerError::Corrupt(format!("conversion task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(layer: &[u8], step: usize) -> (Vec<u8>, Converted) {
        let mut c = Converter::new(b"{}");
        let mut out = Vec::new();
        for part in layer.chunks(step.max(1)) {
            out.extend(c.push(part).unwrap());
        }
        let (last, conv) = c.finish().unwrap();
        out.extend(last);
        (out, conv)
    }

    fn sha(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    #[test]
    fn a_plain_tar_is_compressed_the_same_way_whatever_the_chunks() {
        let tar: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let (a, ca) = run(&tar, 7);
        let (b, cb) = run(&tar, 65_536);
        assert_eq!(a, b);
        assert_eq!(ca.digest.as_str(), sha(&a));
        assert_eq!(ca.digest, cb.digest);
        assert_eq!(ca.diff_id.as_str(), sha(&tar));
        assert_eq!(ca.size, a.len() as u64);
        assert_eq!(ca.read, tar.len() as u64);
        // no mtime, no name
        assert_eq!(&a[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&a[..]), &mut back).unwrap();
        assert_eq!(back, tar);
        let mut v1 = b"{}\n".to_vec();
        v1.extend_from_slice(&tar);
        assert_eq!(ca.v1_checksum, sha(&v1));
    }

    #[test]
    fn a_gzip_layer_is_kept_byte_for_byte() {
        let tar: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&tar).unwrap();
        let gz = enc.finish().unwrap();
        for step in [1, 100, 1 << 20] {
            let (out, c) = run(&gz, step);
            assert_eq!(out, gz);
            assert_eq!(c.digest.as_str(), sha(&gz));
            assert_eq!(c.diff_id.as_str(), sha(&tar));
        }
    }

    #[test]
    fn other_compressions_are_refused_and_bad_gzip_is_corrupt() {
        let mut c = Converter::new(b"{}");
        c.push(b"BZh91AY").unwrap();
        assert!(matches!(c.finish(), Err(LayerError::Unsupported("bzip2"))));
        let mut c = Converter::new(b"{}");
        let mut bad = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
        bad.extend(std::iter::repeat_n(0xffu8, 400));
        let r = c
            .push(&bad)
            .and_then(|_| c.finish().map(|_| Vec::<u8>::new()));
        assert!(matches!(r, Err(LayerError::Corrupt(_))));
    }
}
