//! Tests of the filesystem driver.

/// Every directory `create_dirs` makes has its entry synced: strace
/// sees an `fsync` of each parent, the ancestor that existed included.
#[test]
fn new_directories_are_synced_in_their_parents() {
    if std::env::var_os("REGCONF_STRACED").is_some() {
        let root = std::path::PathBuf::from(std::env::var_os("REGCONF_STRACED").unwrap());
        super::create_dirs(&root.join("a/b/c")).unwrap();
        super::create_dirs(&root.join("a/b/c")).unwrap(); // exists: no sync
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.log");
    let me = std::env::current_exe().unwrap();
    let out = std::process::Command::new("strace")
        .args(["-f", "-e", "trace=openat,fsync", "-o"])
        .arg(&log)
        .arg(me)
        .args([
            "--exact",
            "registry::storage::filesystem::tests::new_directories_are_synced_in_their_parents",
            "--test-threads=1",
        ])
        .env("REGCONF_STRACED", dir.path())
        .output()
        .expect("strace is needed (apt-get install strace)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = std::fs::read_to_string(&log).unwrap();
    // fd of each opened directory, then whether that fd was fsynced.
    let root = dir.path().display().to_string();
    let synced = |path: &str| {
        let open = trace.lines().find_map(|l| {
            let l = l.split_once(' ').map_or(l, |(_, rest)| rest).trim();
            (l.starts_with("openat(") && l.contains(&format!("\"{path}\"")))
                .then(|| l.rsplit("= ").next().unwrap().trim().to_owned())
        });
        open.is_some_and(|fd| trace.contains(&format!("fsync({fd})")))
    };
    for parent in [root.clone(), format!("{root}/a"), format!("{root}/a/b")] {
        assert!(synced(&parent), "no fsync of `{parent}`:\n{trace}");
    }
    let fsyncs = trace.lines().filter(|l| l.contains("fsync(")).count();
    assert_eq!(fsyncs, 3, "the second call synced again:\n{trace}");
}

#[tokio::test]
async fn conformance() {
    let dir = tempfile::tempdir().unwrap();
    let fs = super::Filesystem::new(dir.path().to_str().unwrap()).unwrap();
    crate::registry::storage::conformance::run(&fs).await;
}
