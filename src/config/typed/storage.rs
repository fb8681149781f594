//! The storage drivers: each driver's keys and defaults, the settings a
//! driver cannot start without, plugin drivers (any other name: 0.9.1
//! imported `docker_registry.drivers.<name>`), and the drivers `serve`
//! cannot run.

use std::ops::RangeInclusive;

use super::keys::section_keys;
use super::scalars::shown;
use super::{Conv, Mode, Sec};
use crate::config::env::Given;
use crate::config::resolve::did_you_mean;
use crate::config::value::Value;
use crate::diagnostics::Severity;
use crate::model::{self, Storage};

/// Keys of the storage drivers; a key of another driver than the selected
/// one is kept in `extra` without a report.
pub(super) const DRIVER_KEYS: &[&str] = &[
    "storage_path",
    "boto_bucket",
    "boto_host",
    "boto_port",
    "boto_debug",
    "boto_proxy",
    "boto_proxy_port",
    "boto_proxy_user",
    "boto_proxy_pass",
    "boto_calling_format",
    "s3_secure",
    "s3_access_key",
    "s3_secret_key",
    "s3_region",
    "s3_encrypt",
    "s3_use_sigv4",
    "s3_bucket",
    "cloudfront",
    "gs_secure",
    "gs_access_key",
    "gs_secret_key",
    "oauth2",
    "gs_endpoint",
    "swift_authurl",
    "swift_user",
    "swift_password",
    "swift_tenant_name",
    "swift_region_name",
    "swift_container",
    "swift_auth_version",
    "swift_object_storage_url",
    "storage_alternate",
    "azure_storage_account_name",
    "azure_storage_account_key",
    "azure_storage_container",
    "azure_use_https",
    "azure_endpoint",
    "elliptics_nodes",
    "elliptics_wait_timeout",
    "elliptics_check_timeout",
    "elliptics_io_thread_num",
    "elliptics_net_thread_num",
    "elliptics_nonblocking_io_thread_num",
    "elliptics_groups",
    "elliptics_verbosity",
    "elliptics_logfile",
    "elliptics_namespace",
    "elliptics_addr_family",
    "oss_host",
    "oss_bucket",
    "oss_accessid",
    "oss_accesskey",
];

/// The storage driver names docker-registry 0.9.1 and its plugins knew.
const DRIVERS: &[&str] = &[
    "local",
    "file",
    "s3",
    "cloudfronts3",
    "gcs",
    "azureblob",
    "swift",
    "glance",
    "elliptics",
    "oss",
];

/// What is wrong with an endpoint URL, if anything: it must be `http://`
/// or `https://`, name a host (and a numeric port, if any), and carry no
/// query or fragment (the clients append paths and queries of their own).
fn endpoint_problem(url: &str) -> Option<&'static str> {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        return Some("it must start with `http://` or `https://`");
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("it contains white space");
    }
    if url.contains(['?', '#']) {
        return Some("it has a query or fragment");
    }
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            if !host.is_empty() && port.parse::<u16>().is_err() {
                return Some("its port is not a number from 0 to 65535");
            }
            host
        }
        _ => authority,
    };
    if host.is_empty() || host.contains('@') {
        return Some("it names no host");
    }
    None
}

impl Conv<'_> {
    /// An endpoint setting (a regconf extension: `gs_endpoint`,
    /// `azure_endpoint`); a malformed URL is an error, since the driver
    /// could not reach anything with it.
    fn endpoint(&mut self, top: &mut Sec<'_>, key: &str, example: &str) -> Option<String> {
        let url = self.string(top, key)?.trim().to_owned();
        if url.is_empty() {
            return None;
        }
        if let Some(why) = endpoint_problem(&url) {
            self.report(
                "regconf::storage::endpoint",
                Severity::Error,
                &top.path_of(key),
                format!("`{key}` is not a usable URL ({why})"),
                "not a URL",
                format!("write the service's base URL, for example `{example}`"),
            );
            return None;
        }
        Some(url.trim_end_matches('/').to_owned())
    }

    /// Azure account keys are base64 (the portal shows them so); the client
    /// decodes the key before its first request, so any other text fails
    /// every request. The key itself is never shown.
    fn azure_key(&mut self, top: &Sec<'_>, key: Option<&str>) {
        use base64::Engine as _;
        let Some(key) = key else { return };
        if base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .is_err()
        {
            self.report(
                "regconf::storage::azure_key",
                Severity::Error,
                &top.path_of("azure_storage_account_key"),
                "`azure_storage_account_key` is not base64 (no request to the account could be signed)".to_owned(),
                "not base64",
                "copy the key from the account's access keys page (it ends in `==`), or read it from a variable: `_env:AZURE_STORAGE_KEY`",
            );
        }
    }

    /// A required driver setting: missing, null, or from an unset variable.
    pub(super) fn require(
        &mut self,
        sec: &Sec<'_>,
        key: &str,
        present: bool,
        driver: &str,
        why: &str,
    ) {
        if present {
            return;
        }
        let path = sec.path_of(key);
        // a copy of the reference, so the origin outlives `self`'s borrows
        let prov = self.prov;
        let origin = prov.get(&path);
        match (origin.and_then(|o| o.env.as_ref()), self.mode) {
            (Some(e), Mode::Static) if e.given == Given::Unset => self.report(
                "regconf::env::required_unset",
                Severity::Advice,
                &path,
                format!("`{key}` comes from `{}`, which has no default: set it, or the `{driver}` driver cannot start ({why})", e.name),
                "required",
                format!("set `{}` when using this flavor, or write a default: `_env:{}:VALUE`", e.name, e.name),
            ),
            _ => self.report(
                "regconf::storage::missing_key",
                Severity::Error,
                &if origin.is_some() { path.clone() } else { sec.path_of("storage") },
                format!("the `{driver}` driver needs `{key}` ({why})"),
                if origin.is_some() { "empty" } else { "this driver" },
                format!("add `{key}: ...` to the flavor, or `{key}: _env:NAME` to read it from a variable"),
            ),
        }
    }

    pub(super) fn storage(&mut self, top: &mut Sec<'_>) -> Storage {
        let name = self
            .string(top, "storage")
            .unwrap_or_else(|| "local".to_owned());
        let lower = name.to_ascii_lowercase();
        let path_default = |d: &str| d.to_owned();
        let storage = match lower.as_str() {
            "local" | "file" => {
                let storage_path = self
                    .string(top, "storage_path")
                    .unwrap_or_else(|| path_default("/tmp/registry"));
                self.expansion(&top.path_of("storage_path"), &storage_path);
                Storage::Local { storage_path }
            }
            "s3" | "cloudfronts3" => {
                // HTTPS unless written otherwise, or the endpoint is this
                // machine (moto, MinIO in a test): docker-registry's `is
                // True` made an absent key mean plain HTTP, to AWS too.
                let host = self.string(top, "boto_host");
                let local = host.as_deref().is_some_and(is_loopback_host);
                let written = self.exactly_true(top, "s3_secure");
                let mut s = model::S3 {
                    boto_bucket: self.string(top, "boto_bucket").filter(|s| !s.is_empty()),
                    storage_path: self
                        .string(top, "storage_path")
                        .unwrap_or_else(|| path_default("/registry")),
                    s3_region: self.string(top, "s3_region"),
                    s3_access_key: self.string(top, "s3_access_key"),
                    s3_secret_key: self.string(top, "s3_secret_key"),
                    s3_secure: written.unwrap_or(!local),
                    s3_encrypt: self.exactly_true(top, "s3_encrypt").unwrap_or(false),
                    s3_use_sigv4: self.exactly_true(top, "s3_use_sigv4").unwrap_or(false),
                    s3_bucket: self.string(top, "s3_bucket"),
                    boto_host: host.clone(),
                    boto_port: self.port(top, "boto_port"),
                    boto_debug: self.int_or_bool(top, "boto_debug"),
                    boto_proxy: self.string(top, "boto_proxy"),
                    boto_proxy_port: self.port(top, "boto_proxy_port"),
                    boto_proxy_user: self.string(top, "boto_proxy_user"),
                    boto_proxy_pass: self.string(top, "boto_proxy_pass"),
                    boto_calling_format: self.string(top, "boto_calling_format"),
                    cloudfront: None,
                };
                let mut cf = self.section(top, "cloudfront");
                if cf.map.is_some() {
                    s.cloudfront = Some(model::storage::Cloudfront {
                        base: self.string(&mut cf, "base"),
                        keyid: self.string(&mut cf, "keyid"),
                        keysecret: self.string(&mut cf, "keysecret"),
                    });
                    self.rest(&cf, section_keys("cloudfront"), &[]);
                }
                self.require(
                    top,
                    "boto_bucket",
                    s.boto_bucket.is_some(),
                    "s3",
                    "it needs a bucket",
                );
                if written == Some(false) && !local {
                    let to = host
                        .as_deref()
                        .filter(|h| !h.trim().is_empty())
                        .map_or_else(|| "AWS S3".to_owned(), |h| format!("`{h}`"));
                    self.plain_http(top, "s3_secure", &to);
                }
                Storage::S3(s)
            }
            "gcs" => {
                let written = self.exactly_true(top, "gs_secure");
                if written == Some(false) {
                    self.plain_http(top, "gs_secure", "Google Cloud Storage");
                }
                let g = model::Gcs {
                    boto_bucket: self.string(top, "boto_bucket").filter(|s| !s.is_empty()),
                    storage_path: self
                        .string(top, "storage_path")
                        .unwrap_or_else(|| path_default("/registry")),
                    gs_secure: written.unwrap_or(true),
                    gs_access_key: self.string(top, "gs_access_key"),
                    gs_secret_key: self.string(top, "gs_secret_key"),
                    oauth2: self.exactly_true(top, "oauth2").unwrap_or(false),
                    gs_endpoint: self.endpoint(top, "gs_endpoint", "https://storage.example.com"),
                };
                self.require(
                    top,
                    "boto_bucket",
                    g.boto_bucket.is_some(),
                    "gcs",
                    "it needs a bucket",
                );
                Storage::Gcs(g)
            }
            "azureblob" => {
                let a = model::Azure {
                    azure_storage_account_name: self
                        .string(top, "azure_storage_account_name")
                        .filter(|s| !s.is_empty()),
                    azure_storage_account_key: self
                        .string(top, "azure_storage_account_key")
                        .filter(|s| !s.is_empty()),
                    azure_storage_container: self
                        .string(top, "azure_storage_container")
                        .unwrap_or_else(|| path_default("registry")),
                    azure_use_https: self.truthy(top, "azure_use_https").unwrap_or(false),
                    azure_endpoint: self.endpoint(
                        top,
                        "azure_endpoint",
                        "http://127.0.0.1:10000/devstoreaccount1",
                    ),
                };
                self.azure_key(top, a.azure_storage_account_key.as_deref());
                self.require(
                    top,
                    "azure_storage_account_name",
                    a.azure_storage_account_name.is_some(),
                    "azureblob",
                    "it needs an account",
                );
                self.require(
                    top,
                    "azure_storage_account_key",
                    a.azure_storage_account_key.is_some(),
                    "azureblob",
                    "it needs the account's key",
                );
                Storage::Azure(a)
            }
            "swift" => {
                let s = model::Swift {
                    storage_path: self
                        .string(top, "storage_path")
                        .unwrap_or_else(|| path_default("/registry")),
                    swift_authurl: self.string(top, "swift_authurl").filter(|s| !s.is_empty()),
                    swift_container: self
                        .string(top, "swift_container")
                        .unwrap_or_else(|| path_default("dev_container")),
                    swift_user: self.string(top, "swift_user"),
                    swift_password: self.string(top, "swift_password"),
                    swift_tenant_name: self.string(top, "swift_tenant_name"),
                    swift_region_name: self.string(top, "swift_region_name"),
                    swift_auth_version: self.version(top, "swift_auth_version").unwrap_or(2),
                    swift_object_storage_url: self.string(top, "swift_object_storage_url"),
                };
                self.require(
                    top,
                    "swift_authurl",
                    s.swift_authurl.is_some(),
                    "swift",
                    "it authenticates through Keystone",
                );
                Storage::Swift(s)
            }
            "glance" => Storage::Glance(model::Glance {
                storage_alternate: self
                    .string(top, "storage_alternate")
                    .unwrap_or_else(|| path_default("file")),
                storage_path: self
                    .string(top, "storage_path")
                    .unwrap_or_else(|| path_default("/tmp/registry")),
            }),
            "elliptics" => Storage::Elliptics(self.elliptics(top)),
            "oss" => Storage::Oss(model::Oss {
                storage_path: self
                    .string(top, "storage_path")
                    .unwrap_or_else(|| path_default("/registry/")),
                oss_host: self.string(top, "oss_host"),
                oss_bucket: self.string(top, "oss_bucket"),
                oss_accessid: self.string(top, "oss_accessid"),
                oss_accesskey: self.string(top, "oss_accesskey"),
            }),
            _ => {
                self.plugin_driver(top, &name, &lower);
                self.plugin = Some(name.clone());
                Storage::Other(name)
            }
        };
        if !model::storage::SERVED_DRIVERS.contains(&storage.driver()) {
            let served = model::storage::SERVED_DRIVERS
                .iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ");
            self.capability(
                "regconf::serve::unsupported_driver",
                &top.path_of("storage"),
                format!(
                    "`regconf serve` cannot use the `{}` driver",
                    storage.driver()
                ),
                "not served",
                format!(
                    "`regconf serve` runs {served}; `render` and `validate` accept every driver"
                ),
            );
        }
        storage
    }

    /// A driver name 0.9.1 did not ship: it imported
    /// `docker_registry.drivers.<name>`, which any installed plugin package
    /// provides, so the name is a warning (a typo when close to a known one).
    fn plugin_driver(&mut self, top: &Sec<'_>, name: &str, lower: &str) {
        let near = did_you_mean(lower, DRIVERS.iter().copied());
        let known = DRIVERS
            .iter()
            .map(|d| format!("`{d}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if lower.trim().is_empty() {
            self.report(
                "regconf::storage::unknown_driver",
                Severity::Error,
                &top.path_of("storage"),
                "`storage` is empty: docker-registry failed at start looking for a driver with no name".to_owned(),
                "no driver",
                format!("write one of the drivers: {known}"),
            );
            return;
        }
        let (message, label, help) = match near {
            Some(n) => (
                format!("unknown storage driver `{name}`"),
                format!("did you mean `{n}`?"),
                format!(
                    "did you mean `{n}`? docker-registry would look for a plugin package providing `docker_registry.drivers.{lower}` and fail at start without one; the known drivers are: {known}"
                ),
            ),
            None => (
                format!("`storage` names `{name}`, a plugin driver regconf does not know"),
                "a plugin driver?".to_owned(),
                format!(
                    "docker-registry loaded `docker_registry.drivers.{lower}` from any installed package; install that plugin where it runs (regconf checks none of its keys). The known drivers are: {known}"
                ),
            ),
        };
        self.report(
            "regconf::storage::unknown_driver",
            Severity::Warning,
            &top.path_of("storage"),
            message,
            &label,
            help,
        );
    }

    pub(super) fn elliptics(&mut self, top: &mut Sec<'_>) -> model::Elliptics {
        let nodes = match top.get("elliptics_nodes") {
            None => Vec::new(),
            Some(Value::Str(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Seq(items)) => items.iter().map(shown).collect(),
            Some(other) => {
                self.mismatch(
                    top,
                    "elliptics_nodes",
                    "a list or a string of nodes",
                    other,
                    "write `[host:1025:2, ...]`",
                );
                Vec::new()
            }
        };
        self.require(
            top,
            "elliptics_nodes",
            !nodes.is_empty(),
            "elliptics",
            "it needs nodes to connect to",
        );
        let r = model::Elliptics::RANGES;
        let groups = match top.get("elliptics_groups") {
            None => vec![1],
            Some(Value::Seq(items)) if items.iter().all(|i| matches!(i, Value::Int(_))) => items
                .iter()
                .filter_map(|i| {
                    if let Value::Int(n) = i {
                        Some(*n)
                    } else {
                        None
                    }
                })
                .collect(),
            Some(Value::Str(s)) => {
                let inner = s.trim().trim_start_matches('[').trim_end_matches(']');
                match inner
                    .split(',')
                    .map(|p| p.trim().parse::<i64>())
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(g) => g,
                    Err(_) => {
                        let v = Value::Str(s.clone());
                        self.mismatch(
                            top,
                            "elliptics_groups",
                            "a list of group numbers",
                            &v,
                            "write `[1, 2]`",
                        );
                        vec![1]
                    }
                }
            }
            Some(other) => {
                self.mismatch(
                    top,
                    "elliptics_groups",
                    "a list of group numbers",
                    other,
                    "write `[1, 2]`",
                );
                vec![1]
            }
        };
        if let Some(bad) = groups
            .iter()
            .find(|&&g| u64::try_from(g).map_or(true, |g| !r.group.contains(&g)))
        {
            let path = top.path_of("elliptics_groups");
            self.report(
                "regconf::value::range",
                Severity::Error,
                &path,
                format!(
                    "each of `elliptics_groups` must be from {} to {}, not `{bad}`",
                    r.group.start(),
                    r.group.end()
                ),
                "out of range",
                format!(
                    "write group ids from {} to {}",
                    r.group.start(),
                    r.group.end()
                ),
            );
        }
        let verbosity = match top.get("elliptics_verbosity") {
            None => "error".to_owned(),
            Some(Value::Str(s)) => s.clone(),
            Some(Value::Int(n)) => {
                let path = top.path_of("elliptics_verbosity");
                self.report("regconf::value::verbosity_number",
                        Severity::Warning,
                        &path,
                        format!("`elliptics_verbosity` is the number `{n}`, not a level name; regconf accepts it as level `{n}`, but the elliptics driver called `.lower()` on it and would crash"),
                        "a number", "write a level name such as `error`, `info` or `debug`");
                n.to_string()
            }
            Some(other) => {
                self.mismatch(
                    top,
                    "elliptics_verbosity",
                    "a log level name",
                    other,
                    "write `error`, `info` or `debug`",
                );
                "error".to_owned()
            }
        };
        let mut num = |c: &mut Self, key: &str, range: &RangeInclusive<u64>, default: u64| {
            c.ranged(top, key, range.clone(), Some(default))
                .unwrap_or(default)
                .try_into()
                .unwrap_or(i64::MAX)
        };
        model::Elliptics {
            elliptics_nodes: nodes,
            elliptics_wait_timeout: num(self, "elliptics_wait_timeout", &r.timeout, 60),
            elliptics_check_timeout: num(self, "elliptics_check_timeout", &r.timeout, 60),
            elliptics_io_thread_num: num(self, "elliptics_io_thread_num", &r.threads, 2),
            elliptics_net_thread_num: num(self, "elliptics_net_thread_num", &r.threads, 2),
            elliptics_nonblocking_io_thread_num: num(
                self,
                "elliptics_nonblocking_io_thread_num",
                &r.threads,
                2,
            ),
            elliptics_groups: groups,
            elliptics_verbosity: verbosity,
            elliptics_logfile: self
                .string(top, "elliptics_logfile")
                .unwrap_or_else(|| "/dev/stderr".to_owned()),
            elliptics_namespace: self
                .string(top, "elliptics_namespace")
                .unwrap_or_else(|| "DOCKER".to_owned()),
            // in the sample, but no driver read it: any whole number will do
            elliptics_addr_family: self.int(top, "elliptics_addr_family", true),
        }
    }
}

/// Whether an endpoint host is this machine: `localhost`, or a loopback
/// address (127.0.0.0/8, `::1`, with or without brackets).
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

impl Conv<'_> {
    /// The warning for `key: false` towards a host off this machine.
    fn plain_http(&mut self, top: &mut Sec<'_>, key: &str, to: &str) {
        if !matches!(self.mode, Mode::Environment(_)) {
            return;
        }
        self.report(
            "regconf::storage::plain_http",
            Severity::Warning,
            &top.path_of(key),
            format!(
                "`{key}: false` sends requests to {to} over plain HTTP: the keys' signatures, \
                 and every image, cross the network unencrypted"
            ),
            "plain HTTP",
            format!("remove `{key}` (HTTPS is the default) unless the store only speaks HTTP"),
        );
    }
}

#[cfg(test)]
mod loopback_tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "localhost",
            "LOCALHOST",
            "::1",
            "[::1]",
            "127.3.2.1",
            " 127.0.0.1 ",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "s3.amazonaws.com",
            "10.0.0.1",
            "example.com",
            "",
            "0.0.0.0",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
