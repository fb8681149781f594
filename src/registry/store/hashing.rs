//! The background hasher of uploads: a request body is hashed on the
//! blocking pool while it is received and written. It knows nothing of
//! storage or sessions; `uploads` decides when its state can be trusted.

use super::StoreError;
use crate::registry::oci::Hasher;
use crate::registry::storage::{StorageError, fill_batch};

/// Bytes of a request body hashed per blocking task.
const HASH_BATCH: usize = 1 << 20;

/// Hashes a body on the blocking pool, a batch at a time, while the caller
/// goes on receiving and writing: every byte is hashed once, as it streams
/// in, and on two cores the hash no longer holds up the network. Batches
/// are copies in two reused buffers (holding the body's own chunks would
/// keep the connection's read buffers alive).
pub(super) struct BackgroundHash {
    idle: Option<Hasher>,
    busy: Option<tokio::task::JoinHandle<(Hasher, Vec<u8>)>>,
    batch: Vec<u8>,
    spare: Vec<u8>,
}

impl BackgroundHash {
    pub(super) fn new(h: Hasher) -> Self {
        Self {
            idle: Some(h),
            busy: None,
            batch: Vec::new(),
            spare: Vec::new(),
        }
    }

    async fn settle(&mut self) -> Result<(), StoreError> {
        if let Some(task) = self.busy.take() {
            let (h, mut buf) = task
                .await
                .map_err(|e| StorageError::io("upload hash", std::io::Error::other(e)))?;
            buf.clear();
            self.spare = buf;
            self.idle = Some(h);
        }
        Ok(())
    }

    pub(super) async fn update(&mut self, mut data: &[u8]) -> Result<(), StoreError> {
        while !data.is_empty() {
            if fill_batch(&mut self.batch, &mut data, HASH_BATCH) {
                self.settle().await?;
                let next = std::mem::take(&mut self.spare);
                let batch = std::mem::replace(&mut self.batch, next);
                if let Some(mut h) = self.idle.take() {
                    self.busy = Some(tokio::task::spawn_blocking(move || {
                        h.update(&batch);
                        (h, batch)
                    }));
                }
            }
        }
        Ok(())
    }

    /// The hash of everything given, the last (partial) batch hashed here.
    pub(super) async fn finish(mut self) -> Result<Hasher, StoreError> {
        self.settle().await?;
        let mut h = self.idle.take().ok_or_else(|| {
            StorageError::io("upload hash", std::io::Error::other("hash state lost"))
        })?;
        h.update(&self.batch);
        Ok(h)
    }
}
