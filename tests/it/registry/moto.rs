//! The moto S3 server the S3 variants of the tests share: started once per
//! test process (the launcher is `tests/support/moto.rs`, shared with the
//! library's tests), with one bucket; each test gets a key prefix of its
//! own. moto is stopped by PID when the test process ends, however it ends.

use std::path::Path;
use std::sync::OnceLock;

use futures::TryStreamExt;
use object_store::ObjectStore;
use regconf::model;

pub(crate) use crate::support::moto::Moto;

/// The bucket the tests share.
pub(crate) const BUCKET: &str = "regconf-test";

/// The moto server of this test process.
pub(crate) fn shared() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| Moto::start(BUCKET))
}

/// S3 settings for `bucket` on the moto at `port`, under `prefix`.
pub(crate) fn settings(port: u16, bucket: &str, prefix: &str) -> model::S3 {
    model::S3 {
        boto_bucket: Some(bucket.into()),
        storage_path: prefix.into(),
        s3_region: Some("us-east-1".into()),
        s3_access_key: Some("test".into()),
        s3_secret_key: Some("test".into()),
        s3_secure: false,
        s3_encrypt: true,
        boto_host: Some("127.0.0.1".into()),
        boto_port: Some(i64::from(port)),
        ..model::S3::default()
    }
}

/// S3 storage on the shared moto for the test directory `dir`: the prefix
/// is the directory's name, so a restart in the same directory finds the
/// same objects.
pub(crate) fn storage(dir: &Path) -> model::S3 {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("temp dir name")
        .trim_start_matches('.');
    settings(shared().port, BUCKET, &format!("/tests/{name}"))
}

/// Every key under the prefix of `s3`, relative to it, sorted.
pub(crate) fn keys(s3: &model::S3) -> Vec<String> {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!(
            "http://127.0.0.1:{}",
            s3.boto_port.expect("moto port")
        ))
        .with_allow_http(true)
        .with_bucket_name(s3.boto_bucket.clone().expect("bucket"))
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .expect("s3 client");
    let prefix = s3.storage_path.trim_matches('/').to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut keys: Vec<String> = rt.block_on(async {
        let p = object_store::path::Path::from(prefix.as_str());
        store
            .list(Some(&p))
            .map_ok(|m| {
                m.location
                    .as_ref()
                    .strip_prefix(&format!("{prefix}/"))
                    .unwrap_or(m.location.as_ref())
                    .to_owned()
            })
            .try_collect()
            .await
            .expect("list moto bucket")
    });
    keys.sort();
    keys
}
