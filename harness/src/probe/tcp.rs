//! TCP probes: one connection per packet, carrying a nonce as its request.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, sockopt};

use super::{Ident, Sent, answer_from, new_nonce};
use crate::error::{Error, Result};
use crate::lab::netns::Netns;

/// Open `count` connections from `ns` to `dst:port`, one after the other, each sending its
/// nonce and reading the answer, each within `timeout`. Mirrors `ip netns exec NS nc DST PORT`.
pub fn connect(ns: &Netns, dst: Ipv4Addr, port: u16, count: u16, timeout: Duration) -> Result<Vec<Sent>> {
    let fail = |e: std::io::Error| Error::Probe {
        probe: format!("tcp {} -> {dst}:{port}", ns.name()),
        message: e.to_string(),
    };
    ns.run(|| (0..count).map(|_| one(dst, port, timeout).map_err(fail)).collect())
}

fn one(dst: Ipv4Addr, port: u16, timeout: Duration) -> std::io::Result<Sent> {
    let nonce = new_nonce();
    let deadline = Instant::now() + timeout;
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    // Bind first so the local port is known even when the connection fails: it is how the
    // SYN is found in the captures.
    let fd: OwnedFd =
        socket::socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?;
    socket::bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)))?;
    let local: SockaddrIn = socket::getsockname(fd.as_raw_fd())?;
    let ident = Ident::Connection { sport: local.port(), dst: IpAddr::V4(dst), dport: port, since, isn: None };
    let not_answered = |ident: Ident| Sent { nonce: nonce.clone(), ident, replied: false, answer: None };
    match socket::connect(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(dst, port))) {
        Ok(()) | Err(nix::Error::EINPROGRESS) => {}
        Err(nix::Error::ECONNREFUSED | nix::Error::ENETUNREACH | nix::Error::EHOSTUNREACH) => {
            return Ok(not_answered(ident));
        }
        Err(e) => return Err(e.into()),
    }
    let left = deadline.saturating_duration_since(Instant::now());
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    let ready = poll(&mut fds, PollTimeout::try_from(left.as_millis() as i32 + 1).unwrap_or(PollTimeout::MAX))?;
    if ready == 0 || socket::getsockopt(&fd, sockopt::SocketError)? != 0 {
        // No SYN-ACK in time, or a RST / ICMP error: the handshake did not complete.
        return Ok(not_answered(ident));
    }
    // SAFETY: the fd is a connected TCP socket owned here; TcpStream takes ownership.
    let mut stream = unsafe { TcpStream::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))))?;
    stream.write_all(&nonce)?;
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let answer = answer_from(&buf, &nonce);
    Ok(Sent { nonce, ident, replied: true, answer })
}
