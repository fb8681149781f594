//! Issue 19: the corpus of files written the way docker-registry's users
//! wrote them (tests/fixtures/real-world: plugin drivers, 0.6-era keys, a
//! Heroku database URL, placeholders, module search back ends, switches as
//! numbers, a forgotten `_env:`). `validate FILE` and `validate FILE
//! --flavor F` for every flavor, with plausible variables (`<stem>.env`),
//! must exit 1 only where docker-registry 0.9.1 would fail or misuse a
//! value; `serve --check` exits 1 for what `serve` cannot run and 0 for
//! what it runs. Every run's output is a snapshot
//! (tests/fixtures/real-world/snapshots).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{fixture, regconf, snapshot, transcript};

/// One file: the exit status of `validate FILE`, and of `validate FILE
/// --flavor F` for each of its flavors, written by hand from what 0.9.1
/// did with it.
struct File {
    stem: &'static str,
    whole: i32,
    flavors: &'static [(&'static str, i32)],
}

const CORPUS: &[File] = &[
    File {
        stem: "bucket-variable",
        whole: 0,
        flavors: &[("common", 0), ("local", 0), ("s3", 0)],
    },
    File {
        stem: "compose-deploy",
        whole: 0,
        flavors: &[("common", 0), ("local", 0), ("s3", 0)],
    },
    File {
        stem: "driver-typo",
        whole: 0,
        flavors: &[("dev", 0)],
    },
    File {
        stem: "elliptics-oss",
        whole: 0,
        flavors: &[("common", 0), ("elliptics", 0), ("oss", 0)],
    },
    File {
        stem: "era-0.6",
        whole: 0,
        flavors: &[("common", 0), ("dev", 0), ("prod", 0), ("elliptics", 0)],
    },
    File {
        stem: "heroku",
        whole: 0,
        flavors: &[("common", 0), ("prod", 0)],
    },
    File {
        stem: "mail-at-top",
        whole: 0,
        flavors: &[("common", 0), ("prod", 0)],
    },
    File {
        stem: "mirror",
        whole: 0,
        flavors: &[("common", 0), ("mirror", 0)],
    },
    File {
        stem: "module-search",
        whole: 0,
        flavors: &[("common", 0), ("s3", 0), ("dev", 0)],
    },
    File {
        stem: "openstack",
        whole: 0,
        flavors: &[
            ("common", 0),
            ("swift", 0),
            ("glance", 0),
            ("glance-swift", 0),
        ],
    },
    // true problems: placeholders of the 0.6 sample in `prod`
    File {
        stem: "placeholders",
        whole: 1,
        flavors: &[("common", 0), ("dev", 0), ("prod", 1)],
    },
    File {
        stem: "plugin-drivers",
        whole: 0,
        flavors: &[
            ("common", 0),
            ("local", 0),
            ("gluster", 0),
            ("qiniu", 0),
            ("sina", 0),
            ("hdfs", 0),
            ("cassandra", 0),
            ("dev", 0),
        ],
    },
    // true problem: search on, no database, in `dev`
    File {
        stem: "search-no-database",
        whole: 1,
        flavors: &[("dev", 1), ("prod", 0)],
    },
    // true problem: `debug: 'false'` in `prod` is on
    File {
        stem: "switches",
        whole: 1,
        flavors: &[("common", 0), ("dev", 0), ("prod", 1)],
    },
    File {
        stem: "validate-bucket-typo",
        whole: 0,
        flavors: &[("prod", 0)],
    },
];

fn dir() -> PathBuf {
    fixture("real-world")
}

/// The top-level keys of a fixture (its flavors: every one is a mapping).
fn top_level_keys(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with([' ', '#']) && l.contains(':'))
        .map(|l| l.split(':').next().unwrap().to_owned())
        .collect()
}

/// The variables of `<stem>.env`, if it exists.
fn plausible_env(stem: &str) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(dir().join(format!("{stem}.env"))) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Runs `cmd`, returning its exit status and its transcript headed by the
/// command line.
fn run(cmd: &mut Command, shown: &str) -> (i32, String) {
    let out = cmd.output().expect("regconf runs");
    (
        out.status.code().unwrap_or(-1),
        format!("$ regconf {shown}\n{}\n", transcript(&out)),
    )
}

#[test]
fn validate_exits_1_only_for_true_problems() {
    let mut wrong = Vec::new();
    for f in CORPUS {
        let file = format!("{}.yml", f.stem);
        let listed: Vec<&str> = f.flavors.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            top_level_keys(&dir().join(&file)),
            listed,
            "the table lists every flavor of {file}"
        );
        let mut text = String::new();
        let (status, t) = run(
            regconf(&dir()).args(["validate", &file]),
            &format!("validate {file}"),
        );
        text.push_str(&t);
        if status != f.whole {
            wrong.push(format!("validate {file}: {status}, not {}", f.whole));
        }
        let env = plausible_env(f.stem);
        for (flavor, expected) in f.flavors {
            let mut cmd = regconf(&dir());
            cmd.args(["validate", &file, "--flavor", flavor]);
            cmd.envs(env.iter().map(|(k, v)| (k, v)));
            let (status, t) = run(&mut cmd, &format!("validate {file} --flavor {flavor}"));
            text.push_str(&t);
            if status != *expected {
                wrong.push(format!(
                    "validate {file} --flavor {flavor}: {status}, not {expected}"
                ));
            }
        }
        snapshot(
            &dir().join("snapshots").join(format!("{}.txt", f.stem)),
            &text,
        );
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// A variable the file reads with no default is still a true problem when
/// the flavor needs it and it is unset.
#[test]
fn an_unset_bucket_variable_is_still_an_error() {
    let out = regconf(&dir())
        .args(["validate", "bucket-variable.yml", "--flavor", "s3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(text.contains("regconf::storage::missing_key"), "{text}");
    // statically, a note that names the variable
    let out = regconf(&dir())
        .args(["validate", "bucket-variable.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stderr).unwrap();
    assert!(
        text.contains("`AWS_BUCKET`, which has no default"),
        "{text}"
    );
}

/// `serve --check`: 1 with the serve-capability diagnostics for what
/// `serve` lacks, 0 for what it runs (its storage and index in a temporary
/// directory), and nothing left listening.
#[test]
fn serve_check_separates_what_serve_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().display().to_string();
    let store = format!("storage_path={t}/store");
    let cases: &[(&str, &str, &[&str], i32, &str)] = &[
        (
            "plugin-drivers",
            "gluster",
            &[],
            1,
            "regconf::serve::unsupported_driver",
        ),
        ("plugin-drivers", "dev", &[], 0, ""),
        (
            "openstack",
            "glance",
            &[],
            1,
            "regconf::serve::unsupported_driver",
        ),
        (
            "openstack",
            "swift",
            &[],
            1,
            "regconf::serve::unsupported_driver",
        ),
        (
            "elliptics-oss",
            "elliptics",
            &[],
            1,
            "regconf::serve::unsupported_driver",
        ),
        (
            "elliptics-oss",
            "oss",
            &[],
            1,
            "regconf::serve::unsupported_driver",
        ),
        // a PostgreSQL URL: serve runs it (the check reads it, connects at start)
        ("heroku", "prod", &[], 0, ""),
        (
            "module-search",
            "s3",
            &[],
            1,
            "regconf::serve::search_backend",
        ),
        (
            "search-no-database",
            "dev",
            &[],
            1,
            "regconf::search::missing_database",
        ),
        ("bucket-variable", "s3", &[], 0, ""),
        ("bucket-variable", "local", &["--set", &store], 0, ""),
        ("era-0.6", "prod", &[], 0, ""),
        ("mirror", "mirror", &[], 0, ""),
        ("compose-deploy", "local", &[], 0, ""),
    ];
    let mut text = String::new();
    let mut wrong = Vec::new();
    for (stem, flavor, extra, expected, code) in cases {
        let file = dir().join(format!("{stem}.yml")).display().to_string();
        let mut cmd = regconf(tmp.path());
        cmd.args(["serve", "--check", &file, "--flavor", flavor])
            .args(*extra)
            .envs(plausible_env(stem))
            .env("STORAGE_PATH", format!("{t}/store"))
            .env(
                "SQLALCHEMY_INDEX_DATABASE",
                format!("sqlite:///{t}/index.db"),
            );
        let shown = format!("serve --check {stem}.yml --flavor {flavor}");
        let (status, out) = run(&mut cmd, &shown);
        let out = out
            .replace(&t, "[TMP]")
            .replace(&file, &format!("{stem}.yml"));
        if status != *expected || !out.contains(code) {
            wrong.push(format!("{shown}: {status}, not {expected} with {code}"));
        }
        text.push_str(&out);
    }
    snapshot(&dir().join("snapshots").join("serve-check.txt"), &text);
    assert!(wrong.is_empty(), "{wrong:#?}");
    // what serve opens was opened: the storage root and the index
    assert!(tmp.path().join("store").is_dir());
    assert!(tmp.path().join("index.db").is_file());
}

/// Types as the code that read each key accepted them: boto took a boolean
/// for its debug level, python-swiftclient `2.0` for version 2, `int()` a
/// string of digits, and an `is True` switch written `'false'` or `0` is
/// off, as meant; `'false'` for a truthiness switch is on, an error.
#[test]
fn types_follow_what_0_9_1_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("c.yml"),
        "prod:\n    storage: s3\n    boto_bucket: images\n    boto_host: 127.0.0.1\n    boto_debug: _env:AWS_DEBUG\n    \
         s3_secure: 'false'\n    s3_encrypt: 0\n    debug: 1\n    storage_redirect: 0\n    \
         mirroring: {tags_cache_ttl: '3600'}\n    email_exceptions: {smtp_secure: 1}\n\
         swift:\n    storage: swift\n    swift_authurl: http://keystone.internal\n    \
         swift_auth_version: '2.0'\n\
         bad:\n    storage: local\n    debug: 'false'\n",
    )
    .unwrap();
    let json = |flavor: &str, debug: &str| {
        let out = regconf(tmp.path())
            .args(["validate", "c.yml", "--flavor", flavor, "--format", "json"])
            .env("AWS_DEBUG", debug)
            .output()
            .unwrap();
        let diags: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let own: Vec<String> = diags
            .iter()
            .filter(|d| d["severity"] != "advice")
            .map(|d| d["code"].as_str().unwrap().to_owned())
            .collect();
        (out.status.code().unwrap(), own)
    };
    assert_eq!(json("prod", "false"), (0, vec![]));
    assert_eq!(json("prod", "2"), (0, vec![]));
    assert_eq!(
        json("prod", "verbose"),
        (1, vec!["regconf::type::mismatch".to_owned()])
    );
    assert_eq!(json("swift", "false"), (0, vec![]));
    assert_eq!(
        json("bad", "false"),
        (1, vec!["regconf::type::not_boolean".to_owned()])
    );
}
