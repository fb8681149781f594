//! `/v1/search` answers exactly as docker-registry did, and the index
//! survives a restart and is rebuilt from storage when it is lost.

use super::{config, curl, push_image, start, start_with};

const EXPECTED: &str = r#"{"num_results": 1, "query": "test", "results": [{"description": "", "name": "library/test"}]}"#;

#[test]
fn search_after_push_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let reg = start(d);
    push_image(&reg, d, "test", "latest", 1);
    push_image(&reg, d, "other/thing", "latest", 2);

    let r = curl(&[&reg.url("/v1/search?q=test")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), EXPECTED);
    assert_eq!(
        curl(&[&reg.url("/v1/search?q=")]).text(),
        r#"{"num_results": 2, "query": "", "results": [{"description": "", "name": "other/thing"}, {"description": "", "name": "library/test"}]}"#
    );
    assert_eq!(
        curl(&[&reg.url("/v1/search?q=nothing")]).text(),
        r#"{"num_results": 0, "query": "nothing", "results": []}"#
    );
    reg.stop();

    // Same storage, same index file.
    let reg = start(d);
    assert_eq!(curl(&[&reg.url("/v1/search?q=test")]).text(), EXPECTED);
    reg.stop();

    // Same storage, a fresh index file: rebuilt at start.
    let mut c = config(d);
    c.sqlalchemy_index_database = Some(format!("sqlite:///{}", d.join("fresh.db").display()));
    let reg = start_with(c);
    assert_eq!(curl(&[&reg.url("/v1/search?q=test")]).text(), EXPECTED);

    // Deleting the only manifest takes the repository out of the index.
    let (_, digest) = push_image(&reg, d, "gone", "v", 3);
    assert!(
        curl(&[&reg.url("/v1/search?q=gone")])
            .text()
            .contains("library/gone")
    );
    let del = curl(&[
        "-X",
        "DELETE",
        &reg.url(&format!("/v2/gone/manifests/{digest}")),
    ]);
    assert_eq!(del.status, 202);
    assert_eq!(
        curl(&[&reg.url("/v1/search?q=gone")]).text(),
        r#"{"num_results": 0, "query": "gone", "results": []}"#
    );
}

#[test]
fn unsupported_index_url_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = config(dir.path());
    c.sqlalchemy_index_database = Some("mysql://user@localhost/registry".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let err = rt
        .block_on(regconf::registry::bind(
            &c,
            regconf::registry::ServeOptions {
                listen: "127.0.0.1:0".parse().expect("addr"),
            },
        ))
        .err()
        .expect("a mysql url must be refused");
    assert!(
        err.to_string()
            .contains("`mysql://user@localhost/registry`"),
        "{err}"
    );
}

also_on_s3!(
    search_after_push_and_restart,
    unsupported_index_url_is_refused_at_start
);
