//! The configuration side: `auth:`, `tls:` and `limits:` settings are
//! checked, and a configuration can neither run code nor make regconf open
//! files it was not told to.

use std::path::Path;
use std::process::Command;

use crate::common::regconf;
use crate::harness::files_under;

use super::{htpasswd, self_signed};

fn validate(dir: &Path, yml: &str) -> String {
    std::fs::write(dir.join("v.yml"), yml).unwrap();
    let out = regconf(dir)
        .args(["validate", "v.yml", "--flavor", "f"])
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn auth_tls_and_limits_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    htpasswd(d);
    self_signed(d);
    std::fs::write(d.join("md5"), "alice:$apr1$xyz$0123456789abcdefghijkl\n").unwrap();
    std::fs::write(d.join("notpem"), "hello\n").unwrap();
    let base = "f:\n  storage: local\n  storage_path: ./store\n";
    // All good: no diagnostics about these sections.
    let ok = validate(
        d,
        &format!(
            "{base}  auth: {{htpasswd: ./htpasswd, readonly: [bob]}}\n  tls: {{certificate: ./cert.pem, key: ./key.pem}}\n  limits: {{max_manifest_bytes: 1048576, max_connections: 8}}\n"
        ),
    );
    assert!(!ok.contains("regconf::"), "{ok}");
    let cases: &[(&str, &str)] = &[
        ("  auth: {htpasswd: ./missing}\n", "regconf::auth::htpasswd"),
        ("  auth: {htpasswd: ./md5}\n", "regconf::auth::htpasswd"),
        (
            "  auth: {htpasswd: ./htpasswd, readonly: [carol]}\n",
            "regconf::auth::readonly_unknown",
        ),
        (
            "  auth: {readonly: [bob]}\n",
            "regconf::auth::readonly_without_htpasswd",
        ),
        ("  auth: {htpasswd: [a, b]}\n", "regconf::type::mismatch"),
        (
            "  tls: {certificate: ./cert.pem}\n",
            "regconf::tls::incomplete",
        ),
        (
            "  tls: {certificate: ./notpem, key: ./key.pem}\n",
            "regconf::tls::file",
        ),
        (
            "  tls: {certificate: ./cert.pem, key: ./cert.pem}\n",
            "regconf::tls::file",
        ),
        (
            "  tls: {certificate: ./cert.pem, key: ./nokey.pem}\n",
            "regconf::tls::file",
        ),
        (
            "  limits: {max_header_bytes: 100}\n",
            "regconf::value::limit",
        ),
        ("  limits: {max_connections: 0}\n", "regconf::value::limit"),
        (
            "  limits: {idle_timeout_secs: soon}\n",
            "regconf::type::mismatch",
        ),
        ("  limits: {max_body: 1}\n", "regconf::key::unknown"),
    ];
    for (section, code) in cases {
        let out = validate(d, &format!("{base}{section}"));
        assert!(out.contains(code), "{section} → expected {code}:\n{out}");
        // The htpasswd hash and key material are never shown.
        assert!(
            !out.contains("$apr1$") && !out.contains("PRIVATE KEY-----\nM"),
            "{out}"
        );
    }
    // serve refuses to start on the same problems, naming the setting.
    let err = serve_refuses(d, &format!("{base}  limits: {{max_connections: 0}}\n"));
    assert!(
        err.contains("regconf::key::unknown") || err.contains("limits"),
        "{err}"
    );
    let err = serve_refuses(d, &format!("{base}  auth: {{htpasswd: ./md5}}\n"));
    assert!(
        err.contains("regconf::auth::htpasswd") && err.contains("line 1"),
        "{err}"
    );
    assert!(!err.contains("$apr1$"), "{err}");
}

/// Nothing in a configuration file or a variable makes regconf run a
/// program or open a file other than the configuration (and the privileged
/// key it is told about): checked under strace.
#[test]
fn config_cannot_run_code_or_open_other_files() {
    if Command::new("strace").arg("-V").output().is_err() {
        panic!("strace is needed (apt-get install strace)");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("secret.txt"), "top secret\n").unwrap();
    let yml = r#"
common: &c
  loglevel: _env:LOGLEVEL:info
  boto_bucket: _env:BUCKET:$(touch pwned-env)
  issue: !!python/object/apply:os.system ["touch pwned-python"]
  search_backend: !!python/name:os.system
  storage_path: !!binary aGVsbG8=
  privileged_key: ./key.pub
  secret: !include secret.txt
  other: <%= File.read("secret.txt") %>
  cmd: "`touch pwned-backtick`"
  ref: &r {a: *c}
f:
  <<: *c
  storage: local
  sqlalchemy_index_database: sqlite:////etc/passwd
  auth: {htpasswd: ""}
"#;
    std::fs::write(d.join("cfg.yml"), yml).unwrap();
    std::fs::write(d.join("key.pub"), "not read, only checked\n").unwrap();
    for args in [
        vec!["render", "cfg.yml", "--flavor", "f"],
        vec!["validate", "cfg.yml"],
        vec!["validate", "cfg.yml", "--flavor", "f"],
    ] {
        let out = Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=openat,open,execve,execveat,connect",
                "-o",
                "trace.txt",
            ])
            .arg(env!("CARGO_BIN_EXE_regconf"))
            .args(&args)
            .current_dir(d)
            .env_clear()
            .env("BUCKET", "$(touch pwned-var) `touch pwned-var2`")
            .env(
                "LOGLEVEL",
                "!!python/object/apply:os.system [\"touch pwned-level\"]",
            )
            .output()
            .unwrap();
        let trace = std::fs::read_to_string(d.join("trace.txt")).unwrap();
        let mut execs = 0;
        for line in trace.lines() {
            if line.contains("execve(") {
                execs += 1;
                assert!(
                    line.contains(env!("CARGO_BIN_EXE_regconf")),
                    "{args:?} ran {line}"
                );
            }
            assert!(!line.contains("connect("), "{args:?} connected: {line}");
            if let Some(rest) = line.split("open").nth(1) {
                let path = rest.split('"').nth(1).unwrap_or("");
                let allowed = path.starts_with("/proc/")
                    || path.starts_with("/sys/")
                    || path.starts_with("/etc/ld.so")
                    || path.starts_with("/lib")
                    || path.starts_with("/usr/lib")
                    || path.contains("/glibc-hwcaps/")
                    || path == "/dev/null"
                    || path == "/dev/urandom"
                    || path == "cfg.yml"
                    || path.ends_with("/cfg.yml");
                assert!(
                    allowed,
                    "{args:?} opened `{path}`: {line}\n(status {:?})",
                    out.status
                );
                assert!(
                    !path.contains("secret.txt") && !path.contains("passwd"),
                    "{line}"
                );
            }
        }
        assert_eq!(execs, 1, "{args:?}: only regconf itself is executed");
        for f in files_under(d) {
            assert!(
                !f.to_string_lossy().contains("pwned"),
                "{args:?} created {}",
                f.display()
            );
        }
    }
}

/// Runs `regconf serve` on `config` (flavor `f`) and returns its stderr,
/// checking that it refused to start.
pub(super) fn serve_refuses(d: &std::path::Path, config: &str) -> String {
    std::fs::write(d.join("v.yml"), config).unwrap();
    let out = regconf(d)
        .args([
            "serve",
            "v.yml",
            "--flavor",
            "f",
            "--listen",
            &format!("127.0.0.1:{}", crate::harness::free_port()),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}

/// Towards real clouds, HTTPS unless written otherwise (issue 16): an S3 or
/// GCS flavor without `s3_secure`/`gs_secure` is HTTPS (docker-registry's
/// `is True` made it plain HTTP), an endpoint on loopback stays plain HTTP,
/// and `validate --flavor` warns when `false` is written for a host off
/// this machine. Read from `export` and `validate`: nothing is contacted.
#[test]
fn clouds_default_to_https() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let export = |flavor: &str| {
        let out = regconf(d)
            .args([
                "export",
                "v.yml",
                "--flavor",
                flavor,
                "--to",
                "distribution",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    std::fs::write(
        d.join("v.yml"),
        "aws:\n  storage: s3\n  boto_bucket: b\n\
         other:\n  storage: s3\n  boto_bucket: b\n  boto_host: minio.example\n\
         local:\n  storage: s3\n  boto_bucket: b\n  boto_host: 127.0.0.1\n  boto_port: 9000\n\
         explicit:\n  storage: s3\n  boto_bucket: b\n  boto_host: minio.example\n  s3_secure: false\n",
    )
    .unwrap();
    assert!(export("aws").contains("secure: true"), "{}", export("aws"));
    let other = export("other");
    assert!(
        other.contains("https://minio.example") && other.contains("secure: true"),
        "{other}"
    );
    let local = export("local");
    assert!(
        local.contains("http://127.0.0.1:9000") && local.contains("secure: false"),
        "{local}"
    );
    let explicit = export("explicit");
    assert!(explicit.contains("secure: false"), "{explicit}");

    let check = |yml: &str| {
        std::fs::write(d.join("w.yml"), yml).unwrap();
        let out = regconf(d)
            .args(["validate", "w.yml", "--flavor", "f"])
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let warned = check(
        "f:\n  storage: s3\n  boto_bucket: b\n  boto_host: minio.example\n  s3_secure: false\n",
    );
    assert!(
        warned.contains("regconf::storage::plain_http") && warned.contains("`minio.example`"),
        "{warned}"
    );
    let warned = check("f:\n  storage: gcs\n  boto_bucket: b\n  gs_secure: false\n");
    assert!(warned.contains("regconf::storage::plain_http"), "{warned}");
    for quiet in [
        "f:\n  storage: s3\n  boto_bucket: b\n  boto_host: localhost\n  s3_secure: false\n",
        "f:\n  storage: s3\n  boto_bucket: b\n",
    ] {
        let out = check(quiet);
        assert!(!out.contains("plain_http"), "{out}");
    }
}
