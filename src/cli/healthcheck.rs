//! `regconf healthcheck`: asks a running `serve` whether it answers, for a
//! container's HEALTHCHECK in an image that has no shell and no curl.
//!
//! It sends one plain-HTTP `GET /v2/` to the address `serve` would listen on
//! (same flags and variables; an unspecified address such as `0.0.0.0` is
//! asked on loopback) and exits 0 on 200, or on 401 (authentication is on,
//! and the registry answered), 1 otherwise. It reads no configuration file
//! and opens no storage: it must stay cheap enough to run every few seconds.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use super::{Context, serve};

/// Arguments of `regconf healthcheck`.
#[derive(Debug, clap::Args)]
pub(super) struct Args {
    /// Address of the registry [default: $REGISTRY_HOST:$REGISTRY_PORT, else
    /// 127.0.0.1:5000]
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Seconds to wait for the answer
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

pub(super) fn run(ctx: &Context, args: &Args) -> u8 {
    let mut addr = match serve::listen_address(ctx, args.listen.as_deref()) {
        Ok(a) => a,
        Err(d) => {
            ctx.report(&[d]);
            return 2;
        }
    };
    if addr.ip().is_unspecified() {
        let loopback = match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        };
        addr.set_ip(loopback);
    }
    let timeout = Duration::from_secs(args.timeout.max(1));
    match probe(addr, timeout) {
        Ok(status @ (200 | 401)) => {
            println!("healthy: GET http://{addr}/v2/ answered {status}");
            0
        }
        Ok(status) => {
            eprintln!("unhealthy: GET http://{addr}/v2/ answered {status}");
            1
        }
        Err(e) => {
            eprintln!("unhealthy: GET http://{addr}/v2/: {e}");
            1
        }
    }
}

/// The status code of `GET /v2/` at `addr`.
fn probe(addr: SocketAddr, timeout: Duration) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: regconf-healthcheck\r\nConnection: close\r\n\r\n"
    )?;
    // The status line is all we need; it fits in the first bytes.
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() {
        let n = stream.read(&mut head[len..])?;
        if n == 0 {
            break;
        }
        len += n;
        if head[..len].contains(&b'\n') {
            break;
        }
    }
    let line = String::from_utf8_lossy(&head[..len]);
    line.strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an HTTP answer: `{}`", line.trim_end()),
            )
        })
}
