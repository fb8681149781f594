//! The object-store driver against the conformance suite (in memory, on
//! moto, and on fake-gcs-server through our GCS JSON-API client), staged
//! parts, and the builders.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;

use super::*;
use crate::model;
use crate::registry::support::fake_gcs::FakeGcs;
use crate::registry::support::moto::Moto;

#[tokio::test]
async fn conformance_in_memory() {
    let mem = Arc::new(::object_store::memory::InMemory::new());
    let s = ObjectStorage::new(mem, None, "/registry/");
    crate::registry::storage::conformance::run(&s).await;
}

fn moto_config(moto: &Moto, prefix: &str) -> model::S3 {
    model::S3 {
        boto_bucket: Some("conformance".into()),
        storage_path: prefix.into(),
        boto_host: Some("127.0.0.1".into()),
        boto_port: Some(i64::from(moto.port)),
        s3_access_key: Some("test".into()),
        s3_secret_key: Some("test".into()),
        s3_secure: false,
        s3_encrypt: true,
        ..model::S3::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_s3_on_moto() {
    let moto = tokio::task::spawn_blocking(|| Moto::start("conformance"))
        .await
        .unwrap();
    let s = ObjectStorage::s3(&moto_config(&moto, "/registry")).unwrap();
    crate::registry::storage::conformance::run(&s).await;

    // Staged parts, a multipart part and a presigned URL on a real server.
    let s = ObjectStorage::s3(&moto_config(&moto, "other")).unwrap();
    let big = Bytes::from(vec![3u8; PART_SIZE + 10]);
    for chunk in [big.clone(), Bytes::from_static(b"tail")] {
        let mut w = s.writer("up/data", true).await.unwrap();
        w.write(chunk).await.unwrap();
        w.commit().await.unwrap();
    }
    assert_eq!(s.stat("up/data").await.unwrap().size, PART_SIZE as u64 + 14);
    s.rename("up/data", "blob").await.unwrap();
    let got: Vec<Bytes> = s
        .get("blob", Some(PART_SIZE as u64..PART_SIZE as u64 + 14))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got.concat(), [&[3u8; 10][..], b"tail"].concat());
    assert!(s.list("up").await.unwrap().is_empty());
    let url = s
        .redirect_url("blob", Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert!(
        url.starts_with(&format!("{}/conformance/other/blob?", moto.endpoint())),
        "{url}"
    );
}

/// Our JSON-API client (`gcs_json`) on fake-gcs-server: the conformance
/// suite, then staged parts and a resumable upload of several parts (with
/// a tail that is not a whole 256 KiB) on a real server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_gcs_json_on_fake_gcs_server() {
    let gcs = tokio::task::spawn_blocking(|| {
        let g = FakeGcs::start();
        g.create_bucket("conformance");
        g
    })
    .await
    .unwrap();
    let config = |prefix: &str| model::Gcs {
        boto_bucket: Some("conformance".into()),
        storage_path: prefix.into(),
        gs_endpoint: Some(gcs.endpoint()),
        ..model::Gcs::default()
    };
    let s = ObjectStorage::gcs(&config("/registry")).unwrap();
    crate::registry::storage::conformance::run(&s).await;

    let s = ObjectStorage::gcs(&config("other")).unwrap();
    let big = Bytes::from(
        (0..2 * PART_SIZE + 1000)
            .map(|i| i as u8)
            .collect::<Vec<_>>(),
    );
    for chunk in [big.clone(), Bytes::from_static(b"tail")] {
        let mut w = s.writer("up/data", true).await.unwrap();
        w.write(chunk).await.unwrap();
        w.commit().await.unwrap();
    }
    assert_eq!(s.stat("up/data").await.unwrap().size, big.len() as u64 + 4);
    s.rename("up/data", "blob").await.unwrap();
    assert_eq!(
        s.get_bytes("blob").await.unwrap(),
        [&big[..], b"tail"].concat()
    );
    let got: Vec<Bytes> = s
        .get("blob", Some(PART_SIZE as u64 - 3..PART_SIZE as u64 + 3))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got.concat(), &big[PART_SIZE - 3..PART_SIZE + 3]);
    assert!(s.list("up").await.unwrap().is_empty());
    // No credentials, so nothing to sign a redirect with.
    let url = s
        .redirect_url("blob", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(url, None);
    // The lease's conditional create.
    assert!(
        s.create_new("lease", Bytes::from_static(b"a"))
            .await
            .unwrap()
    );
    assert!(
        !s.create_new("lease", Bytes::from_static(b"b"))
            .await
            .unwrap()
    );
    assert_eq!(&s.get_bytes("lease").await.unwrap()[..], b"a");
}

#[tokio::test]
async fn staged_parts_compose() {
    let mem = Arc::new(::object_store::memory::InMemory::new());
    let s = ObjectStorage::new(mem.clone(), None, "p");
    for chunk in [&b"ab"[..], b"", b"cde", b"f"] {
        let mut w = s.writer("u/data", true).await.unwrap();
        w.write(Bytes::copy_from_slice(chunk)).await.unwrap();
        w.commit().await.unwrap();
    }
    assert_eq!(s.stat("u/data").await.unwrap().size, 6);
    assert_eq!(s.list("u").await.unwrap(), ["data"]);
    assert!(s.list("u/data").await.unwrap().is_empty());
    let got: Vec<Bytes> = s
        .get("u/data", Some(1..5))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(got.concat(), b"bcde");
    s.rename("u/data", "b/data").await.unwrap();
    assert_eq!(&s.get_bytes("b/data").await.unwrap()[..], b"abcdef");
    let left: Vec<_> = mem.list(None).try_collect().await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(matches!(
        s.stat("x/.parts/1").await,
        Err(StorageError::InvalidPath(_))
    ));
}

#[test]
fn builders_need_their_keys() {
    let e = ObjectStorage::s3(&model::S3::default()).unwrap_err();
    assert_eq!(e.to_string(), "`storage: s3` needs `boto_bucket`");
    let e = ObjectStorage::s3(&model::S3 {
        boto_bucket: Some("b".into()),
        s3_access_key: Some("k".into()),
        ..model::S3::default()
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "`storage: s3` needs `s3_secret_key`");
    let e = ObjectStorage::gcs(&model::Gcs {
        boto_bucket: Some("b".into()),
        gs_access_key: Some("k".into()),
        gs_endpoint: Some("http://127.0.0.1:9".into()),
        ..model::Gcs::default()
    })
    .unwrap_err();
    // Half a key pair is a mistake, not a request for the keyless JSON API.
    assert_eq!(e.to_string(), "`storage: gcs` needs `gs_secret_key`");
    let e = ObjectStorage::azure(&model::Azure::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "`storage: azureblob` needs `azure_storage_account_name`"
    );
    let s3 = ObjectStorage::s3(&model::S3 {
        boto_bucket: Some("b".into()),
        storage_path: "/registry/".into(),
        boto_host: Some("127.0.0.1".into()),
        boto_port: Some(9),
        s3_access_key: Some("k".into()),
        s3_secret_key: Some("s".into()),
        ..model::S3::default()
    })
    .unwrap();
    assert_eq!(s3.prefix, "registry");
}

/// The endpoint and scheme the S3 client would use, read from its settings
/// (no request is made): AWS over HTTPS by default, plain HTTP only when
/// `s3_secure` is false (the configuration makes it false by default only
/// for an endpoint on loopback).
#[test]
fn s3_endpoints_and_schemes() {
    use ::object_store::ClientConfigKey;
    use ::object_store::aws::AmazonS3ConfigKey as K;
    let setting = |c: &model::S3| {
        let b = super::build::s3_builder(c).unwrap();
        (
            b.get_config_value(&K::Endpoint),
            b.get_config_value(&K::Client(ClientConfigKey::AllowHttp)),
        )
    };
    let aws = model::S3 {
        boto_bucket: Some("b".into()),
        s3_secure: true,
        ..model::S3::default()
    };
    // No endpoint: object_store's own, https://s3.<region>.amazonaws.com.
    assert_eq!(setting(&aws), (None, Some("false".into())));
    let other = model::S3 {
        boto_host: Some("minio.example".into()),
        boto_port: Some(9000),
        ..aws.clone()
    };
    assert_eq!(
        setting(&other),
        (
            Some("https://minio.example:9000".into()),
            Some("false".into())
        )
    );
    let plain = model::S3 {
        s3_secure: false,
        ..aws
    };
    assert_eq!(
        setting(&plain),
        (
            Some("http://b.s3.us-east-1.amazonaws.com".into()),
            Some("true".into())
        )
    );
}
