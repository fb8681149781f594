//! Reading the files `serve` is told about besides storage (the htpasswd
//! file, the TLS certificate and key), with the checks `validate` makes
//! (`config::source::read_capped`, which the registry may not call): only
//! a regular file, judged on the opened handle, opened without waiting on
//! a FIFO's writer, and at most a bounded size. A FIFO or a device swapped
//! in after `validate` ran is refused instead of hanging `serve`.
//!
//! It does not parse: callers do.

use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt as _;

/// Most bytes of a certificate chain or key file.
pub(crate) const PEM_LIMIT: u64 = 1 << 20;
/// Most bytes of an htpasswd file (over a hundred thousand bcrypt lines).
pub(crate) const HTPASSWD_LIMIT: u64 = 8 << 20;

/// The content of the regular file `path`, at most `limit` bytes; also
/// its modification time and size as seen on the opened handle.
pub(crate) fn read_regular(
    path: &str,
    limit: u64,
) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("it is not a regular file"));
    }
    if meta.len() > limit {
        return Err(std::io::Error::other(format!(
            "it is larger than {limit} bytes"
        )));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::other(format!(
            "it is larger than {limit} bytes"
        )));
    }
    Ok((bytes, meta))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = read_regular(fifo.to_str().unwrap(), 100).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_regular(dir.path().to_str().unwrap(), 100).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, [b'x'; 101]).unwrap();
        let e = read_regular(big.to_str().unwrap(), 100).unwrap_err();
        assert!(e.to_string().contains("larger than 100"), "{e}");
        let (b, m) = read_regular(big.to_str().unwrap(), 101).unwrap();
        assert_eq!((b.len(), m.len()), (101, 101));
    }
}
