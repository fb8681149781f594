//! The upload sessions of this process: upload id → [`SessionEntry`].
//!
//! The map only holds sessions; it does not decide whether an upload
//! exists (storage does, see `uploads`). Every operation on it is a single
//! insert, remove or lookup, so its lock is never held across I/O.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

use crate::registry::oci::{Algorithm, Hasher, Name};

/// An upload in progress. The repository sits outside the lock so that
/// checking it never waits for a chunk being written.
pub(super) struct SessionEntry {
    pub(super) name: Name,
    /// Shared so that a locked session can outlive the lookup that found it.
    pub(super) state: Arc<tokio::sync::Mutex<Session>>,
}

/// The mutable part of an upload.
pub(super) struct Session {
    /// Bytes received; meaningful only while `hasher` is `Some`.
    pub(super) size: u64,
    /// Hash of the first `size` bytes; `None` when unknown (see the
    /// store's Rationale).
    pub(super) hasher: Option<Hasher>,
    /// Set when the upload has been finished or cancelled.
    pub(super) closed: bool,
}

pub(super) type SessionRef = Arc<SessionEntry>;

impl SessionEntry {
    /// A session of `name`: a new upload (hashed from its first byte) or
    /// one found on storage (`fresh: false`), whose hash state is unknown.
    pub(super) fn new(name: &Name, fresh: bool) -> SessionRef {
        Arc::new(Self {
            name: name.clone(),
            state: Arc::new(tokio::sync::Mutex::new(Session {
                size: 0,
                hasher: fresh.then(|| Hasher::new(Algorithm::Sha256)),
                closed: false,
            })),
        })
    }
}

/// The session map.
#[derive(Default)]
pub(super) struct Sessions(Mutex<HashMap<Uuid, SessionRef>>);

impl Sessions {
    /// The session of `id`, if this process has one.
    pub(super) fn get(&self, id: Uuid) -> Option<SessionRef> {
        self.lock().get(&id).cloned()
    }

    /// Adds a session; an existing one for `id` wins (two requests may
    /// recreate the same session at once) and is returned.
    pub(super) fn insert(&self, id: Uuid, s: SessionRef) -> SessionRef {
        self.lock().entry(id).or_insert(s).clone()
    }

    /// Adds the session of a new upload, unless `max` sessions are open
    /// already (then `false`).
    pub(super) fn insert_new(&self, id: Uuid, s: SessionRef, max: usize) -> bool {
        let mut map = self.lock();
        if map.len() >= max {
            return false;
        }
        map.insert(id, s);
        true
    }

    /// Forgets the session of `id`, returning it.
    pub(super) fn remove(&self, id: Uuid) -> Option<SessionRef> {
        self.lock().remove(&id)
    }

    /// Sessions open now.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Uuid, SessionRef>> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every operation on it is a single insert/remove/get).
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
