//! UDP probes: one datagram per packet, each answered by a scenario's server.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use super::wait::{self, Read};
use super::{Ident, Sent, answer_from, new_nonce};
use crate::error::{Error, Result};
use crate::lab::netns::Netns;
use crate::observe::drops::Drops;

/// Send `count` datagrams from `ns` to `dst:port` from one socket (one conntrack flow), waiting
/// up to `timeout` for each answer. Mirrors `ip netns exec NS nc -u DST PORT`.
/// A datagram the trace shows dropped (`drops`) is not waited for.
pub fn send(ns: &Netns, dst: Ipv4Addr, port: u16, count: u16, timeout: Duration, drops: &Drops) -> Result<Vec<Sent>> {
    let fail = |e: std::io::Error| Error::Probe {
        probe: format!("udp {} -> {dst}:{port}", ns.name()),
        message: e.to_string(),
    };
    ns.run(|| {
        let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(fail)?;
        sock.connect(SocketAddrV4::new(dst, port)).map_err(fail)?;
        sock.set_nonblocking(true).map_err(fail)?;
        let mut out = vec![];
        for _ in 0..count {
            let nonce = new_nonce();
            sock.send(&nonce).map_err(fail)?;
            let answer = wait_answer(&sock, &nonce, timeout, &|| drops.nonce(&nonce)).map_err(fail)?;
            out.push(Sent { nonce, ident: Ident::Datagram, replied: answer.is_some(), answer });
        }
        Ok(out)
    })
}

fn wait_answer(
    sock: &UdpSocket,
    nonce: &[u8],
    timeout: Duration,
    dropped: &dyn Fn() -> bool,
) -> std::io::Result<Option<String>> {
    let mut buf = [0u8; 2048];
    wait::answer(sock.as_fd(), timeout, dropped, || {
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => {
                    if let Some(who) = answer_from(&buf[..n], nonce) {
                        return Ok(Read::Done(Some(who)));
                    }
                }
                // An ICMP error (port unreachable) is an answer of sorts: no server replied.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(Read::Done(None)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Read::Again),
                Err(e) => return Err(e),
            }
        }
    })
}
