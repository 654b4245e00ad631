//! Datagrams to the X-Ray daemon over one UDP socket per layer.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::XrayError;

/// The daemon address when `AWS_XRAY_DAEMON_ADDRESS` is unset.
pub const DEFAULT_DAEMON_ADDRESS: &str = "127.0.0.1:2000";

/// A non-blocking UDP socket connected to the daemon, opened once per layer.
#[derive(Debug)]
pub(crate) struct Emitter {
    socket: UdpSocket,
    daemon: SocketAddr,
    dropped: AtomicU64,
}

impl Emitter {
    pub(crate) fn connect(daemon: SocketAddr) -> io::Result<Self> {
        let local: SocketAddr = match daemon {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(daemon)?;
        // A full socket buffer drops a trace rather than stalls a request.
        socket.set_nonblocking(true)?;
        Ok(Self { socket, daemon, dropped: AtomicU64::new(0) })
    }

    /// Sends one datagram; a failure is counted, never returned to the request.
    pub(crate) fn send(&self, datagram: &[u8]) {
        if self.socket.send(datagram).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn daemon(&self) -> SocketAddr {
        self.daemon
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Parses `host:port`, or the `tcp:host:port udp:host:port` form, taking the UDP address.
pub(crate) fn parse_daemon_address(value: &str) -> Result<SocketAddr, XrayError> {
    let invalid = || XrayError::InvalidDaemonAddress { value: value.to_owned() };
    let parts: Vec<&str> = value.split_whitespace().collect();
    let udp = match parts.as_slice() {
        [one] if !one.starts_with("tcp:") => one.strip_prefix("udp:").unwrap_or(one),
        [_, _] => parts.iter().find_map(|p| p.strip_prefix("udp:")).ok_or_else(invalid)?,
        _ => return Err(invalid()),
    };
    udp.to_socket_addrs().ok().and_then(|mut addrs| addrs.next()).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemon_address_forms() {
        let addr = |s: &str| parse_daemon_address(s).map(|a| a.to_string());
        assert_eq!(addr("127.0.0.1:2000").unwrap(), "127.0.0.1:2000");
        assert_eq!(addr("tcp:127.0.0.1:2000 udp:127.0.0.2:2001").unwrap(), "127.0.0.2:2001");
        assert_eq!(addr("udp:127.0.0.1:3000").unwrap(), "127.0.0.1:3000");
        for bad in ["", "nonsense", "tcp:127.0.0.1:2000", "127.0.0.1", "a b c"] {
            assert!(addr(bad).is_err(), "{bad}");
        }
    }
}
