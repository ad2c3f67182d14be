//! ICMP echo probes over a raw socket, ICMPv4 or ICMPv6 by the target's family: the target's
//! kernel answers, echoing the nonce.

use std::io;
use std::net::{IpAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::wait::{self, Read};
use super::{Context, Heard, Matcher, Prober, Sent, new_nonce};
use crate::error::{Error, Result};
use crate::evidence::packet::{L4, PacketInfo, contains};
use crate::firewall::Family;
use crate::scenario::{ConntrackProto, Direction, ProbeKind};

/// ICMP types of an echo request and its reply, per family.
const ECHO_V4: (u8, u8) = (8, 0);
const ECHO_V6: (u8, u8) = (128, 129);

/// `kind = "icmp"`.
pub struct Icmp;

impl Prober for Icmp {
    fn kind(&self) -> ProbeKind {
        ProbeKind::Icmp
    }

    fn conntrack_proto(&self, v6: bool) -> ConntrackProto {
        ConntrackProto::icmp_over(if v6 { Family::V6 } else { Family::V4 })
    }

    fn needs_port(&self) -> bool {
        false
    }

    /// `count` echo requests, one after the other, each with its own nonce and the same ICMP id
    /// (one conntrack flow), each waited for up to the timeout. Mirrors
    /// `ip netns exec NS ping -c COUNT -W TIMEOUT DST`.
    fn send(&self, cx: &Context<'_>) -> Result<Vec<Sent>> {
        let dst = cx.dst;
        let id = (crate::random::u64() & 0xffff) as u16;
        let what =
            |e: io::Error| Error::Probe { probe: format!("icmp {} -> {dst}", cx.ns.name()), message: e.to_string() };
        cx.ns.run(|| {
            let sock = raw_icmp_socket(dst).map_err(|e| Error::netns(cx.ns.name(), "open raw ICMP socket", e))?;
            let mut sent = vec![];
            for seq in 1..=cx.spec.count {
                let nonce = new_nonce();
                let mut payload = nonce.clone();
                payload.resize(56, 0);
                let timeout = cx.packet(seq.into())?;
                let (sent_at, sent_wall) = (Instant::now(), super::wall_clock());
                let heard = match send_echo(&sock, dst, id, seq, &payload) {
                    Ok(()) => {
                        let dropped = || match (cx.drops.nonce(&nonce), cx.drops.echo(id, seq)) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                        match wait_reply(&sock, dst, &nonce, timeout, &dropped).map_err(what)? {
                            Some(Got::Reply) => Heard::reply(sent_at.elapsed()),
                            Some(Got::Refused(from, how)) => Heard::refused(Some(from), how, sent_at.elapsed()),
                            None => match cx.late_window().filter(|_| dropped().is_none()) {
                                Some(window) => match wait_reply(&sock, dst, &nonce, window, &dropped).map_err(what)? {
                                    Some(Got::Reply) => Heard::late(sent_wall, sent_at.elapsed()),
                                    _ => Heard::nothing(),
                                },
                                None => Heard::nothing(),
                            },
                        }
                    }
                    Err(e) => match super::local_drop("sendto", &cx.spec.from, &e) {
                        Some(how) => Heard::dropped(how),
                        None => return Err(what(e)),
                    },
                };
                sent.push(Sent { nonce, matcher: Box::new(Echo), heard, answer: None });
            }
            Ok(sent)
        })
    }
}

/// An echo request carries the nonce, and its reply echoes it.
#[derive(Debug, Clone)]
pub struct Echo;

impl Matcher for Echo {
    fn classify(&self, nonce: &[u8], info: &PacketInfo, bytes: &[u8]) -> Option<Direction> {
        let L4::Icmp { kind, .. } = info.l4 else { return None };
        if !contains(bytes, nonce) {
            return None;
        }
        // An ICMP error quoting the request (unreachable, too big) carries the nonce too: neither.
        match kind {
            k if k == ECHO_V4.0 || k == ECHO_V6.0 => Some(Direction::Request),
            k if k == ECHO_V4.1 || k == ECHO_V6.1 => Some(Direction::Reply),
            _ => None,
        }
    }

    fn clone_box(&self) -> Box<dyn Matcher> {
        Box::new(self.clone())
    }
}

fn raw_icmp_socket(dst: IpAddr) -> io::Result<OwnedFd> {
    let (family, proto) = match dst {
        IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP),
        // The kernel fills in an ICMPv6 raw socket's checksums (RFC 3542 §3.1).
        IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
    };
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe { libc::socket(family, libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn send_echo(sock: &OwnedFd, dst: IpAddr, id: u16, seq: u16, payload: &[u8]) -> io::Result<()> {
    let request = if dst.is_ipv4() { ECHO_V4.0 } else { ECHO_V6.0 };
    let mut msg = vec![request, 0, 0, 0];
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend_from_slice(payload);
    let fd = sock.as_raw_fd();
    let flags = nix::sys::socket::MsgFlags::empty();
    match dst {
        IpAddr::V4(a) => {
            let sum = checksum(&msg);
            msg[2..4].copy_from_slice(&sum.to_be_bytes());
            nix::sys::socket::sendto(fd, &msg, &nix::sys::socket::SockaddrIn::from(SocketAddrV4::new(a, 0)), flags)?
        }
        IpAddr::V6(a) => {
            let to = nix::sys::socket::SockaddrIn6::from(SocketAddrV6::new(a, 0, 0, 0));
            nix::sys::socket::sendto(fd, &msg, &to, flags)?
        }
    };
    Ok(())
}

/// What came back to an echo request.
enum Got {
    Reply,
    /// A destination unreachable quoting it: from whom, what it said.
    Refused(IpAddr, String),
}

/// What came back to the echo request carrying `nonce` before the deadline: its reply, or a
/// destination unreachable quoting it. A raw ICMPv4 socket reads whole IP packets, an ICMPv6
/// one the ICMPv6 message only (RFC 3542 §3), its sender in the socket address.
fn wait_reply(
    sock: &OwnedFd,
    dst: IpAddr,
    nonce: &[u8],
    timeout: Duration,
    dropped: &dyn Fn() -> Option<Duration>,
) -> io::Result<Option<Got>> {
    let mut buf = vec![0u8; 65536];
    let read = |pkt: &[u8], from: Option<IpAddr>| -> Option<Got> {
        if !contains(pkt, nonce) {
            return None;
        }
        match dst {
            IpAddr::V4(_) => {
                let info = PacketInfo::from_ip(pkt)?;
                let L4::Icmp { kind, code, .. } = info.l4 else { return None };
                if kind == ECHO_V4.1 {
                    return Some(Got::Reply);
                }
                Some(Got::Refused(info.src?, super::unreachable_text(false, kind, code)?))
            }
            IpAddr::V6(_) => {
                let (kind, code) = (*pkt.first()?, *pkt.get(1)?);
                if kind == ECHO_V6.1 {
                    return Some(Got::Reply);
                }
                Some(Got::Refused(from?, super::unreachable_text(true, kind, code)?))
            }
        }
    };
    wait::answer(sock.as_fd(), timeout, dropped, || {
        loop {
            let got = nix::sys::socket::recvfrom::<nix::sys::socket::SockaddrStorage>(sock.as_raw_fd(), &mut buf);
            match got {
                Ok((n, addr)) => {
                    let from = addr.and_then(|a| a.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())));
                    if let Some(got) = read(&buf[..n], from) {
                        return Ok(Read::Done(Some(got)));
                    }
                }
                Err(nix::Error::EAGAIN) => return Ok(Read::Again),
                Err(e) => return Err(e.into()),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn icmp(kind: u8) -> PacketInfo {
        PacketInfo { l4: L4::Icmp { kind, code: 0, id: Some(1), seq: Some(1) }, ..Default::default() }
    }

    #[test]
    fn echoes_of_both_families_are_found_by_nonce_and_errors_quoting_them_are_not() {
        let nonce = b"netpath-00112233445566aa";
        let bytes = b"..netpath-00112233445566aa..";
        for (kind, want) in [
            (8, Some(Direction::Request)),
            (0, Some(Direction::Reply)),
            (128, Some(Direction::Request)),
            (129, Some(Direction::Reply)),
            (3, None),
            (1, None),
        ] {
            assert_eq!(Echo.classify(nonce, &icmp(kind), bytes), want, "type {kind}");
        }
        assert_eq!(Echo.classify(nonce, &icmp(128), b"another packet"), None);
    }
}
