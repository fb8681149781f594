//! The run itself: every tag in turn, its images checked, its layers
//! converted (or found converted), config and manifest written through the
//! store. The decisions are in the parent module's docs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::{Value, json};

use super::layer::{self, Converted, LayerError};
use super::v1::{self, Image, ImageId, V1};
use super::{
    Broken, Event, Events, MigrateError, Options, Outcome, Summary, TagReport, image, target_name,
};
use crate::model;
use crate::registry::layout;
use crate::registry::oci::{DOCKER_MANIFEST, Digest, Name, Reference, Tag};
use crate::registry::storage::{self, DriverError, Storage, StorageError};
use crate::registry::store::{Body, Store, StoreError};

/// Converts the v1 images in `from`'s storage into `to`'s (`None`: the
/// same storage).
pub(crate) async fn run(
    from: &model::Config,
    to: Option<&model::Config>,
    options: &Options,
    events: Events,
) -> Result<Summary, MigrateError> {
    crate::registry::check_driver(&from.storage)
        .map_err(|_| DriverError::Unsupported(from.storage.driver().to_owned()))?;
    let source = storage::from_config(&from.storage)?;
    let (target, target_config) = match to {
        None => (Arc::clone(&source), from),
        Some(c) => {
            crate::registry::check_driver(&c.storage)
                .map_err(|_| DriverError::Unsupported(c.storage.driver().to_owned()))?;
            (storage::from_config(&c.storage)?, c)
        }
    };
    // A running `serve` (or the next start) learns of what is migrated
    // from the change log; this command opens no index of its own, but
    // writes into a shared one (PostgreSQL), which nobody reads the log for.
    if let Some(other) = target_config
        .search_backend
        .as_deref()
        .filter(|b| !b.is_empty() && *b != "sqlalchemy")
    {
        return Err(MigrateError::SearchBackend(other.to_owned()));
    }
    let shared = if options.dry_run {
        None
    } else {
        crate::registry::index::shared(target_config).await?
    };
    let mut store = Store::new(Arc::clone(&target), shared, 16);
    if !options.dry_run {
        store = store.with_change_log();
    }
    let mut run = Run {
        v1: V1::new(source),
        store,
        target,
        dry_run: options.dry_run,
        events,
        images: HashMap::new(),
        layers: HashMap::new(),
        linked: HashSet::new(),
        summary: Summary::default(),
    };
    let mut tags = run.v1.tags().await?;
    if !options.repositories.is_empty() {
        tags.retain(|t| {
            options
                .repositories
                .iter()
                .any(|r| *r == t.repository || target_name(&t.repository) == r)
        });
    }
    (run.events)(Event::Tags(tags.len()));
    for t in tags {
        let outcome = match run.tag(&t).await? {
            Ok(o) => o,
            Err((image, reason)) => Outcome::Skipped { image, reason },
        };
        let report = TagReport {
            target: target_name(&t.repository).to_owned(),
            repository: t.repository,
            tag: t.tag,
            outcome,
        };
        (run.events)(Event::Tag(report.clone()));
        run.summary.tags.push(report);
    }
    Ok(run.summary)
}

/// A layer converted in this run or an earlier one.
#[derive(Debug, Clone)]
struct Layer {
    conv: Converted,
    /// A repository the blob is linked into.
    repository: String,
}

type Fault = (String, Broken);

struct Run {
    v1: V1,
    store: Store,
    target: Arc<dyn Storage>,
    dry_run: bool,
    events: Events,
    images: HashMap<ImageId, Result<Image, Broken>>,
    layers: HashMap<ImageId, Result<Layer, Broken>>,
    /// (repository, digest) linked by this run.
    linked: HashSet<(String, String)>,
    summary: Summary,
}

impl Run {
    async fn image(&mut self, id: &ImageId) -> Result<Result<Image, Broken>, MigrateError> {
        if let Some(i) = self.images.get(id) {
            return Ok(i.clone());
        }
        let i = self.v1.image(id).await?;
        self.images.insert(id.clone(), i.clone());
        Ok(i)
    }

    /// The images of a tag, base first, checked against each other.
    async fn chain(&mut self, top: &ImageId) -> Result<Result<Vec<Image>, Fault>, MigrateError> {
        let fault = |id: &ImageId, b: Broken| Ok(Err((id.to_string(), b)));
        let ancestry = match self.v1.ancestry(top).await? {
            Ok(a) => a,
            Err(b) => return fault(top, b),
        };
        if ancestry.first() != Some(top) {
            return fault(
                top,
                Broken::Ancestry("the ancestry does not start with the image itself".into()),
            );
        }
        let mut seen = HashSet::new();
        let mut chain = Vec::with_capacity(ancestry.len());
        for (i, id) in ancestry.iter().enumerate() {
            if !seen.insert(id) {
                return fault(
                    id,
                    Broken::Ancestry("the ancestry lists the image twice".into()),
                );
            }
            let image = match self.image(id).await? {
                Ok(im) => im,
                Err(b) => return fault(id, b),
            };
            let parent = image
                .json
                .get("parent")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty());
            let expected = ancestry.get(i + 1).map(ImageId::as_str);
            if parent != expected {
                let said = |o: Option<&str>| o.map_or("none".to_owned(), |p| format!("`{p}`"));
                return fault(
                    id,
                    Broken::Ancestry(format!(
                        "its json names parent {}, the ancestry {}",
                        said(parent),
                        said(expected)
                    )),
                );
            }
            if self.v1.layer_size(id).await?.is_none() {
                return fault(id, Broken::MissingLayer);
            }
            chain.push(image);
        }
        chain.reverse();
        Ok(Ok(chain))
    }

    async fn tag(&mut self, t: &v1::V1Tag) -> Result<Result<Outcome, Fault>, MigrateError> {
        let target = target_name(&t.repository);
        let Ok(name) = Name::parse(target) else {
            return Ok(Err((t.image.clone(), Broken::BadName(target.to_owned()))));
        };
        let Ok(tag) = Tag::parse(&t.tag) else {
            return Ok(Err((t.image.clone(), Broken::BadTag(t.tag.clone()))));
        };
        let Some(top) = ImageId::parse(&t.image) else {
            return Ok(Err((t.image.clone(), Broken::BadId(t.image.clone()))));
        };
        let chain = match self.chain(&top).await? {
            Ok(c) => c,
            Err(f) => return Ok(Err(f)),
        };
        let mut done = Vec::with_capacity(chain.len());
        for image in chain {
            match self.layer(&name, &t.repository, &image).await? {
                Ok(l) => done.push((image, l.conv)),
                Err(b) => return Ok(Err((image.id.to_string(), b))),
            }
        }
        let config = Bytes::from(image::config(&done));
        let config_digest = Digest::sha256_of(&config);
        let convs: Vec<&Converted> = done.iter().map(|(_, c)| c).collect();
        let manifest = Bytes::from(image::manifest((&config_digest, config.len()), &convs));
        let digest = Digest::sha256_of(&manifest);
        let reference = Reference::Tag(tag.clone());
        let current = match self.store.manifest_get(&name, &reference, &t.tag).await {
            Ok(m) => Some(m.digest.clone()),
            Err(StoreError::ManifestUnknown(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if current.as_ref() == Some(&digest) {
            return Ok(Ok(Outcome::Unchanged {
                digest: digest.to_string(),
            }));
        }
        if !self.dry_run {
            if self.store.blob_size(&name, &config_digest).await.is_err() {
                self.put_blob(&name, &config_digest, config).await?;
            }
            self.store
                .manifest_put(&name, &reference, Some(DOCKER_MANIFEST), manifest)
                .await?;
        }
        Ok(Ok(Outcome::Converted {
            digest: digest.to_string(),
            layers: done.len(),
        }))
    }

    /// A small blob (the config) through an upload.
    async fn put_blob(&self, name: &Name, digest: &Digest, data: Bytes) -> Result<(), StoreError> {
        let id = self.store.upload_start(name).await?;
        let body: Body = futures::stream::once(async move { Ok(data) }).boxed();
        self.store
            .upload_finish(name, id, digest, None, body)
            .await?;
        Ok(())
    }

    /// Makes sure `name` holds the blob of `layer` (from `layer.repository`).
    async fn link(&mut self, name: &Name, layer: &Layer) -> Result<bool, MigrateError> {
        let key = (name.as_str().to_owned(), layer.conv.digest.to_string());
        if self.linked.contains(&key) {
            return Ok(true);
        }
        let ok = match Name::parse(&layer.repository) {
            Err(_) => false,
            Ok(_) if self.dry_run => self
                .target
                .stat(&layout::blob_data(&layer.conv.digest))
                .await
                .is_ok(),
            Ok(from) => {
                self.store
                    .blob_mount(name, &layer.conv.digest, &from)
                    .await?
            }
        };
        if ok {
            self.linked.insert(key);
        }
        Ok(ok)
    }

    async fn layer(
        &mut self,
        name: &Name,
        v1_repo: &str,
        image: &Image,
    ) -> Result<Result<Layer, Broken>, MigrateError> {
        if let Some(known) = self.layers.get(&image.id).cloned() {
            // (A dry run has nothing to link: the blob is not written.)
            if let Ok(l) = &known
                && !self.dry_run
                && !self.link(name, l).await?
            {
                // The blob went away since: convert again.
                self.layers.remove(&image.id);
                return Box::pin(self.layer(name, v1_repo, image)).await;
            }
            return Ok(known);
        }
        if let Some(l) = self.record(&image.id).await?
            && self.link(name, &l).await?
        {
            self.summary.layers_reused += 1;
            self.layers.insert(image.id.clone(), Ok(l.clone()));
            return Ok(Ok(l));
        }
        let size = self.v1.layer_size(&image.id).await?.unwrap_or(0);
        (self.events)(Event::Layer(v1_repo.to_owned(), image.id.to_string(), size));
        let result = self.convert(name, image).await?;
        if let Ok(l) = &result {
            self.summary.layers_converted += 1;
            self.summary.bytes_written += l.conv.size;
            self.linked
                .insert((name.as_str().to_owned(), l.conv.digest.to_string()));
            if !self.dry_run {
                self.write_record(&image.id, l).await?;
            }
        }
        self.layers.insert(image.id.clone(), result.clone());
        Ok(result)
    }

    async fn record(&self, id: &ImageId) -> Result<Option<Layer>, MigrateError> {
        let raw = match self
            .target
            .get_bytes(&layout::migrated_v1_image(id.as_str()))
            .await
        {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let v: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let field = |k: &str| v.get(k).and_then(Value::as_str);
        let digest = |k: &str| field(k).and_then(|s| Digest::parse(s).ok());
        let (Some(d), Some(diff), Some(size), Some(repo), Some(sum)) = (
            digest("digest"),
            digest("diff_id"),
            v.get("size").and_then(Value::as_u64),
            field("repository"),
            field("v1_checksum"),
        ) else {
            return Ok(None);
        };
        Ok(Some(Layer {
            conv: Converted {
                digest: d,
                size,
                diff_id: diff,
                read: 0,
                v1_checksum: sum.to_owned(),
            },
            repository: repo.to_owned(),
        }))
    }

    async fn write_record(&self, id: &ImageId, l: &Layer) -> Result<(), MigrateError> {
        let r = json!({
            "digest": l.conv.digest.as_str(),
            "size": l.conv.size,
            "diff_id": l.conv.diff_id.as_str(),
            "v1_checksum": l.conv.v1_checksum,
            "repository": l.repository,
        });
        self.target
            .put_bytes(
                &layout::migrated_v1_image(id.as_str()),
                Bytes::from(r.to_string()),
            )
            .await?;
        Ok(())
    }

    /// Converts a layer (uploading it into `name` unless dry) and checks
    /// its v1 checksum.
    async fn convert(
        &mut self,
        name: &Name,
        image: &Image,
    ) -> Result<Result<Layer, Broken>, MigrateError> {
        let src = match self.v1.layer(&image.id).await {
            Ok(s) => s,
            Err(e) if e.is_not_found() => return Ok(Err(Broken::MissingLayer)),
            Err(e) => return Err(e.into()),
        };
        let events = Arc::clone(&self.events);
        let progress = move |n| events(Event::Read(n));
        let json = image.json_bytes.clone();
        let (converted, upload) = if self.dry_run {
            (layer::convert(src, json, None, progress).await, None)
        } else {
            let id = self.store.upload_start(name).await?;
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
            let body: Body =
                futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok))).boxed();
            let (converted, appended) = tokio::join!(
                layer::convert(src, json, Some(tx), progress),
                self.store.upload_append(name, id, None, body)
            );
            if let Err(e) = appended {
                let _ = self.store.upload_cancel(name, id).await;
                return Err(e.into());
            }
            (converted, Some(id))
        };
        let cancel = async |store: &Store| {
            if let Some(id) = upload {
                let _ = store.upload_cancel(name, id).await;
            }
        };
        let conv = match converted {
            Ok(c) => c,
            Err(e) => {
                cancel(&self.store).await;
                return match e {
                    LayerError::Unsupported(what) => Ok(Err(Broken::Compression(what))),
                    LayerError::Corrupt(m) => Ok(Err(Broken::CorruptLayer(m))),
                    LayerError::Read(e) if e.is_not_found() => Ok(Err(Broken::MissingLayer)),
                    LayerError::Read(e) => Err(e.into()),
                    LayerError::Closed => Err(StorageError::Io {
                        path: "upload".into(),
                        source: std::io::Error::other("the upload stopped reading"),
                    }
                    .into()),
                };
            }
        };
        self.summary.bytes_read += conv.read;
        let simple: Vec<&String> = image
            .checksums
            .iter()
            .filter(|c| c.starts_with("sha256:"))
            .collect();
        if simple.is_empty() {
            let what = image
                .checksums
                .first()
                .cloned()
                .unwrap_or_else(|| "no checksum".to_owned());
            self.summary.unverified.push((image.id.to_string(), what));
        } else if !simple.contains(&&conv.v1_checksum) {
            cancel(&self.store).await;
            return Ok(Err(Broken::Checksum {
                stored: simple[0].clone(),
                actual: conv.v1_checksum,
            }));
        }
        if let Some(id) = upload {
            let empty: Body = futures::stream::empty().boxed();
            self.store
                .upload_finish(name, id, &conv.digest, None, empty)
                .await?;
        }
        Ok(Ok(Layer {
            conv,
            repository: name.as_str().to_owned(),
        }))
    }
}
