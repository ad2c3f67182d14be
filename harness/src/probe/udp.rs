//! UDP probes: one datagram per packet, each answered by a scenario's server.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use super::wait::{self, Read};
use super::{Context, Heard, Matcher, Prober, Sent, answer_from, any_of, new_nonce};
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
                let timeout = cx.packet(n.into())?;
                let (sent_at, sent_wall) = (Instant::now(), super::wall_clock());
                let dropped = || cx.drops.nonce(&nonce);
                let (heard, answer) = match sock.send(&nonce) {
                    Ok(_) => match wait_answer(&sock, &nonce, timeout, &dropped).map_err(fail)? {
                        Some(Got::Reply(server)) => (Heard::reply(sent_at.elapsed()), Some(server)),
                        Some(Got::Refused(how)) => (Heard::refused(None, how, sent_at.elapsed()), None),
                        None => match cx.late_window().filter(|_| dropped().is_none()) {
                            Some(window) => match wait_answer(&sock, &nonce, window, &dropped).map_err(fail)? {
                                Some(Got::Reply(_)) => (Heard::late(sent_wall, sent_at.elapsed()), None),
                                _ => (Heard::nothing(), None),
                            },
                            None => (Heard::nothing(), None),
                        },
                    },
                    Err(e) => match super::local_drop("send", &cx.spec.from, &e) {
                        Some(how) => (Heard::dropped(how), None),
                        None => return Err(fail(e)),
                    },
                };
                out.push(Sent { nonce, matcher: Box::new(Datagram), heard, answer });
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

/// What came back to a datagram.
enum Got {
    /// A server's answer, naming the server.
    Reply(String),
    /// An ICMP error the socket reported, in words.
    Refused(&'static str),
}

fn wait_answer(
    sock: &UdpSocket,
    nonce: &[u8],
    timeout: Duration,
    dropped: &dyn Fn() -> Option<Duration>,
) -> std::io::Result<Option<Got>> {
    let mut buf = [0u8; 2048];
    wait::answer(sock.as_fd(), timeout, dropped, || {
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => {
                    if let Some(who) = answer_from(&buf[..n], nonce) {
                        return Ok(Read::Done(Some(Got::Reply(who))));
                    }
                }
                // A connected UDP socket reports the ICMP errors the kernel deems hard (RFC 1122
                // 4.1.3.3): a refusal, whose sender and code the captures tell.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Ok(Read::Done(Some(Got::Refused("recv: ECONNREFUSED (an ICMP port unreachable)"))));
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EHOSTUNREACH | libc::ENETUNREACH | libc::EACCES)) => {
                    return Ok(Read::Done(Some(Got::Refused("recv: an ICMP destination unreachable"))));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Read::Again),
                Err(e) => return Err(e),
            }
        }
    })
}
