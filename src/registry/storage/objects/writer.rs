//! [`ObjectWriter`]: one object (or one staged part) written by a single
//! `PUT`, or by a multipart upload once it outgrows [`PART_SIZE`], with at
//! most [`MAX_CONCURRENCY`] parts in flight.

use std::sync::Arc;

use ::object_store::path::Path;
use ::object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{MAX_CONCURRENCY, ObjectStorage, PART_SIZE, remote};
use crate::registry::storage::{StorageError, Writer};

impl ObjectStorage {
    pub(super) fn new_writer(
        &self,
        path: &str,
        target: Path,
        base: u64,
        append: bool,
    ) -> Box<dyn Writer> {
        Box::new(ObjectWriter {
            store: self.store.clone(),
            path: path.to_owned(),
            target,
            buf: BytesMut::new(),
            upload: None,
            size: base,
            written: 0,
            append,
        })
    }
}

/// Writes one object: a single `PUT` when it stays under [`PART_SIZE`],
/// else a multipart upload with bounded parts in flight.
struct ObjectWriter {
    store: Arc<dyn ObjectStore>,
    path: String,
    /// The object, or the staged part, being written.
    target: Path,
    /// Bytes not yet handed to an upload.
    buf: BytesMut,
    upload: Option<WriteMultipart>,
    /// Size of the whole object (staged parts before this one included).
    size: u64,
    /// Bytes written through this writer.
    written: u64,
    /// An appending writer writes a staged part; an empty one is skipped.
    append: bool,
}

impl Writer for ObjectWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), StorageError>> {
        async move {
            self.size += data.len() as u64;
            self.written += data.len() as u64;
            if let Some(up) = self.upload.as_mut() {
                up.wait_for_capacity(MAX_CONCURRENCY)
                    .await
                    .map_err(|e| remote(&self.path, e))?;
                up.put(data);
                return Ok(());
            }
            self.buf.extend_from_slice(&data);
            if self.buf.len() >= PART_SIZE {
                let up = self
                    .store
                    .put_multipart(&self.target)
                    .await
                    .map_err(|e| remote(&self.path, e))?;
                let mut up = WriteMultipart::new_with_chunk_size(up, PART_SIZE);
                up.put(self.buf.split().freeze());
                // Give the buffer's memory back; later data goes straight
                // to the upload.
                self.buf = BytesMut::new();
                self.upload = Some(up);
            }
            Ok(())
        }
        .boxed()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn commit(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        async move {
            if let Some(up) = self.upload.take() {
                up.finish().await.map_err(|e| remote(&self.path, e))?;
            } else if !(self.append && self.written == 0) {
                let data = self.buf.split().freeze();
                self.store
                    .put(&self.target, PutPayload::from(data))
                    .await
                    .map_err(|e| remote(&self.path, e))?;
            }
            Ok(())
        }
        .boxed()
    }

    fn cancel(mut self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        async move {
            if let Some(up) = self.upload.take() {
                up.abort().await.map_err(|e| remote(&self.path, e))?;
            }
            Ok(())
        }
        .boxed()
    }
}

impl Drop for ObjectWriter {
    /// A writer dropped mid-way (a client hung up) aborts its multipart
    /// upload, so the store does not keep the parts.
    fn drop(&mut self) {
        if let Some(up) = self.upload.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = up.abort().await;
            });
        }
    }
}
