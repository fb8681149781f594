//! A multipart upload as one resumable upload session of the JSON API.
//!
//! The session takes its bytes in order, in chunks that are multiples of
//! 256 KiB (all but the last). object_store's parts may be sent at once
//! (the writer keeps two in flight), so each part waits for the one before
//! it, and what does not fill a whole 256 KiB stays in a small tail that
//! goes with the next part or the final request. A session that would
//! carry less than 256 KiB in all is never opened: the object is written
//! with one media upload instead. The server may keep less of a chunk than
//! it was sent (it says how much in `Range`); the rest is sent again.
//!
//! This module must not keep more than one part and the tail in memory
//! beyond what the writer hands it.

use std::sync::Arc;

use ::object_store::path::Path;
use ::object_store::{MultipartUpload, PutPayload, PutResult, Result, UploadPart};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use reqwest::StatusCode;
use tokio::sync::{Mutex, oneshot};

use super::{GcsJson, failed, generic, put_result, transport};

/// Chunks of a resumable upload are multiples of this (but the last).
const QUANTUM: usize = 256 << 10;

/// One object written through a resumable session, part after part.
#[derive(Debug)]
pub(super) struct Resumable {
    client: GcsJson,
    location: Path,
    session: Arc<Mutex<Session>>,
    /// Says whether the last part handed out was sent (parts go in order).
    last: Option<oneshot::Receiver<bool>>,
}

#[derive(Debug, Default)]
struct Session {
    /// The session's URL, once opened.
    url: Option<String>,
    /// Bytes the server has kept.
    sent: u64,
    /// Bytes not sent yet (less than [`QUANTUM`] between parts).
    tail: BytesMut,
}

/// What the server said to a chunk.
enum Answer {
    /// It keeps the bytes before this offset and waits for more.
    Incomplete(u64),
    /// The object is written.
    Done(reqwest::Response),
}

impl Resumable {
    pub(super) fn new(client: GcsJson, location: Path) -> Self {
        Self {
            client,
            location,
            session: Arc::new(Mutex::new(Session::default())),
            last: None,
        }
    }
}

impl GcsJson {
    /// Opens a resumable session for `location`; returns its URL.
    async fn open(&self, location: &Path) -> Result<String> {
        let mut url = self.upload_url();
        url.query_pairs_mut()
            .append_pair("uploadType", "resumable")
            .append_pair("name", location.as_ref());
        let body = serde_json::json!({ "name": location.as_ref() }).to_string();
        let r = self
            .send(
                location.as_ref(),
                self.http
                    .post(url)
                    .header("content-type", "application/json; charset=UTF-8")
                    .body(body),
            )
            .await?;
        r.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| generic("a resumable upload was opened without a `Location`"))
    }

    /// Sends `data` at `start` of the session at `url`; `total` is the
    /// object's size on the last chunk.
    async fn chunk(
        &self,
        location: &Path,
        url: &str,
        start: u64,
        data: Bytes,
        total: Option<u64>,
    ) -> Result<Answer> {
        let len = data.len() as u64;
        let total_text = total.map_or_else(|| "*".to_owned(), |t| t.to_string());
        let range = if len == 0 {
            format!("bytes */{total_text}")
        } else {
            format!("bytes {start}-{}/{total_text}", start + len - 1)
        };
        let r = self
            .http
            .put(url)
            .header("content-range", range)
            .body(data)
            .send()
            .await
            .map_err(transport)?;
        match r.status() {
            StatusCode::PERMANENT_REDIRECT => {
                // `Range: bytes=0-N`: N + 1 bytes kept; none without it.
                let kept = r
                    .headers()
                    .get("range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.rsplit_once('-'))
                    .and_then(|(_, end)| end.trim().parse::<u64>().ok())
                    .map_or(0, |end| end + 1);
                Ok(Answer::Incomplete(kept))
            }
            s if s.is_success() => Ok(Answer::Done(r)),
            _ => Err(failed(location.as_ref(), r).await),
        }
    }
}

impl Session {
    /// Sends what is in the tail up to the last whole [`QUANTUM`] (all of
    /// it when `total` is given: the last chunk). Returns the server's
    /// answer to the last chunk of the object.
    async fn flush(
        &mut self,
        client: &GcsJson,
        location: &Path,
        total: Option<u64>,
    ) -> Result<Option<reqwest::Response>> {
        loop {
            let n = if total.is_some() {
                self.tail.len()
            } else {
                self.tail.len() / QUANTUM * QUANTUM
            };
            if n == 0 && total.is_none() {
                return Ok(None);
            }
            let url = match &self.url {
                Some(u) => u.clone(),
                None => {
                    let u = client.open(location).await?;
                    self.url = Some(u.clone());
                    u
                }
            };
            let data = self.tail.split_to(n).freeze();
            match client
                .chunk(location, &url, self.sent, data.clone(), total)
                .await?
            {
                Answer::Done(r) if total.is_some() => return Ok(Some(r)),
                Answer::Done(_) => {
                    return Err(generic("the server ended a resumable upload early"));
                }
                Answer::Incomplete(kept) => {
                    let end = self.sent + data.len() as u64;
                    if kept < self.sent || kept > end || (kept == self.sent && !data.is_empty()) {
                        return Err(generic(format!(
                            "a resumable upload kept {kept} bytes, expected {}..={end}",
                            self.sent + 1
                        )));
                    }
                    // Put back what the server did not keep, before the rest.
                    let skip = usize::try_from(kept - self.sent).unwrap_or(data.len());
                    if skip < data.len() {
                        let mut again = BytesMut::from(&data[skip..]);
                        again.extend_from_slice(&self.tail);
                        self.tail = again;
                    }
                    self.sent = kept;
                    if total.is_some() && data.is_empty() {
                        return Err(generic("the server did not finish a resumable upload"));
                    }
                }
            }
        }
    }
}

#[async_trait]
impl MultipartUpload for Resumable {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let (done, next) = oneshot::channel();
        let before = self.last.replace(next);
        let session = self.session.clone();
        let client = self.client.clone();
        let location = self.location.clone();
        async move {
            if let Some(before) = before
                && before.await != Ok(true)
            {
                return Err(generic("an earlier part of this upload failed"));
            }
            let sent = {
                let mut s = session.lock().await;
                for chunk in &data {
                    s.tail.extend_from_slice(chunk);
                }
                // The tail holds the bytes now; one copy in memory, not two.
                drop(data);
                s.flush(&client, &location, None).await
            };
            let _ = done.send(sent.is_ok());
            sent.map(|_| ())
        }
        .boxed()
    }

    async fn complete(&mut self) -> Result<PutResult> {
        if let Some(before) = self.last.take()
            && before.await != Ok(true)
        {
            return Err(generic("a part of this upload failed"));
        }
        let mut s = self.session.lock().await;
        if s.url.is_none() {
            // Under 256 KiB in all: one request.
            let data = std::mem::take(&mut s.tail).freeze();
            return self.client.put_media(&self.location, data).await;
        }
        let total = s.sent + s.tail.len() as u64;
        match s.flush(&self.client, &self.location, Some(total)).await? {
            Some(r) => put_result(r).await,
            None => Err(generic("a resumable upload ended without an answer")),
        }
    }

    async fn abort(&mut self) -> Result<()> {
        let s = self.session.lock().await;
        if let Some(url) = &s.url {
            // GCS answers 499 to a cancelled session.
            let r = self
                .client
                .http
                .delete(url)
                .header("content-length", "0")
                .send()
                .await
                .map_err(transport)?;
            if !(r.status().is_success() || r.status().as_u16() == 499) {
                return Err(failed(self.location.as_ref(), r).await);
            }
        }
        Ok(())
    }
}
