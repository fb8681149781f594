//! Hostile configuration input (issue 12): whatever the file or the
//! environment holds, every command ends within seconds with an answer or a
//! diagnostic, never a signal.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{regconf, root, snapshot, transcript};

/// Runs `cmd`, killing it and failing the test when it takes longer than
/// `limit`; a command that ends by a signal fails the test too.
fn bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // drain the pipes beside the wait, so a large answer cannot block it
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut b).unwrap();
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut b).unwrap();
        b
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{cmd:?} did not end within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    assert!(
        status.code().is_some(),
        "{cmd:?} ended by a signal:\n{}",
        transcript(&output)
    );
    output
}

/// Every command that loads a flavor, with its arguments for flavor `dev`
/// of `config.yml`.
fn every_command() -> Vec<Vec<&'static str>> {
    vec![
        vec!["render", "config.yml", "--flavor", "dev"],
        vec!["validate", "config.yml", "--flavor", "dev"],
        vec!["explain", "a", "config.yml", "--flavor", "dev"],
        vec!["env", "config.yml", "--flavor", "dev"],
        vec!["diff", "dev", "prod", "config.yml"],
        vec![
            "export",
            "--to",
            "distribution",
            "config.yml",
            "--flavor",
            "dev",
        ],
        vec![
            "serve",
            "config.yml",
            "--flavor",
            "dev",
            "--listen",
            "127.0.0.1:0",
        ],
    ]
}

fn snap(name: &str, actual: &str) {
    snapshot(
        &root()
            .join("tests/snapshots/hostile")
            .join(format!("{name}.txt")),
        actual,
    );
}

fn run(dir: &Path, args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = regconf(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    bounded(cmd, Duration::from_secs(20))
}

/// A variable whose value names itself, directly or through another, made
/// 0.9.1 fail with Python's recursion error and regconf overflow its stack.
/// Now every command names the loop.
#[test]
fn variables_that_name_each_other_are_a_diagnostic_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yml"),
        "dev:\n  a: _env:FOO\nprod:\n  a: 1\n",
    )
    .unwrap();
    let envs: [&[(&str, &str)]; 2] = [
        &[("FOO", "k: _env:FOO")],
        &[("FOO", "k: _env:BAR"), ("BAR", "j: {x: _env:FOO}")],
    ];
    for env in envs {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        refused_in(dir.path(), &env, "regconf::env::cycle", every_command());
    }
    let out = run(
        dir.path(),
        &["render", "config.yml", "--flavor", "dev"],
        &[
            ("FOO".to_owned(), "k: _env:BAR".to_owned()),
            ("BAR".to_owned(), "j: {x: _env:FOO}".to_owned()),
        ],
    );
    snap("env-cycle", &transcript(&out));
}

/// Variables whose values are deeply nested mappings, each naming the
/// next: the walk stops at a depth limit with a diagnostic.
#[test]
fn deeply_nested_variables_stop_at_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yml"),
        "dev:\n  a: _env:V0\nprod:\n  a: 1\n",
    )
    .unwrap();
    let level =
        |i: usize, n: usize| format!("{}_env:V{}{}", "{a: ".repeat(n), i + 1, "}".repeat(n));
    let deep: Vec<(String, String)> = (0..70).map(|i| (format!("V{i}"), level(i, 250))).collect();
    refused_in(dir.path(), &deep, "regconf::env::too_deep", every_command());
    let out = run(
        dir.path(),
        &["render", "config.yml", "--flavor", "dev"],
        &deep,
    );
    snap("env-too_deep", &transcript(&out));
    // within the limit the same shape resolves: two levels of 250
    let two: Vec<(String, String)> = (0..2).map(|i| (format!("V{i}"), level(i, 250))).collect();
    let out = run(
        dir.path(),
        &[
            "render",
            "--format",
            "json",
            "config.yml",
            "--flavor",
            "dev",
        ],
        &two,
    );
    assert_eq!(out.status.code(), Some(0), "{}", transcript(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("{\"a\":").count(), 501, "{text:.200}");
}

/// Runs every command on `text` as `config.yml`: each ends with status 1
/// and a diagnostic naming `code`; returns `validate`'s transcript.
fn every_command_refuses(text: &[u8], code: &str) -> String {
    commands_refuse(text, code, every_command())
}

/// [`every_command_refuses`] for the commands `commands`.
fn commands_refuse(text: &[u8], code: &str, commands: Vec<Vec<&str>>) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yml"), text).unwrap();
    refused_in(dir.path(), &[], code, commands)
}

/// Runs `commands` on `config.yml` in `dir` under `env`: each ends with
/// status 1 and a diagnostic naming `code`; returns `validate`'s transcript.
fn refused_in(
    dir: &Path,
    env: &[(String, String)],
    code: &str,
    commands: Vec<Vec<&str>>,
) -> String {
    let mut validate = String::new();
    for args in commands {
        let out = run(dir, &args, env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}:\n{stderr:.4000}");
        assert!(
            stderr.contains(code),
            "{args:?}: no {code}:\n{stderr:.4000}"
        );
        if args[0] == "validate" {
            validate = transcript(&out);
        }
    }
    validate
}

/// miette pads to a label's column with a width argument, which panics past
/// 65,535 columns: a label far along a line made every command exit 101.
/// Long lines are now cut to a window around the label.
#[test]
fn labels_far_along_a_line_are_shown_in_a_window() {
    let prod = "\nprod:\n  a: 1\n";
    let syntax = format!("dev:\n  a: {} [: {prod}", "x".repeat(70_000));
    let text = every_command_refuses(syntax.as_bytes(), "regconf::yaml::syntax");
    snap("long-line-syntax", &text);
    let key = format!("dev:\n  {}: 1{prod}", "k".repeat(10_000_000));
    every_command_refuses(key.as_bytes(), "regconf::yaml::syntax");
    let seq = format!("dev:\n  a: [{}]]{prod}", "1, ".repeat(1_000_000));
    every_command_refuses(seq.as_bytes(), "regconf::yaml::syntax");
    // a label on a valid line, past the limit, with text on both sides
    let flow = format!(
        "dev: {{storage_path: '{}', standalone: maybe, loglevel: info}}{prod}",
        "x".repeat(70_000)
    );
    // only the commands that check types refuse it; the others must simply
    // end without a signal
    let checking = every_command()
        .into_iter()
        .filter(|a| ["validate", "serve"].contains(&a[0]))
        .collect();
    let text = commands_refuse(flow.as_bytes(), "regconf::type::not_exactly_true", checking);
    snap("long-line-label", &text);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yml"), &flow).unwrap();
    for args in every_command() {
        run(dir.path(), &args, &[]);
    }
}

/// Makes a FIFO at `path` (nobody ever writes to it).
fn fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// A configuration file, an environment file or a file a flavor names that
/// is a device, a FIFO or a directory made regconf read forever or wait
/// forever; a large one was read whole. Each is refused, naming what it is
/// or the limit.
#[test]
fn special_and_oversized_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fifo(&d.join("fifo"));
    std::fs::create_dir(d.join("folder")).unwrap();
    std::fs::write(d.join("big.pem"), "a".repeat(2 << 20)).unwrap();
    let big = std::fs::File::create(d.join("big.yml")).unwrap();
    big.set_len(65 << 20).unwrap();
    std::fs::write(
        d.join("ok.yml"),
        "dev:\n  loglevel: info\nprod:\n  loglevel: info\n",
    )
    .unwrap();
    let specials = ["/dev/zero", "/dev/urandom", "fifo", "folder"];
    let mut transcripts = String::new();
    for args in every_command() {
        for (file, what) in specials
            .iter()
            .zip(["a device", "a device", "a FIFO", "a directory"])
        {
            let args: Vec<&str> = args
                .iter()
                .map(|&a| if a == "config.yml" { *file } else { a })
                .collect();
            let out = run(d, &args, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}:\n{stderr}");
            assert!(
                stderr.contains("regconf::file::unreadable")
                    && stderr.contains(&format!("it is {what}, not a regular file")),
                "{args:?}:\n{stderr}"
            );
        }
        let args: Vec<&str> = args
            .iter()
            .map(|&a| if a == "config.yml" { "big.yml" } else { a })
            .collect();
        let out = run(d, &args, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}:\n{stderr}");
        assert!(
            stderr.contains("regconf::file::too_large"),
            "{args:?}:\n{stderr}"
        );
        if args[0] == "validate" {
            transcripts.push_str(&transcript(&out));
        }
    }
    // --env-file, where a command takes one
    for args in [
        vec!["validate", "ok.yml", "--flavor", "dev", "--env-file"],
        vec!["env", "ok.yml", "--flavor", "dev", "--env-file"],
        vec!["diff", "dev", "prod", "ok.yml", "--env-file"],
    ] {
        for file in ["fifo", "/dev/zero", "folder"] {
            let mut args = args.clone();
            args.push(file);
            let out = run(d, &args, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}:\n{stderr}");
            assert!(
                stderr.contains("regconf::file::env_file") && stderr.contains("regular file"),
                "{args:?}:\n{stderr}"
            );
        }
    }
    // files a flavor names: read by `validate --flavor` and by `serve`
    std::fs::write(
        d.join("files.yml"),
        "dev:\n  auth: {htpasswd: /dev/zero}\n  tls: {certificate: fifo, key: big.pem}\n\
         prod:\n  auth: {htpasswd: folder}\n  tls: {certificate: /dev/urandom, key: fifo}\n\
         keyed:\n  privileged_key: fifo\nzero:\n  privileged_key: /dev/zero\n",
    )
    .unwrap();
    // `privileged_key` is only opened, as docker-registry opened it
    // (`/dev/null` is a common value): a FIFO or a device is accepted, and
    // neither makes `validate` wait or read
    for flavor in ["keyed", "zero"] {
        let out = run(d, &["validate", "files.yml", "--flavor", flavor], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("privileged_key_missing"),
            "{flavor}:\n{stderr}"
        );
    }
    for flavor in ["dev", "prod"] {
        for cmd in [
            vec!["validate", "files.yml", "--flavor", flavor],
            vec![
                "serve",
                "files.yml",
                "--flavor",
                flavor,
                "--listen",
                "127.0.0.1:0",
            ],
        ] {
            let out = run(d, &cmd, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{cmd:?}:\n{stderr}");
            if cmd[0] == "validate" {
                transcripts.push_str(&transcript(&out));
            }
        }
    }
    snap("special-files", &transcripts);
}

/// Numbers `validate` accepted crashed `serve`: a connection count past
/// tokio's semaphore limit panicked at start, a header timeout near
/// `i64::MAX` seconds panicked on every connection. Every number has a
/// range now; out of it is refused with the range, through `--set` and
/// through the file, and `serve` runs at the top of each range.
#[test]
fn numbers_out_of_their_range_are_refused_and_serve_runs_at_the_ends() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("config.yml"),
        "dev:\n  storage_path: _env:STORAGE_PATH\n  search_backend: ''\nprod:\n  loglevel: info\n",
    )
    .unwrap();
    std::fs::write(
        d.join("huge.yml"),
        "dev:\n  limits:\n    max_connections: 4611686018427387904\n    header_timeout_secs: 9223372036854775807\n    idle_timeout_secs: 99999999999999999999999\n    max_header_bytes: '100'\n  upload_purge: {interval_secs: -1}\n  cors: {max_age: 4294967296}\nprod:\n  loglevel: info\n",
    )
    .unwrap();
    let storage = [(
        "STORAGE_PATH".to_owned(),
        d.join("storage").display().to_string(),
    )];
    let mut transcripts = String::new();
    for args in [
        vec!["validate", "huge.yml", "--flavor", "dev"],
        vec![
            "serve",
            "huge.yml",
            "--flavor",
            "dev",
            "--listen",
            "127.0.0.1:0",
        ],
    ] {
        let out = run(d, &args, &storage);
        assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
        transcripts.push_str(&transcript(&out));
    }
    for set in [
        "limits.max_connections=4611686018427387904",
        "limits.header_timeout_secs=9223372036854775807",
    ] {
        for cmd in ["validate", "serve"] {
            let out = run(
                d,
                &[
                    cmd,
                    "config.yml",
                    "--flavor",
                    "dev",
                    "--set",
                    set,
                    "--listen",
                    "127.0.0.1:0",
                ][..if cmd == "serve" { 8 } else { 6 }],
                &storage,
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{cmd} {set}:\n{stderr}");
            assert!(
                stderr.contains("regconf::value::limit"),
                "{cmd} {set}:\n{stderr}"
            );
            assert!(
                stderr.contains("must be from 1 to"),
                "{cmd} {set}:\n{stderr}"
            );
        }
    }
    snap("number-ranges", &transcripts);
    // the top of every range: serve starts and answers
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = regconf(d)
        .args(["serve", "config.yml", "--flavor", "dev", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .args([
            "--set",
            "limits.max_connections=1048576",
            "--set",
            "limits.header_timeout_secs=86400",
            "--set",
            "limits.idle_timeout_secs=86400",
            "--set",
            "limits.max_header_bytes=16777216",
            "--set",
            "limits.max_manifest_bytes=1073741824",
            "--set",
            "upload_purge.interval_secs=31536000",
            "--set",
            "upload_purge.max_age_secs=315360000",
        ])
        .env("STORAGE_PATH", d.join("storage"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v2/");
    let start = Instant::now();
    let answer = loop {
        let out = Command::new("curl")
            .args(["-s", "-i", &url])
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut log = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
            panic!("serve ended ({status}):\n{log}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// `~` and `$VAR` in the paths of the htpasswd file and the TLS files were
/// expanded from the process environment, so `--env-file` was ignored there.
/// They are expanded from the environment regconf resolved with.
#[test]
fn file_paths_expand_from_the_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("home")).unwrap();
    // contents that are read and refused, so the message shows they were read
    std::fs::write(d.join("users"), "not an htpasswd line\n").unwrap();
    std::fs::write(d.join("home/cert.pem"), "no PEM here\n").unwrap();
    std::fs::write(
        d.join("config.yml"),
        "dev:\n  auth: {htpasswd: $HTDIR/users}\n  tls: {certificate: ~/cert.pem, key: '${HTDIR}/users'}\nprod:\n  loglevel: info\n",
    )
    .unwrap();
    std::fs::write(
        d.join("vars.env"),
        format!("HTDIR={}\nHOME={}\n", d.display(), d.join("home").display()),
    )
    .unwrap();
    let out = run(
        d,
        &[
            "validate",
            "config.yml",
            "--flavor",
            "dev",
            "--env-file",
            "vars.env",
        ],
        &[],
    );
    let text = transcript(&out).replace(&d.display().to_string(), "TMP");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(!text.contains("cannot read"), "{text}");
    assert!(
        text.contains("the htpasswd file `$HTDIR/users`: line 1"),
        "{text}"
    );
    assert!(
        text.contains("`~/cert.pem` holds no PEM `CERTIFICATE`"),
        "{text}"
    );
    assert!(
        text.contains("`${HTDIR}/users` holds no PEM private key"),
        "{text}"
    );
    snap("paths-from-env-file", &text);
    // without the file, the variable is unset and the path used as written
    let out = run(d, &["validate", "config.yml", "--flavor", "dev"], &[]);
    let text = transcript(&out);
    assert!(
        text.contains("cannot read `$HTDIR/users`: no such file"),
        "{text}"
    );
}

/// A diagnostic masked its message, but the snippet it printed showed the
/// lines around the flagged value as written, secrets included. Snippets
/// hide the values of secret keys (in the file and in a variable's YAML),
/// and `serve` hides the flavor's secret texts wherever they stand.
#[test]
fn secrets_never_show_in_snippets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("config.yml"),
        "dev:\n  storage: s3\n  s3_access_key: AKIAHUNTER\n  s3_secret_key: hunter2\n  s3_bucket: b\n  \
         gs_secret_key: |\n    bl0ckline1\n    bl0ckline2\n  s3_secure: maybe\n  boto_host: AKIAHUNTER\n  \
         cache: {password: 'sw0rdfish', port: 70000000000000000000}\n  swift_password: _env:SWIFT_PASS:tops3cret\n  standalone: maybe\n  \
         smtp_password: _env:SMTP_PASS\n  mirroring: {source: _env:MIRROR_TOKEN}\n\
         prod:\n  loglevel: info\n",
    )
    .unwrap();
    // values that `validate --flavor` quotes in its messages: a variable of
    // the wrong type under a secret key, one that is not YAML, and one
    // named like a secret
    let env = [
        ("SWIFT_PASS", "[v4rlist]"),
        ("SMTP_PASS", "'unclosed v4ryaml"),
        ("MIRROR_TOKEN", "{t0kenmap: 1"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    for args in [
        vec!["validate", "config.yml"],
        vec!["validate", "config.yml", "--flavor", "dev"],
        vec![
            "serve",
            "config.yml",
            "--flavor",
            "dev",
            "--listen",
            "127.0.0.1:0",
        ],
    ] {
        // (`serve` would stop at the broken variables, before the rest)
        let out = run(d, &args, if args[0] == "serve" { &[] } else { &env });
        let text = transcript(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}:\n{text}");
        let secrets = [
            "hunter2",
            "sw0rdfish",
            "tops3cret",
            "bl0ckline",
            "v4rlist",
            "v4ryaml",
            "t0kenmap",
        ];
        for secret in secrets {
            assert!(!text.contains(secret), "{args:?} shows {secret}:\n{text}");
        }
        // `serve` knows the flavor's secret texts and hides them under any
        // key (`boto_host` repeats the access key)
        if args[0] == "serve" {
            assert!(!text.contains("AKIAHUNTER"), "{args:?}:\n{text}");
        }
        // what is flagged is still shown
        assert!(text.contains("s3_secure: maybe"), "{args:?}:\n{text}");
    }
}
