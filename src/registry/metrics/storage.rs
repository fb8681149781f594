//! A storage driver that counts the calls it passes on to another, by
//! driver and operation, and the failed ones ("not found" is an answer,
//! not a failure). The counters of each operation are looked up once, when
//! the driver is built, so a call costs two atomic additions at most.
//! It must not change what the inner driver does or answers.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus_client::metrics::counter::Counter;

use super::{Metrics, StorageLabels};
use crate::registry::storage::{ByteStream, Meta, Storage, StorageError, Writer};

/// The operations counted, in the order of [`Metered::counters`].
#[derive(Clone, Copy)]
enum Op {
    Stat,
    GetBytes,
    Get,
    PutBytes,
    Writer,
    Write,
    Commit,
    Cancel,
    List,
    Delete,
    Rename,
    RedirectUrl,
}

impl Op {
    const ALL: [Op; 12] = [
        Op::Stat,
        Op::GetBytes,
        Op::Get,
        Op::PutBytes,
        Op::Writer,
        Op::Write,
        Op::Commit,
        Op::Cancel,
        Op::List,
        Op::Delete,
        Op::Rename,
        Op::RedirectUrl,
    ];

    fn name(self) -> &'static str {
        match self {
            Op::Stat => "stat",
            Op::GetBytes => "get_bytes",
            Op::Get => "get",
            Op::PutBytes => "put_bytes",
            Op::Writer => "writer",
            Op::Write => "write",
            Op::Commit => "commit",
            Op::Cancel => "cancel",
            Op::List => "list",
            Op::Delete => "delete",
            Op::Rename => "rename",
            Op::RedirectUrl => "redirect_url",
        }
    }
}

/// The two counters of one operation.
#[derive(Clone)]
struct Pair {
    calls: Counter,
    errors: Counter,
}

impl Pair {
    fn count<T>(&self, r: &Result<T, StorageError>) {
        self.calls.inc();
        if let Err(e) = r
            && !e.is_not_found()
        {
            self.errors.inc();
        }
    }
}

/// A driver whose calls are counted.
pub(crate) struct Metered {
    inner: Arc<dyn Storage>,
    counters: Arc<[Pair]>,
}

impl Metered {
    /// Wraps `inner`, the `driver` named in the configuration.
    pub(crate) fn wrap(inner: Arc<dyn Storage>, driver: &str, m: &Metrics) -> Arc<dyn Storage> {
        let counters = Op::ALL
            .iter()
            .map(|op| {
                let labels = StorageLabels {
                    driver: driver.to_owned(),
                    operation: op.name(),
                };
                Pair {
                    calls: m.storage_ops.get_or_create_owned(&labels),
                    errors: m.storage_errors.get_or_create_owned(&labels),
                }
            })
            .collect();
        Arc::new(Self { inner, counters })
    }

    fn pair(&self, op: Op) -> &Pair {
        &self.counters[op as usize]
    }

    /// Awaits the inner driver's `call` and counts its outcome under `op`.
    fn counted<'a, T: Send + 'a>(
        &'a self,
        op: Op,
        call: BoxFuture<'a, Result<T, StorageError>>,
    ) -> BoxFuture<'a, Result<T, StorageError>> {
        async move {
            let r = call.await;
            self.pair(op).count(&r);
            r
        }
        .boxed()
    }
}

impl Storage for Metered {
    fn stat<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Meta, StorageError>> {
        self.counted(Op::Stat, self.inner.stat(path))
    }

    fn get_bytes<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Bytes, StorageError>> {
        self.counted(Op::GetBytes, self.inner.get_bytes(path))
    }

    fn get<'a>(
        &'a self,
        path: &'a str,
        range: Option<Range<u64>>,
    ) -> BoxFuture<'a, Result<ByteStream, StorageError>> {
        self.counted(Op::Get, self.inner.get(path, range))
    }

    fn put_bytes<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        self.counted(Op::PutBytes, self.inner.put_bytes(path, data))
    }

    fn writer<'a>(
        &'a self,
        path: &'a str,
        append: bool,
    ) -> BoxFuture<'a, Result<Box<dyn Writer>, StorageError>> {
        async move {
            let r = self.inner.writer(path, append).await;
            self.pair(Op::Writer).count(&r);
            let w = r?;
            Ok(Box::new(MeteredWriter {
                inner: w,
                counters: Arc::clone(&self.counters),
            }) as Box<dyn Writer>)
        }
        .boxed()
    }

    fn list<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<Vec<String>, StorageError>> {
        self.counted(Op::List, self.inner.list(path))
    }

    fn delete<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        self.counted(Op::Delete, self.inner.delete(path))
    }

    // The provided methods below are passed on too: the inner driver's own
    // versions are what make them atomic (`create_new`) or cheap.
    fn list_after<'a>(
        &'a self,
        path: &'a str,
        after: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, StorageError>> {
        self.counted(Op::List, self.inner.list_after(path, after))
    }

    fn create_new<'a>(
        &'a self,
        path: &'a str,
        data: Bytes,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        self.counted(Op::PutBytes, self.inner.create_new(path, data))
    }

    fn delete_object<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        self.counted(Op::Delete, self.inner.delete_object(path))
    }

    fn appended_size<'a>(&'a self, path: &'a str) -> BoxFuture<'a, Result<u64, StorageError>> {
        self.counted(Op::Stat, self.inner.appended_size(path))
    }

    fn append_writer_at<'a>(
        &'a self,
        path: &'a str,
        size: u64,
    ) -> BoxFuture<'a, Result<Box<dyn Writer>, StorageError>> {
        async move {
            let r = self.inner.append_writer_at(path, size).await;
            self.pair(Op::Writer).count(&r);
            let w = r?;
            Ok(Box::new(MeteredWriter {
                inner: w,
                counters: Arc::clone(&self.counters),
            }) as Box<dyn Writer>)
        }
        .boxed()
    }

    fn publish_appended<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        self.counted(Op::Rename, self.inner.publish_appended(from, to))
    }

    fn rename_volatile<'a>(
        &'a self,
        from: &'a str,
        to: &'a str,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        self.counted(Op::Rename, self.inner.rename_volatile(from, to))
    }

    fn rename<'a>(&'a self, from: &'a str, to: &'a str) -> BoxFuture<'a, Result<(), StorageError>> {
        self.counted(Op::Rename, self.inner.rename(from, to))
    }

    // The batched calls are counted per item, under the single call's
    // operation; they are passed on as such (the inner driver batches).
    fn stat_each<'a>(
        &'a self,
        paths: &'a [String],
    ) -> BoxFuture<'a, Vec<Result<Meta, StorageError>>> {
        async move {
            let r = self.inner.stat_each(paths).await;
            r.iter().for_each(|r| self.pair(Op::Stat).count(r));
            r
        }
        .boxed()
    }

    fn rename_volatile_each<'a>(
        &'a self,
        pairs: &'a [(String, String)],
    ) -> BoxFuture<'a, Vec<Result<(), StorageError>>> {
        async move {
            let r = self.inner.rename_volatile_each(pairs).await;
            r.iter().for_each(|r| self.pair(Op::Rename).count(r));
            r
        }
        .boxed()
    }

    fn delete_each<'a>(&'a self, paths: &'a [String]) -> BoxFuture<'a, Vec<StorageError>> {
        async move {
            let errors = self.inner.delete_each(paths).await;
            let pair = self.pair(Op::Delete);
            pair.calls.inc_by(paths.len() as u64);
            pair.errors.inc_by(errors.len() as u64);
            errors
        }
        .boxed()
    }

    fn redirect_url<'a>(
        &'a self,
        path: &'a str,
        expires: Duration,
    ) -> BoxFuture<'a, Result<Option<String>, StorageError>> {
        self.counted(Op::RedirectUrl, self.inner.redirect_url(path, expires))
    }

    fn shared(&self) -> bool {
        self.inner.shared()
    }
}

/// A writer whose calls are counted with its driver's.
struct MeteredWriter {
    inner: Box<dyn Writer>,
    counters: Arc<[Pair]>,
}

impl Writer for MeteredWriter {
    fn write(&mut self, data: Bytes) -> BoxFuture<'_, Result<(), StorageError>> {
        async move {
            let r = self.inner.write(data).await;
            self.counters[Op::Write as usize].count(&r);
            r
        }
        .boxed()
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn commit(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        let pair = self.counters[Op::Commit as usize].clone();
        let done = self.inner.commit();
        async move {
            let r = done.await;
            pair.count(&r);
            r
        }
        .boxed()
    }

    fn cancel(self: Box<Self>) -> BoxFuture<'static, Result<(), StorageError>> {
        let pair = self.counters[Op::Cancel as usize].clone();
        let done = self.inner.cancel();
        async move {
            let r = done.await;
            pair.count(&r);
            r
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::storage::filesystem::Filesystem;

    /// The wrapper passes the driver suite unchanged, and counts what the
    /// suite did: its failures are the refused paths and ranges, never a
    /// "not found".
    #[tokio::test]
    async fn passes_the_driver_suite_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(Filesystem::new(dir.path().to_str().unwrap()).unwrap());
        let m = Metrics::new();
        let s = Metered::wrap(fs, "local", &m);
        crate::registry::storage::conformance::run(s.as_ref()).await;
        let get = |f: &prometheus_client::metrics::family::Family<StorageLabels, Counter>,
                   op: &'static str| {
            f.get_or_create(&StorageLabels {
                driver: "local".to_owned(),
                operation: op,
            })
            .get()
        };
        for op in Op::ALL {
            let n = op.name();
            assert!(get(&m.storage_ops, n) >= get(&m.storage_errors, n), "{n}");
        }
        assert!(get(&m.storage_ops, "stat") > 0);
        assert!(get(&m.storage_ops, "write") > 0);
        assert!(get(&m.storage_ops, "commit") > 0);
        assert_eq!(
            get(&m.storage_errors, "get_bytes"),
            6,
            "the six unsafe paths"
        );
        assert_eq!(get(&m.storage_errors, "stat"), 0, "not found is an answer");
    }
}
