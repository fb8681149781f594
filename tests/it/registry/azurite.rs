//! The Azure driver against a real Blob service: Azurite (npm `azurite`),
//! started once per test process on a free loopback port with its
//! published development account, data in memory and its telemetry off (it
//! would otherwise send usage data off this machine). Each test uses a
//! container of its own, which `regconf serve` creates at start.
//!
//! Azurite is stopped by PID when the test process ends, however it ends:
//! it runs under a small `sh` that waits for its standard input to close.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::ObjectStore;
use regconf::model;

/// How to install Azurite.
pub(crate) const INSTALL: &str = "npm install -g azurite";

/// Azurite's development account and its published key.
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running Azurite blob service.
pub(crate) struct Azurite {
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    _stdin: Mutex<Option<ChildStdin>>,
    _child: Mutex<Child>,
}

/// The Azurite of this test process.
pub(crate) fn shared() -> &'static Azurite {
    static AZURITE: OnceLock<Azurite> = OnceLock::new();
    AZURITE.get_or_init(Azurite::start)
}

impl Azurite {
    fn start() -> Azurite {
        let found = Command::new("sh")
            .args(["-c", "command -v azurite-blob"])
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "azurite-blob is not installed; install it with `{INSTALL}`"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new("sh")
            .args([
                "-c",
                r#"azurite-blob --blobHost 127.0.0.1 --blobPort "$1" --inMemoryPersistence --extentMemoryLimit 512 --disableTelemetry --skipApiVersionCheck --silent >/dev/null 2>&1 & a=$!; read _ignored; kill "$a"; wait "$a""#,
                "sh",
                &port.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start azurite ({INSTALL}): {e}"));
        let stdin = child.stdin.take();
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "azurite did not start on port {port} within 30s (`{INSTALL}`)"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Azurite {
            port,
            _stdin: Mutex::new(stdin),
            _child: Mutex::new(child),
        }
    }

    /// The account's blob service URL (path-style, as Azurite serves it).
    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }
}

/// Settings for `container` on the shared Azurite, as an operator writes
/// them (with the `azure_endpoint` extension).
pub(crate) fn settings(container: &str) -> model::Azure {
    model::Azure {
        azure_storage_account_name: Some(ACCOUNT.into()),
        azure_storage_account_key: Some(KEY.into()),
        azure_storage_container: container.into(),
        azure_use_https: false,
        azure_endpoint: Some(shared().endpoint()),
    }
}

/// Every blob name in the container of `a`, sorted.
pub(crate) fn keys(a: &model::Azure) -> Vec<String> {
    let store = object_store::azure::MicrosoftAzureBuilder::new()
        .with_account(ACCOUNT)
        .with_access_key(KEY)
        .with_container_name(&a.azure_storage_container)
        .with_endpoint(shared().endpoint())
        .with_allow_http(true)
        .build()
        .expect("azure client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut keys: Vec<String> = rt.block_on(async {
        store
            .list(None)
            .map_ok(|m| m.location.as_ref().to_owned())
            .try_collect()
            .await
            .expect("list the azurite container")
    });
    keys.sort();
    keys
}
