//! Blobs through the mirror: a blob the repository lacks is fetched from
//! the upstream once, streamed to the client while it is hashed and
//! written to storage, and served from the store afterwards.
//!
//! The bytes go three ways at once, each in its own task: to the client,
//! to the storage writer, and (in batches of the body's own chunks, not
//! copies) to a hasher on the blocking pool, so on two cores receiving,
//! hashing and writing overlap and each byte is hashed once and copied
//! only by storage. The blob is written with the driver's atomic writer
//! (a temporary file renamed into place, or one multipart upload), not
//! through an upload session: it becomes visible only once the digest
//! matched and the write was made durable, and only then is it linked to
//! the repository.
//!
//! The client gets every byte as it arrives except the last chunk, which is
//! held back until the digest is checked: on a mismatch the write is
//! abandoned (nothing is stored) and the client's answer ends with an
//! error instead of that chunk, so a corrupted blob is neither kept nor
//! completed at the client. The client does not wait for the `fsync`; a
//! failure to store after a verified body leaves the blob unstored (the
//! next pull fetches it again) without failing a client that has it
//! whole. The fetch runs in a task of its own, so a client that goes away
//! does not stop the blob from being stored.
//!
//! Concurrent pulls of one blob of one repository fetch it once: the first
//! request leads, the others wait for it to end (stored or not,
//! [`InFlight`]) and are then served from the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::channel::{mpsc, oneshot};
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::watch;

use super::{Mirror, upstream_name};
use crate::registry::oci::{Digest, Hasher, Name};
use crate::registry::storage::Writer;
use crate::registry::store::{Body, Store, StoreError};

/// Chunks queued towards the client and towards storage.
const QUEUE: usize = 8;

/// Bytes of the body hashed per blocking task.
const HASH_BATCH: usize = 1 << 20;

/// What a blob `GET` through the mirror gives.
pub(crate) enum Fetched {
    /// The repository has the blob (now): serve it from the store; its size.
    Stored(u64),
    /// Streaming from the upstream while it is stored.
    Streaming {
        /// The size the upstream announced.
        len: Option<u64>,
        /// The bytes; ends with an error if the blob fails verification.
        body: Body,
    },
}

/// Fetches in progress, by repository and digest; waiters watch for the
/// end (the sender is dropped when the fetch ends, whatever its outcome).
#[derive(Default)]
pub(super) struct InFlight(Arc<Mutex<Waits>>);

/// Receivers that end with a fetch, by repository and digest.
type Waits = HashMap<(String, String), watch::Receiver<()>>;

/// Removes its entry from the in-flight map when the fetch ends.
struct Leading {
    map: Arc<Mutex<Waits>>,
    key: (String, String),
    _done: watch::Sender<()>,
}

impl Drop for Leading {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(&self.key);
        }
    }
}

impl InFlight {
    /// Either a receiver to wait on (someone else is fetching), or the
    /// lead of a new fetch.
    fn join(&self, name: &Name, digest: &Digest) -> Result<watch::Receiver<()>, Leading> {
        let key = (name.as_str().to_owned(), digest.as_str().to_owned());
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(rx) = m.get(&key) {
            return Ok(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        m.insert(key.clone(), rx);
        Err(Leading {
            map: self.0.clone(),
            key,
            _done: tx,
        })
    }
}

impl Mirror {
    /// The size of a blob, from the store or else from the upstream
    /// (`HEAD`, nothing is fetched).
    pub(crate) async fn blob_size(
        &self,
        store: &Store,
        name: &Name,
        digest: &Digest,
    ) -> Result<u64, StoreError> {
        match store.blob_size(name, digest).await {
            Err(StoreError::BlobUnknown(_)) => {}
            other => return other,
        }
        let a = self
            .upstream
            .blob(&upstream_name(name), digest.as_str(), true)
            .await
            .map_err(|e| self.error(e, || StoreError::BlobUnknown(digest.clone())))?;
        a.length()
            .ok_or_else(|| self.failed(format!("no size for blob `{digest}`")))
    }

    /// A blob for a `GET`: from the store, or fetched from the upstream.
    pub(crate) async fn blob(
        &self,
        store: &Arc<Store>,
        name: &Name,
        digest: &Digest,
    ) -> Result<Fetched, StoreError> {
        match store.blob_size(name, digest).await {
            Ok(size) => return Ok(Fetched::Stored(size)),
            Err(StoreError::BlobUnknown(_)) => {}
            Err(e) => return Err(e),
        }
        let lead = match self.inflight.join(name, digest) {
            Ok(mut wait) => {
                // Ends when the leader's sender is dropped.
                let _ = wait.changed().await;
                return match store.blob_size(name, digest).await {
                    Ok(size) => Ok(Fetched::Stored(size)),
                    Err(StoreError::BlobUnknown(_)) => Err(self.failed(format!(
                        "the fetch of blob `{digest}` this request waited for failed"
                    ))),
                    Err(e) => Err(e),
                };
            }
            Err(lead) => lead,
        };
        let a = self
            .upstream
            .blob(&upstream_name(name), digest.as_str(), false)
            .await
            .map_err(|e| self.error(e, || StoreError::BlobUnknown(digest.clone())))?;
        let len = a.length();
        let writer = store.mirror_blob_writer(digest).await?;
        let (client_tx, client_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE);
        let (store_tx, store_rx) = mpsc::channel::<Bytes>(QUEUE);
        let (verdict_tx, verdict_rx) = oneshot::channel::<bool>();
        let saving = {
            let (store, name, digest) = (store.clone(), name.clone(), digest.clone());
            tokio::spawn(save(store, name, digest, writer, store_rx, verdict_rx))
        };
        let source = self.upstream.base().to_owned();
        let (name, digest) = (name.clone(), digest.clone());
        tokio::spawn(async move {
            let _lead = lead;
            let pipes = Pipes {
                store: store_tx,
                client: client_tx,
                verdict: verdict_tx,
            };
            tee(a.response, pipes, saving, &name, &digest, &source).await;
        });
        Ok(Fetched::Streaming {
            len,
            body: Box::pin(client_rx),
        })
    }
}

/// Where the upstream's bytes go.
struct Pipes {
    /// Towards storage ([`save`]).
    store: mpsc::Sender<Bytes>,
    /// Towards the client.
    client: mpsc::Sender<Result<Bytes, std::io::Error>>,
    /// Whether the bytes matched the digest, for [`save`].
    verdict: oneshot::Sender<bool>,
}

/// Writes the blob's bytes as they come and, once [`tee`] has checked
/// them, publishes the blob and links it (or abandons the write, which
/// leaves nothing behind). Returns why the blob was not stored.
async fn save(
    store: Arc<Store>,
    name: Name,
    digest: Digest,
    mut w: Box<dyn Writer>,
    mut rx: mpsc::Receiver<Bytes>,
    verdict: oneshot::Receiver<bool>,
) -> Result<(), String> {
    let mut size = 0u64;
    while let Some(chunk) = rx.next().await {
        size += chunk.len() as u64;
        if let Err(e) = w.write(chunk).await {
            // Dropping `rx` tells `tee` that storage stopped.
            drop(rx);
            let _ = w.cancel().await;
            return Err(format!("storing the blob failed: {e}"));
        }
    }
    if verdict.await != Ok(true) {
        let _ = w.cancel().await;
        return Err("the bytes did not match the digest".to_owned());
    }
    w.commit()
        .await
        .map_err(|e| format!("storing the blob failed: {e}"))?;
    store
        .link_blob(&name, &digest, size)
        .await
        .map_err(|e| format!("linking the blob failed: {e}"))
}

/// The digest of the upstream's body, computed on the blocking pool a
/// batch at a time while the body goes on flowing. Batches are the body's
/// own chunks (shared, not copied), so every byte is hashed once and
/// copied by no one but storage.
struct Hashing {
    idle: Option<Hasher>,
    busy: Option<tokio::task::JoinHandle<Hasher>>,
    batch: Vec<Bytes>,
    batched: usize,
}

impl Hashing {
    fn new(h: Hasher) -> Self {
        Self {
            idle: Some(h),
            busy: None,
            batch: Vec::new(),
            batched: 0,
        }
    }

    /// Waits for the batch being hashed.
    async fn settle(&mut self) -> Result<(), String> {
        if let Some(task) = self.busy.take() {
            self.idle = Some(task.await.map_err(|e| format!("hashing failed: {e}"))?);
        }
        Ok(())
    }

    async fn update(&mut self, chunk: Bytes) -> Result<(), String> {
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= HASH_BATCH {
            self.settle().await?;
            let batch = std::mem::take(&mut self.batch);
            self.batched = 0;
            if let Some(mut h) = self.idle.take() {
                self.busy = Some(tokio::task::spawn_blocking(move || {
                    for c in &batch {
                        h.update(c);
                    }
                    h
                }));
            }
        }
        Ok(())
    }

    async fn finish(mut self) -> Result<Digest, String> {
        self.settle().await?;
        let mut h = self.idle.take().ok_or("the hash state was lost")?;
        for c in &self.batch {
            h.update(c);
        }
        Ok(h.finish())
    }
}

/// Copies the upstream's body to storage and to the client while it is
/// hashed, holding the last chunk back until the digest is checked: the
/// client's answer does not wait for storage to make the blob durable, but
/// the fetch (and so the waiters of [`InFlight`]) does.
async fn tee(
    res: reqwest::Response,
    pipes: Pipes,
    saving: tokio::task::JoinHandle<Result<(), String>>,
    name: &Name,
    digest: &Digest,
    source: &str,
) {
    let Pipes {
        store: mut store_tx,
        client: mut client_tx,
        verdict,
    } = pipes;
    let mut stream = res.bytes_stream();
    let mut hashing = Hashing::new(Hasher::new(digest.algorithm()));
    let mut held: Option<Bytes> = None;
    let mut client = true;
    let mut failure: Option<String> = None;
    while let Some(chunk) = stream.next().await {
        let c = match chunk {
            Ok(c) if c.is_empty() => continue,
            Ok(c) => c,
            Err(e) => {
                failure = Some(format!("the upstream's body failed: {e}"));
                break;
            }
        };
        if let Err(e) = hashing.update(c.clone()).await {
            failure = Some(e);
            break;
        }
        if store_tx.send(c.clone()).await.is_err() {
            failure = Some("storage stopped taking the blob".to_owned());
            break;
        }
        if let Some(prev) = held.replace(c)
            && client
            && client_tx.send(Ok(prev)).await.is_err()
        {
            // The client went away; the blob is still stored.
            client = false;
        }
    }
    drop(store_tx);
    let checked = match failure {
        Some(why) => Err(why),
        None => match hashing.finish().await {
            Ok(got) if got == *digest => Ok(()),
            Ok(got) => Err(format!("its digest is `{got}`")),
            Err(why) => Err(why),
        },
    };
    let _ = verdict.send(checked.is_ok());
    match &checked {
        Ok(()) => {
            if let Some(last) = held
                && client
            {
                let _ = client_tx.send(Ok(last)).await;
            }
        }
        Err(why) => {
            let _ = client_tx
                .send(Err(std::io::Error::other(format!(
                    "blob `{digest}` from the upstream `{source}` was rejected: {why}"
                ))))
                .await;
        }
    }
    // The client's answer ends here.
    drop(client_tx);
    let stored = match saving.await {
        Ok(r) => checked.and(r),
        Err(e) => checked.and(Err(format!("the storing task failed: {e}"))),
    };
    match stored {
        Ok(()) => tracing::info!(repository = %name, digest = %digest, "mirror: blob stored"),
        Err(why) => tracing::warn!(
            repository = %name, digest = %digest, upstream = source, error = %why,
            "mirror: blob from the upstream not stored"
        ),
    }
}
