//! Blobs through the mirror: a blob the repository lacks is fetched from
//! the upstream once, streamed to the client while it is written through
//! the store's upload path ([`Store::upload_finish`], which checks the
//! digest as the bytes flow), and served from the store afterwards.
//!
//! The client gets every byte as it arrives except the last chunk, which is
//! held back until the store has verified the digest: on a mismatch (or a
//! failed write) the upload is discarded and the client's answer ends with
//! an error instead of that chunk, so a corrupted blob is neither kept nor
//! completed at the client. The fetch runs in a task of its own, so a
//! client that goes away does not stop the blob from being stored.
//!
//! Concurrent pulls of one blob of one repository fetch it once: the first
//! request leads, the others wait for it to end ([`InFlight`]) and are then
//! served from the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::channel::mpsc;
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::watch;

use super::{Mirror, upstream_name};
use crate::registry::oci::{Digest, Name};
use crate::registry::store::{Body, Store, StoreError};

/// Chunks queued towards the client and towards storage.
const QUEUE: usize = 4;

/// The upstream's small reads are gathered into chunks of this size before
/// they are passed on: fewer hand-offs between the tasks, and writes and
/// hashing in large pieces.
const GATHER: usize = 256 << 10;

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
        let id = store.upload_start(name).await?;
        let (client_tx, client_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE);
        let (store_tx, store_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(QUEUE);
        let upload = {
            let (store, name, digest) = (store.clone(), name.clone(), digest.clone());
            tokio::spawn(async move {
                let r = store
                    .upload_finish(&name, id, &digest, None, Box::pin(store_rx))
                    .await;
                if matches!(r, Err(StoreError::Storage(_))) {
                    // Left open for a retry by `upload_finish`; nobody will.
                    let _ = store.upload_cancel(&name, id).await;
                }
                r
            })
        };
        let source = self.upstream.base().to_owned();
        let (name, digest) = (name.clone(), digest.clone());
        tokio::spawn(async move {
            let _lead = lead;
            tee(
                a.response, store_tx, client_tx, upload, &name, &digest, &source,
            )
            .await;
        });
        Ok(Fetched::Streaming {
            len,
            body: Box::pin(client_rx),
        })
    }
}

/// Copies the upstream's body to storage and to the client, holding the
/// last chunk back until the upload's verdict.
async fn tee(
    res: reqwest::Response,
    mut store_tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    mut client_tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    upload: tokio::task::JoinHandle<Result<u64, StoreError>>,
    name: &Name,
    digest: &Digest,
    source: &str,
) {
    let mut stream = res.bytes_stream();
    let mut held: Option<Bytes> = None;
    let mut client = true;
    let mut failure: Option<String> = None;
    let mut gathered = bytes::BytesMut::new();
    let mut ended = false;
    while !ended {
        let chunk = match stream.next().await {
            Some(Ok(c)) => {
                gathered.extend_from_slice(&c);
                if gathered.len() < GATHER {
                    continue;
                }
                Ok(gathered.split().freeze())
            }
            Some(Err(e)) => Err(e),
            None => {
                ended = true;
                if gathered.is_empty() {
                    break;
                }
                Ok(gathered.split().freeze())
            }
        };
        match chunk {
            Ok(c) => {
                if store_tx.send(Ok(c.clone())).await.is_err() {
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
            Err(e) => {
                let why = format!("the upstream's body failed: {e}");
                let _ = store_tx.send(Err(std::io::Error::other(why.clone()))).await;
                failure = Some(why);
                break;
            }
        }
    }
    drop(store_tx);
    let verdict = match upload.await {
        Ok(Ok(_)) => failure.map_or(Ok(()), Err),
        Ok(Err(e)) => Err(failure.unwrap_or_else(|| e.to_string())),
        Err(e) => Err(format!("the upload task failed: {e}")),
    };
    match verdict {
        Ok(()) => {
            tracing::info!(repository = %name, digest = %digest, "mirror: blob stored");
            if let Some(last) = held
                && client
            {
                let _ = client_tx.send(Ok(last)).await;
            }
        }
        Err(why) => {
            tracing::warn!(
                repository = %name, digest = %digest, upstream = source, error = %why,
                "mirror: blob from the upstream rejected; nothing was stored"
            );
            let _ = client_tx
                .send(Err(std::io::Error::other(format!(
                    "blob `{digest}` from the upstream `{source}` was rejected: {why}"
                ))))
                .await;
        }
    }
}
