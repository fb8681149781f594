//! TLS certificates judged by `validate` and `serve` (issue 16): validity
//! dates (an error when expired or not yet valid, a warning within 14 days
//! of the end), a key that is not the certificate's, and an X.509 v1
//! certificate named as such (it used to be reported as a key mismatch).
//! Certificates are made with rcgen, the v1 one with openssl (rcgen writes
//! only v3).

use std::path::Path;
use std::process::Command;

use crate::common::{regconf, root, snapshot};
use crate::harness::Server;

use super::settings::serve_refuses;

/// A self-signed certificate for 127.0.0.1 valid from `start` to `end`,
/// written as `<name>.pem` and `<name>-key.pem`.
fn cert(dir: &Path, name: &str, start: time::OffsetDateTime, end: time::OffsetDateTime) {
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.not_before = start;
    params.not_after = end;
    let key = rcgen::KeyPair::generate().unwrap();
    let c = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), c.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}-key.pem")), key.serialize_pem()).unwrap();
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is needed (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn validate(dir: &Path, cert: &str, key: &str) -> String {
    let yml = format!(
        "f:\n  storage: local\n  storage_path: ./store\n  tls:\n    certificate: ./{cert}\n    key: ./{key}\n"
    );
    std::fs::write(dir.join("v.yml"), yml).unwrap();
    let out = regconf(dir)
        .args(["validate", "v.yml", "--flavor", "f"])
        .output()
        .unwrap();
    format!(
        "$ regconf validate ({cert}, {key}) → {}\n{}{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn certificates_are_judged_by_validate_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let ymd = |y, m, d| rcgen::date_time_ymd(y, m, d);
    cert(d, "good", now - day, now + 300 * day);
    cert(d, "expired", ymd(2020, 1, 1), ymd(2021, 1, 1));
    cert(d, "future", ymd(2090, 1, 1), ymd(2091, 1, 1));
    cert(d, "soon", now - day, now + 5 * day + day / 2);
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "v1-key.pem",
            "-out",
            "v1.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    // Without extensions, `openssl x509 -req` writes a v1 certificate.
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "v1.csr",
            "-signkey",
            "v1-key.pem",
            "-out",
            "v1.pem",
            "-days",
            "30",
        ],
    );

    let good = validate(d, "good.pem", "good-key.pem");
    assert!(!good.contains("regconf::"), "{good}");
    let mut transcript = String::new();
    for (c, k) in [
        ("expired.pem", "expired-key.pem"),
        ("future.pem", "future-key.pem"),
        ("good.pem", "expired-key.pem"),
        ("v1.pem", "v1-key.pem"),
    ] {
        transcript.push_str(&validate(d, c, k));
        transcript.push('\n');
    }
    snapshot(
        &root().join("tests/snapshots/serve/tls-certificates.txt"),
        &transcript,
    );
    for code in [
        "regconf::tls::validity",
        "regconf::tls::key_mismatch",
        "regconf::tls::version",
    ] {
        assert!(transcript.contains(code), "{code}:\n{transcript}");
    }
    assert!(
        !transcript.contains("v1.pem` is not the key"),
        "{transcript}"
    );
    // Near its end: a warning (the date moves, so no snapshot), exit 0.
    let soon = validate(d, "soon.pem", "soon-key.pem");
    assert!(
        soon.contains("→ 0")
            && soon.contains("regconf::tls::expires_soon")
            && soon.contains("in 5"),
        "{soon}"
    );

    // serve refuses what validate calls an error, and says the same.
    let base = "f:\n  storage: local\n  storage_path: ./store\n";
    for (c, k, says) in [
        ("expired.pem", "expired-key.pem", "expired on 2021-01-01"),
        (
            "good.pem",
            "expired-key.pem",
            "is not the key of the certificate",
        ),
        ("v1.pem", "v1-key.pem", "X.509 v1 certificate"),
    ] {
        let err = serve_refuses(
            d,
            &format!("{base}  tls: {{certificate: ./{c}, key: ./{k}}}\n"),
        );
        assert!(err.contains(says), "{c}, {k}: {err}");
    }
    // ... and starts with a certificate near its end, logging a warning.
    let server = Server::start(
        d,
        &format!(
            "{base}  loglevel: info\n  tls: {{certificate: ./soon.pem, key: ./soon-key.pem}}\n"
        ),
    );
    let log = server.log();
    assert!(log.contains("soon.pem` expires on"), "{log}");
}
