//! The operator commands (`explain`, `env`, `diff`, `flavors`, `init`,
//! `completions`, `man`) and `--set`, as exact text; secrets never shown.
//! `export` is in export.rs.

use std::path::{Path, PathBuf};

use crate::common::{fixture, regconf, root, snapshot, transcript};

pub(crate) fn snap_path(name: &str) -> PathBuf {
    root()
        .join("tests/snapshots/operator")
        .join(format!("{name}.txt"))
}

/// Our sample files in the styles of docker-registry 0.9, 0.6 and the seed.
pub(crate) fn samples() -> PathBuf {
    fixture("samples")
}

/// Runs regconf in `dir` with `args` and `env`, returning the transcript.
pub(crate) fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = regconf(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    transcript(&cmd.output().expect("regconf runs"))
}

/// Secret values the tests set; none may appear in explain, env or diff
/// output.
const SECRETS: &[(&str, &str)] = &[
    ("AWS_KEY", "AKIA-test-access-key-4242"),
    ("AWS_SECRET", "s3cr3t-aws-value-4242"),
    ("CACHE_REDIS_PASSWORD", "redis-pass-4242"),
    ("SMTP_PASSWORD", "smtp-pass-4242"),
    ("BUGSNAG", "bugsnag-token-4242"),
    ("AZURE_STORAGE_ACCOUNT_KEY", "azure-key-4242"),
    ("AWS_S3_SECRET_KEY", "seed-secret-4242"),
    ("AWS_S3_ACCESS_KEY", "seed-access-4242"),
];

/// A flavor file with secrets written in it literally.
const LITERAL: &str = "\
common: &common
    loglevel: info
    s3_secret_key: literal-secret-4242
    cache:
        host: redis
        password: literal-redis-4242
dev:
    <<: *common
    storage: local
    mode: 0755
    debug: no
prod:
    <<: *common
    storage: s3
    boto_bucket: images
    s3_access_key: '_env:AWS_KEY:default-access-4242'
";

const LITERAL_SECRETS: &[&str] = &[
    "literal-secret-4242",
    "literal-redis-4242",
    "default-access-4242",
];

/// (snapshot name, directory, arguments, environment) for the explain, env
/// and diff snapshots, run with the secrets set.
fn masked_cases(tmp: &Path) -> Vec<(String, PathBuf, Vec<&'static str>)> {
    let s = samples();
    let b = tmp.to_path_buf();
    vec![
        (
            "explain-bundled-prod".into(),
            b.clone(),
            vec!["explain", "--flavor", "prod"],
        ),
        (
            "explain-bundled-dev-json".into(),
            b.clone(),
            vec!["explain", "--flavor", "dev", "--format", "json"],
        ),
        (
            "env-bundled-prod".into(),
            b.clone(),
            vec!["env", "--flavor", "prod"],
        ),
        (
            "env-bundled-azureblob-dotenv".into(),
            b.clone(),
            vec!["env", "--flavor", "azureblob", "--format", "dotenv"],
        ),
        (
            "diff-bundled-dev-prod".into(),
            b.clone(),
            vec!["diff", "dev", "prod"],
        ),
        (
            "diff-bundled-s3-ceph".into(),
            b.clone(),
            vec!["diff", "s3", "ceph-s3", "--format", "json"],
        ),
        (
            "explain-09-storage_path-prod".into(),
            s.clone(),
            vec![
                "explain",
                "storage_path",
                "style-0.9.yml",
                "--flavor",
                "prod",
            ],
        ),
        (
            "explain-09-secret-prod".into(),
            s.clone(),
            vec![
                "explain",
                "s3_secret_key",
                "style-0.9.yml",
                "--flavor",
                "prod",
            ],
        ),
        (
            "explain-09-prod-json".into(),
            s.clone(),
            vec![
                "explain",
                "style-0.9.yml",
                "--flavor",
                "prod",
                "--format",
                "json",
            ],
        ),
        (
            "env-09-prod-json".into(),
            s.clone(),
            vec![
                "env",
                "style-0.9.yml",
                "--flavor",
                "prod",
                "--format",
                "json",
            ],
        ),
        (
            "diff-09-test-prod".into(),
            s.clone(),
            vec!["diff", "test", "prod", "style-0.9.yml"],
        ),
        (
            "explain-06-prod".into(),
            s.clone(),
            vec!["explain", "style-0.6.yml", "--flavor", "prod"],
        ),
        (
            "env-06-prod".into(),
            s.clone(),
            vec!["env", "style-0.6.yml", "--flavor", "prod"],
        ),
        (
            "diff-06-dev-prod".into(),
            s.clone(),
            vec!["diff", "dev", "prod", "style-0.6.yml"],
        ),
        (
            "explain-seed-prod".into(),
            s.clone(),
            vec!["explain", "style-seed.yml", "--flavor", "prod"],
        ),
        (
            "env-seed-prod-dotenv".into(),
            s.clone(),
            vec![
                "env",
                "style-seed.yml",
                "--flavor",
                "prod",
                "--format",
                "dotenv",
            ],
        ),
        (
            "diff-seed-dev-prod".into(),
            s,
            vec!["diff", "dev", "prod", "style-seed.yml"],
        ),
        (
            "explain-literal-dev".into(),
            b.clone(),
            vec!["explain", "literal.yml", "--flavor", "dev"],
        ),
        (
            "explain-literal-prod-json".into(),
            b.clone(),
            vec![
                "explain",
                "literal.yml",
                "--flavor",
                "prod",
                "--format",
                "json",
            ],
        ),
        (
            "env-literal-prod".into(),
            b.clone(),
            vec!["env", "literal.yml", "--flavor", "prod"],
        ),
        (
            "diff-literal-dev-prod".into(),
            b,
            vec!["diff", "dev", "prod", "literal.yml"],
        ),
    ]
}

#[test]
fn explain_env_diff_snapshots_with_secrets_masked() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("literal.yml"), LITERAL).unwrap();
    let mut env: Vec<(&str, &str)> = SECRETS.to_vec();
    env.push(("AWS_BUCKET", "images"));
    env.push(("AWS_S3_BUCKET", "images"));
    for (name, dir, args) in masked_cases(tmp.path()) {
        let out = run(&dir, &args, &env);
        // Acceptance 4: no secret value in any output of explain, env or diff.
        for (_, secret) in SECRETS {
            assert!(
                !out.contains(secret),
                "{name} shows the secret `{secret}`:\n{out}"
            );
        }
        for secret in LITERAL_SECRETS {
            assert!(
                !out.contains(secret),
                "{name} shows the secret `{secret}`:\n{out}"
            );
        }
        snapshot(&snap_path(&name), &out);
    }
}

#[test]
fn no_snapshot_of_explain_env_or_diff_holds_a_secret() {
    let dir = root().join("tests/snapshots/operator");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("explain-") || name.starts_with("env-") || name.starts_with("diff-"))
        {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for secret in SECRETS
            .iter()
            .map(|(_, s)| *s)
            .chain(LITERAL_SECRETS.iter().copied())
        {
            assert!(!text.contains(secret), "{name} holds the secret `{secret}`");
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} snapshots checked");
}

#[test]
fn show_secrets_prints_them() {
    let out = run(
        &samples(),
        &[
            "explain",
            "s3_secret_key",
            "style-0.9.yml",
            "--flavor",
            "prod",
            "--show-secrets",
        ],
        SECRETS,
    );
    assert!(out.contains("s3cr3t-aws-value-4242"), "{out}");
}

#[test]
fn explain_a_value_from_a_set_variable() {
    let out = run(
        &samples(),
        &["explain", "loglevel", "style-0.9.yml", "--flavor", "prod"],
        &[("LOGLEVEL", "warning")],
    );
    snapshot(&snap_path("explain-09-loglevel-set"), &out);
    let out = run(
        &samples(),
        &[
            "explain",
            "cors.headers",
            "style-0.9.yml",
            "--flavor",
            "dev",
        ],
        &[("CORS_HEADERS", "[Content-Type, X-Trace]")],
    );
    snapshot(&snap_path("explain-09-cors-headers-set"), &out);
}

#[test]
fn explain_notes_yaml_typing_and_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("literal.yml"), LITERAL).unwrap();
    let out = run(
        tmp.path(),
        &["explain", "mode", "literal.yml", "--flavor", "dev"],
        &[],
    );
    snapshot(&snap_path("explain-yaml11-octal"), &out);
    let out = run(
        tmp.path(),
        &[
            "explain",
            "--flavor",
            "dev",
            "--set",
            "cache.port=0755",
            "--set",
            "debug=no",
            "--set",
            "cors={origins: '*'}",
        ],
        &[],
    );
    snapshot(&snap_path("explain-set-overrides"), &out);
}

#[test]
fn set_overrides_render_validate_and_bad_values() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        tmp.path(),
        &[
            "render",
            "--flavor",
            "prod",
            "--format",
            "json",
            "--set",
            "boto_bucket=images",
            "--set",
            "cache.host=redis",
            "--set",
            "cache.port=6380",
            "--set",
            "debug=yes",
            "--set",
            "cors={origins: [a.example, b.example]}",
        ],
        &[],
    );
    snapshot(&snap_path("render-set"), &out);
    // The last --set of a key wins.
    let out = run(
        tmp.path(),
        &[
            "render",
            "--flavor",
            "dev",
            "--set",
            "loglevel=info",
            "--set",
            "loglevel=error",
        ],
        &[],
    );
    assert!(out.contains("loglevel: error\n"), "{out}");
    let out = run(
        tmp.path(),
        &[
            "validate",
            "--flavor",
            "prod",
            "--set",
            "boto_bucket=images",
        ],
        &[],
    );
    snapshot(&snap_path("validate-set"), &out);
    let out = run(
        tmp.path(),
        &[
            "render",
            "--set",
            "nokey",
            "--set",
            "a..b=1",
            "--set",
            "x=[unclosed",
        ],
        &[],
    );
    snapshot(&snap_path("set-bad"), &out);
    assert!(out.contains("regconf::cli::bad_set"));
}

#[test]
fn explain_unknown_key() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(
        tmp.path(),
        &["explain", "storage_pth", "--flavor", "prod"],
        &[],
    );
    snapshot(&snap_path("explain-unknown-key"), &out);
    assert!(out.contains("regconf::explain::unknown_key"));
}

#[test]
fn flavors_trees() {
    let tmp = tempfile::tempdir().unwrap();
    snapshot(
        &snap_path("flavors-bundled"),
        &run(tmp.path(), &["flavors"], &[]),
    );
    for (name, file) in [
        ("flavors-09", "style-0.9.yml"),
        ("flavors-06", "style-0.6.yml"),
        ("flavors-seed", "style-seed.yml"),
    ] {
        snapshot(&snap_path(name), &run(&samples(), &["flavors", file], &[]));
    }
    snapshot(
        &snap_path("flavors-09-json"),
        &run(
            &samples(),
            &["flavors", "style-0.9.yml", "--format", "json"],
            &[],
        ),
    );
    std::fs::write(
        tmp.path().join("multi.yml"),
        "base: &base\n  loglevel: info\nextra: &x\n  debug: true\nboth:\n  <<: [*base, *x]\nfromvar: _env:CONF\n",
    )
    .unwrap();
    snapshot(
        &snap_path("flavors-multi"),
        &run(tmp.path(), &["flavors", "multi.yml"], &[]),
    );
}

#[test]
fn env_check_fails_naming_each_missing_variable_then_passes() {
    let tmp = tempfile::tempdir().unwrap();
    // The bundled prod (s3) needs a bucket; azureblob an account and a key.
    let out = run(tmp.path(), &["env", "--check", "--flavor", "prod"], &[]);
    snapshot(&snap_path("env-check-bundled-prod-fails"), &out);
    assert!(out.starts_with("status: 1\n"), "{out}");
    assert!(out.contains("`AWS_BUCKET` is not set"), "{out}");
    let out = run(
        tmp.path(),
        &["env", "--check", "--flavor", "azureblob"],
        &[],
    );
    snapshot(&snap_path("env-check-bundled-azureblob-fails"), &out);
    assert!(out.starts_with("status: 1\n"), "{out}");
    for name in ["AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY"] {
        assert!(out.contains(&format!("`{name}` is not set")), "{out}");
    }
    let out = run(
        tmp.path(),
        &["env", "--check", "--flavor", "azureblob"],
        &[
            ("AZURE_STORAGE_ACCOUNT_NAME", "acct"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "a2V5"),
        ],
    );
    snapshot(&snap_path("env-check-bundled-azureblob-passes"), &out);
    assert!(out.starts_with("status: 0\n"), "{out}");
    for (file, flavor, var) in [
        ("style-0.9.yml", "prod", "AWS_BUCKET"),
        ("style-seed.yml", "prod", "AWS_S3_BUCKET"),
    ] {
        let out = run(
            &samples(),
            &["env", file, "--check", "--flavor", flavor],
            &[],
        );
        assert!(
            out.starts_with("status: 1\n") && out.contains(&format!("`{var}` is not set")),
            "{out}"
        );
        let out = run(
            &samples(),
            &["env", file, "--check", "--flavor", flavor],
            &[(var, "images")],
        );
        assert!(out.starts_with("status: 0\n"), "{out}");
    }
    // An env file counts as the environment.
    std::fs::write(tmp.path().join("prod.env"), "AWS_BUCKET=images\n").unwrap();
    let out = run(
        tmp.path(),
        &[
            "env",
            "--check",
            "--flavor",
            "prod",
            "--env-file",
            "prod.env",
        ],
        &[],
    );
    assert!(out.starts_with("status: 0\n"), "{out}");
}

#[test]
fn diff_one_flavor_under_two_env_files() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("a.env"),
        "AWS_BUCKET=images\nLOGLEVEL=info\n",
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("b.env"),
        "AWS_BUCKET=images-staging\nLOGLEVEL=debug\nAWS_SECRET=s3cr3t-aws-value-4242\n",
    )
    .unwrap();
    let out = run(
        tmp.path(),
        &["diff", "prod", "--env-file", "a.env", "--env-file", "b.env"],
        &[],
    );
    assert!(!out.contains("s3cr3t-aws-value-4242"), "{out}");
    snapshot(&snap_path("diff-bundled-prod-env-files"), &out);
    let out = run(tmp.path(), &["diff", "dev", "dev"], &[]);
    assert!(out.starts_with("status: 2\n"), "{out}");
}

#[test]
fn init_writes_the_bundled_file_and_never_overwrites_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(tmp.path(), &["init"], &[]);
    snapshot(&snap_path("init"), &out);
    let written = std::fs::read_to_string(tmp.path().join("config.yml")).unwrap();
    assert!(written.starts_with("# yaml-language-server: $schema=regconf-file.schema.json\n"));
    // The copy is the bundled file apart from the schema line.
    let bundled = std::fs::read_to_string(root().join("flavors/default.yml")).unwrap();
    assert_eq!(
        written
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>(),
        bundled
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
    );
    // It validates, and renders as the bundled default does.
    let out = run(tmp.path(), &["validate", "config.yml"], &[]);
    assert!(out.starts_with("status: 0\n"), "{out}");
    std::fs::write(tmp.path().join("config.yml"), "dev: {storage: local}\n").unwrap();
    let out = run(tmp.path(), &["init"], &[]);
    snapshot(&snap_path("init-exists"), &out);
    assert!(out.contains("regconf::file::exists"));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("config.yml")).unwrap(),
        "dev: {storage: local}\n"
    );
    let out = run(tmp.path(), &["init", "--force", "config.yml"], &[]);
    assert!(out.starts_with("status: 0\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("config.yml")).unwrap(),
        written
    );
    // No temporary file is left behind, and a bad directory writes nothing.
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["config.yml".to_owned()]);
    let out = run(tmp.path(), &["init", "missing-dir/config.yml"], &[]);
    snapshot(&snap_path("init-unwritable"), &out);
    assert!(out.contains("regconf::file::unwritable"));
    assert!(!tmp.path().join("missing-dir").exists());
}

#[test]
fn completions_and_man() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = regconf(tmp.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let text = String::from_utf8(out.stdout).unwrap();
        for cmd in ["explain", "flavors", "export", "completions"] {
            assert!(text.contains(cmd), "{shell} completion lacks `{cmd}`");
        }
    }
    let out = regconf(tmp.path()).arg("man").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(".ie \\n(.g .ds Aq \\(aq") || text.contains(".TH regconf 1"),
        "{text}"
    );
    for cmd in ["explain", "diff", "init", "export", "man"] {
        assert!(text.contains(cmd), "man page lacks `{cmd}`");
    }
}

// Acceptance 3: the export loads in the real distribution registry.
