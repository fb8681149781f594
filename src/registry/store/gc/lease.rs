//! The lease that lets one process at a time run gc on shared storage:
//! one small object, `_gc/lease`, holding the holder's id and when the
//! lease expires. A process takes the lease when it is absent, expired or
//! its own, writes it, and reads it back after a pause: if another process
//! wrote in between, the later writer holds it. The storage trait has no
//! compare-and-swap, so two processes can still both believe they hold it
//! in a narrow window; gc stays correct then (the sweep's protocol does
//! not rely on being alone, see `GC.md`), it only does the work twice.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use uuid::Uuid;

use super::GC_DIR;
use crate::registry::storage::Storage;
use crate::registry::store::{Store, StoreError};

/// One process's claim on the lease.
pub(crate) struct Lease {
    holder: Uuid,
    ttl: Duration,
}

fn lease_path() -> String {
    format!("{GC_DIR}/lease")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `holder expiry-seconds`, or `None` when unreadable.
fn parse(raw: &[u8]) -> Option<(Uuid, u64)> {
    let text = std::str::from_utf8(raw).ok()?;
    let (holder, expires) = text.trim().split_once(' ')?;
    Some((Uuid::parse_str(holder).ok()?, expires.parse().ok()?))
}

impl Lease {
    /// A claim that, once taken, lasts `ttl` unless renewed.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            holder: Uuid::new_v4(),
            ttl,
        }
    }

    async fn holder(storage: &dyn Storage) -> Result<Option<(Uuid, u64)>, StoreError> {
        match storage.get_bytes(&lease_path()).await {
            Ok(raw) => Ok(parse(&raw)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// When the lease another process holds expires (seconds since the
    /// epoch); `None` when it is free (or ours).
    pub(crate) async fn held_by_other(&self, store: &Store) -> Result<Option<u64>, StoreError> {
        Ok(Self::holder(store.storage.as_ref())
            .await?
            .filter(|(h, expires)| *h != self.holder && *expires > now_secs())
            .map(|(_, expires)| expires))
    }

    /// Takes (or renews) the lease; `false` when another process holds it.
    pub(crate) async fn acquire(&self, store: &Store) -> Result<bool, StoreError> {
        let storage = store.storage.as_ref();
        if let Some((holder, expires)) = Self::holder(storage).await?
            && holder != self.holder
            && expires > now_secs()
        {
            return Ok(false);
        }
        let expires = now_secs() + self.ttl.as_secs();
        let text = format!("{} {expires}\n", self.holder.simple());
        storage.put_bytes(&lease_path(), Bytes::from(text)).await?;
        // A process that wrote at the same moment: the later write wins.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(Self::holder(storage)
            .await?
            .is_some_and(|(h, _)| h == self.holder))
    }

    /// Gives the lease up, if this process holds it.
    pub(crate) async fn release(&self, store: &Store) -> Result<(), StoreError> {
        let storage = store.storage.as_ref();
        if Self::holder(storage)
            .await?
            .is_some_and(|(h, _)| h == self.holder)
        {
            storage.delete(&lease_path()).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Lease;
    use crate::registry::storage::filesystem::Filesystem;
    use crate::registry::store::Store;

    #[tokio::test]
    async fn one_holder_at_a_time_until_release_or_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Filesystem::new(dir.path().to_str().unwrap()).unwrap();
        let store = Store::new(Arc::new(fs), None, 1);
        let (a, b) = (
            Lease::new(Duration::from_secs(600)),
            Lease::new(Duration::from_secs(600)),
        );
        assert!(a.acquire(&store).await.unwrap());
        assert!(!b.acquire(&store).await.unwrap(), "taken while held");
        assert!(b.held_by_other(&store).await.unwrap().is_some());
        assert!(a.acquire(&store).await.unwrap(), "the holder renews");
        a.release(&store).await.unwrap();
        assert!(b.acquire(&store).await.unwrap(), "free after release");
        // A lease whose holder died: taken over once expired.
        b.release(&store).await.unwrap();
        let dead = Lease::new(Duration::ZERO);
        assert!(dead.acquire(&store).await.unwrap());
        assert!(a.acquire(&store).await.unwrap(), "an expired lease is free");
    }
}
