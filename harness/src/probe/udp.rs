//! UDP probes: one datagram per packet, each answered by a scenario's server.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use super::wait::{self, Read};
use super::{Context, Matcher, Prober, Sent, answer_from, any_of, new_nonce};
use crate::error::{Error, Result};
use crate::evidence::packet::{L4, PacketInfo, contains};
use crate::scenario::{ConntrackProto, Direction, ProbeKind};

/// `kind = "udp"`.
pub struct Udp;

impl Prober for Udp {
    fn kind(&self) -> ProbeKind {
        ProbeKind::Udp
    }

    fn conntrack_proto(&self, _v6: bool) -> ConntrackProto {
        ConntrackProto::Udp
    }

    fn needs_port(&self) -> bool {
        true
    }

    /// `count` datagrams to `to:port` from one socket (one conntrack flow), each answer waited
    /// for up to the timeout. Mirrors `ip netns exec NS nc -u DST PORT`.
    fn send(&self, cx: &Context<'_>) -> Result<Vec<Sent>> {
        let port = cx.port()?;
        let fail = |e: std::io::Error| Error::Probe {
            probe: format!("udp {} -> {}", cx.ns.name(), SocketAddr::new(cx.dst, port)),
            message: e.to_string(),
        };
        cx.ns.run(|| {
            let sock = UdpSocket::bind(SocketAddr::new(any_of(cx.dst), 0)).map_err(fail)?;
            sock.connect(SocketAddr::new(cx.dst, port)).map_err(fail)?;
            sock.set_nonblocking(true).map_err(fail)?;
            let mut out = vec![];
            for n in 1..=cx.spec.count {
                let nonce = new_nonce();
                sock.send(&nonce).map_err(fail)?;
                let timeout = cx.packet(n.into())?;
                let answer = wait_answer(&sock, &nonce, timeout, &|| cx.drops.nonce(&nonce)).map_err(fail)?;
                out.push(Sent { nonce, matcher: Box::new(Datagram), replied: answer.is_some(), answer });
            }
            Ok(out)
        })
    }
}

/// The datagram carries the nonce, and the server's answer quotes it.
#[derive(Debug, Clone)]
pub struct Datagram;

impl Matcher for Datagram {
    fn classify(&self, nonce: &[u8], info: &PacketInfo, bytes: &[u8]) -> Option<Direction> {
        if !matches!(info.l4, L4::Udp { .. }) || !contains(bytes, nonce) {
            return None;
        }
        Some(if answer_from(bytes, nonce).is_some() { Direction::Reply } else { Direction::Request })
    }

    fn clone_box(&self) -> Box<dyn Matcher> {
        Box::new(self.clone())
    }
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
