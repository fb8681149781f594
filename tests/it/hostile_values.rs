//! Hostile configuration values (issue 12, continued beside
//! `hostile_config`): numbers out of their range, `--env-file` problems, and
//! the paths the registry opens, each shown as exact text.

use crate::common::{regconf, root, snapshot, transcript};

fn snap(name: &str, actual: &str) {
    snapshot(
        &root()
            .join("tests/snapshots/hostile")
            .join(format!("{name}.txt")),
        actual,
    );
}

/// Elliptics' timeouts, thread counts, groups and address family, and the
/// redis `db`, have ranges: out of them is refused with the range; the ends
/// are accepted.
#[test]
fn elliptics_and_redis_numbers_have_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("out.yml"),
        "dev:\n  storage: elliptics\n  elliptics_nodes: [a:1025:2]\n  elliptics_wait_timeout: 0\n  \
         elliptics_check_timeout: 86401\n  elliptics_io_thread_num: 99999999999999999999\n  \
         elliptics_net_thread_num: -1\n  elliptics_nonblocking_io_thread_num: 1025\n  \
         elliptics_groups: '[1, 4294967296]'\n  elliptics_addr_family: 65536\n  \
         cache: {host: h, db: -1}\n  cache_lru: {host: h, db: '2147483648'}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("ends.yml"),
        "dev:\n  storage: elliptics\n  elliptics_nodes: [a:1025:2]\n  elliptics_wait_timeout: 1\n  \
         elliptics_check_timeout: 86400\n  elliptics_io_thread_num: 1024\n  \
         elliptics_net_thread_num: 1\n  elliptics_nonblocking_io_thread_num: 1\n  \
         elliptics_groups: [0, 4294967295]\n  elliptics_addr_family: 65535\n  \
         cache: {host: h, db: 0}\n  cache_lru: {host: h, db: 2147483647}\n",
    )
    .unwrap();
    let out = regconf(d).args(["validate", "out.yml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    snap("elliptics-redis-ranges", &transcript(&out));
    let out = regconf(d)
        .args(["validate", "ends.yml", "--format", "json"])
        .output()
        .unwrap();
    let text = transcript(&out);
    assert!(!text.contains("regconf::value::range"), "{text}");
}

/// An `--env-file` that cannot be used is a problem with the data, exit 1,
/// like a configuration file that cannot be used; 2 stays for usage errors.
#[test]
fn env_file_problems_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("c.yml"),
        "dev:\n  loglevel: info\nprod:\n  loglevel: debug\n",
    )
    .unwrap();
    std::fs::write(d.join("bad.env"), "A=1\nnot a variable\n").unwrap();
    let mut all = String::new();
    for args in [
        &[
            "validate",
            "c.yml",
            "--flavor",
            "dev",
            "--env-file",
            "bad.env",
        ][..],
        &[
            "validate",
            "c.yml",
            "--flavor",
            "dev",
            "--env-file",
            "bad.env",
            "--format",
            "json",
        ],
        &[
            "env",
            "c.yml",
            "--flavor",
            "dev",
            "--env-file",
            "missing.env",
        ],
        &["diff", "dev", "prod", "c.yml", "--env-file", "bad.env"],
    ] {
        let out = regconf(d).args(args).output().unwrap();
        all.push_str(&format!(
            "$ regconf {}\n{}\n",
            args.join(" "),
            transcript(&out)
        ));
    }
    snap("env-file-exit", &all);
}

/// `storage_path` and the index database's path were expanded by the
/// registry from the process environment. They are expanded from the
/// environment the flavor was resolved in, like the auth and TLS paths:
/// `--env-file` counts for `validate`, a variable unset there is an error,
/// and `serve` creates its storage and index where the snapshot says.
#[test]
fn storage_and_index_paths_expand_from_the_resolved_environment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = "f:\n  storage_path: $RC_ROOT/store\n  search_backend: sqlalchemy\n  \
                  sqlalchemy_index_database: sqlite:///${RC_ROOT}/index.db\n";
    std::fs::write(d.join("config.yml"), config).unwrap();
    std::fs::write(d.join("vars.env"), format!("RC_ROOT={}\n", d.display())).unwrap();
    let validate = |extra: &[&str]| {
        let out = regconf(d)
            .args(["validate", "config.yml", "--flavor", "f"])
            .args(extra)
            .env_remove("RC_ROOT")
            .output()
            .unwrap();
        (out.status.code(), transcript(&out))
    };
    let (status, text) = validate(&["--env-file", "vars.env"]);
    assert_eq!(status, Some(0), "{text}");
    assert!(!text.contains("unset_variable"), "{text}");
    let (status, text) = validate(&[]);
    assert_eq!(status, Some(1), "{text}");
    snap("paths-unset-variable", &text);
    let root = d.join("root");
    let mut server =
        crate::harness::Server::start_with(d, config, &[("RC_ROOT", root.to_str().unwrap())]);
    let made = root.join("store").is_dir() && root.join("index.db").is_file();
    server.kill();
    assert!(made, "{}", server.log());
}

/// Human output draws at most 200 diagnostics in full, errors chosen first
/// (a flood of warnings cannot hide one), and counts the rest by code; JSON
/// lists every one.
#[test]
fn human_output_draws_200_and_counts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut text = String::from("dev:\n");
    for i in 0..250 {
        text.push_str(&format!("  unknown_{i}: {i}\n"));
    }
    text.push_str("  cache: {host: h, port: 70000}\n");
    std::fs::write(d.join("c.yml"), text).unwrap();
    let out = regconf(d).args(["validate", "c.yml"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("\nregconf::").count() + 1, 200, "{stderr}");
    assert!(
        stderr.contains("`cache.port` must be from 0 to 65535"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown key `unknown_198`"), "{stderr}");
    assert!(!stderr.contains("unknown key `unknown_199`"), "{stderr}");
    assert!(
        stderr.ends_with(
            "\n… and 51 more not drawn (200 are, errors first; `--format json` lists every one):\n  \
             51 warnings regconf::key::unknown\n\nc.yml: invalid (1 flavor checked; 1 error, 250 warnings)\n"
        ),
        "{stderr}"
    );
    let out = regconf(d)
        .args(["validate", "c.yml", "--format", "json"])
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 251);
}
