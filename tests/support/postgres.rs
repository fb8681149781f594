//! A real PostgreSQL server for tests: Debian's `postgresql` binaries
//! (`/usr/lib/postgresql/<version>/bin`), a cluster made by `initdb` in a
//! fresh temporary folder, run as the unprivileged `postgres` system user
//! when the tests run as root (PostgreSQL refuses root), on a free
//! 127.0.0.1 port with its socket in that folder, with a password user and
//! a database. Missing binaries fail the test naming them; it never skips.
//!
//! The server is stopped by PID when its handle is dropped or when the test
//! process ends however it ends: it runs under a small `sh` that waits for
//! its standard input to close and then sends it `SIGINT` (a fast
//! shutdown, which does not wait for clients), then `SIGKILL` after 5 s.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How to install the server.
pub(crate) const INSTALL: &str = "apt-get install postgresql";

/// The user the tests log in as, and its password.
pub(crate) const USER: &str = "regconf";
/// See [`USER`].
pub(crate) const PASSWORD: &str = "s3cret-pw";
/// The database made for the tests.
pub(crate) const DATABASE: &str = "index";

/// A running PostgreSQL server.
pub(crate) struct Postgres {
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    dir: PathBuf,
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding every program in
/// `programs`; panics naming what is missing.
fn bin_dir(programs: &[&str]) -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                    Some((v, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    let Some((_, bin)) = versions.pop() else {
        panic!(
            "PostgreSQL server programs ({}) not found under /usr/lib/postgresql/<version>/bin; install them with `{INSTALL}`",
            programs.join(", ")
        );
    };
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !bin.join(p).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "PostgreSQL programs {} missing from {}; install them with `{INSTALL}`",
        missing.join(", "),
        bin.display()
    );
    bin
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program args`, as the `postgres` user when this process is root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ]);
        c.arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what} ({INSTALL}): {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// Makes a cluster and starts it (see the module docs).
    pub(crate) fn start() -> Postgres {
        let bin = bin_dir(&["initdb", "postgres", "pg_isready", "createdb"]);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("regconf-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("the PostgreSQL test folder");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PASSWORD).expect("the password file");
        if is_root() {
            let mut c = Command::new("chown");
            c.args(["-R", "postgres:postgres"]).arg(&dir);
            run(
                c,
                "chown (the `postgres` user must exist; `{INSTALL}` adds it)",
            );
        }
        let data = dir.join("data");
        let mut init = as_server_user(&bin.join("initdb"));
        init.arg("-D")
            .arg(&data)
            .args(["-U", USER, "-A", "scram-sha-256", "-E", "UTF8", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()));
        run(init, "initdb");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = as_server_user(&bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "fsync=off", "-c", "max_connections=50"]);
        let program = server.get_program().to_owned();
        let args: Vec<_> = server.get_args().map(ToOwned::to_owned).collect();
        let mut child = Command::new("sh")
            .args([
                "-c",
                r#"log="$1"; shift; "$@" >"$log" 2>&1 & p=$!; read _ignored; kill -INT "$p"; for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || exit 0; sleep 0.5; done; kill -KILL "$p""#,
                "sh",
            ])
            .arg(dir.join("server.log"))
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start postgres ({INSTALL}): {e}"));
        let stdin = child.stdin.take();
        let pg = Postgres {
            port,
            dir,
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start on port {port} within 30 s: {}",
                std::fs::read_to_string(pg.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut create = Command::new(bin.join("createdb"));
        create
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                USER,
                DATABASE,
            ])
            .env("PGPASSWORD", PASSWORD);
        run(create, "createdb");
        pg
    }

    /// `postgresql://regconf:<password>@127.0.0.1:<port>/index`.
    pub(crate) fn url(&self) -> String {
        format!(
            "postgresql://{USER}:{PASSWORD}@127.0.0.1:{}/{DATABASE}",
            self.port
        )
    }

    /// Stops the server (by its PID, from the watchdog) and waits for it.
    pub(crate) fn stop(&self) {
        drop(self.stdin.lock().expect("postgres stdin").take());
        let _ = self.child.lock().expect("postgres child").wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
