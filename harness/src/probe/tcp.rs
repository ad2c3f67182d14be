//! TCP probes: one connection per packet, carrying a nonce as its request, over the target's
//! family.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrStorage, sockopt};

use super::{Context, Heard, Matcher, Prober, Sent, answer_from, any_of, new_nonce};
use crate::error::{Error, Result};
use crate::evidence::packet::{L4, PacketInfo, contains};
use crate::observe::drops::Drops;
use crate::scenario::{ConntrackProto, Direction, ProbeKind};

/// `kind = "tcp"`.
pub struct Tcp;

impl Prober for Tcp {
    fn kind(&self) -> ProbeKind {
        ProbeKind::Tcp
    }

    fn conntrack_proto(&self, _v6: bool) -> ConntrackProto {
        ConntrackProto::Tcp
    }

    fn needs_port(&self) -> bool {
        true
    }

    /// `count` connections to `to:port`, one after the other, each sending its nonce and reading
    /// the answer, each within the timeout. Mirrors `ip netns exec NS nc DST PORT`.
    fn send(&self, cx: &Context<'_>) -> Result<Vec<Sent>> {
        let port = cx.port()?;
        let fail = |e: std::io::Error| Error::Probe {
            probe: format!("tcp {} -> {}", cx.ns.name(), SocketAddr::new(cx.dst, port)),
            message: e.to_string(),
        };
        cx.ns.run(|| {
            (1..=cx.spec.count)
                .map(|n| {
                    let timeout = cx.packet(n.into())?;
                    one(&cx.spec.from, cx.dst, port, timeout, cx.late_window(), cx.drops).map_err(fail)
                })
                .collect()
        })
    }
}

/// A TCP connection from local port `sport` to `dst:dport`, opened at `since` (wall clock):
/// found everywhere by its initial sequence number `isn` (NAT leaves it alone); the reply is the
/// SYN-ACK acknowledging it. `isn` is learnt from the captures: from the request segment that
/// carries the nonce (seq = isn + 1), or else from the first SYN with those ports sent after
/// `since` (a later connection may reuse the local port).
#[derive(Debug, Clone)]
pub struct Connection {
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
    pub since: Duration,
    pub isn: Option<u32>,
    /// The earliest fitting SYN seen so far: (when, its sequence number).
    candidate: Option<(Duration, u32)>,
}

impl Connection {
    pub fn new(sport: u16, dst: IpAddr, dport: u16, since: Duration) -> Connection {
        Connection { sport, dst, dport, since, isn: None, candidate: None }
    }
}

impl Matcher for Connection {
    fn classify(&self, _nonce: &[u8], info: &PacketInfo, _bytes: &[u8]) -> Option<Direction> {
        let (Some(isn), L4::Tcp { flags, seq, ack, .. }) = (self.isn, &info.l4) else { return None };
        if flags == "S" && *seq == Some(isn) {
            Some(Direction::Request)
        } else if flags.contains('S') && flags.contains('.') && *ack == Some(isn.wrapping_add(1)) {
            Some(Direction::Reply)
        } else {
            None
        }
    }

    /// A RST acknowledging the SYN (what a host with nothing listening, or `REJECT
    /// --reject-with tcp-reset`, sends), or an ICMP error quoting the SYN, found by its sequence
    /// number (the SYN carries no nonce; NAT leaves the number alone).
    fn refusal(&self, _nonce: &[u8], info: &PacketInfo, bytes: &[u8]) -> Option<String> {
        let isn = self.isn?;
        match &info.l4 {
            L4::Tcp { flags, ack, .. } if flags.contains('R') && *ack == Some(isn.wrapping_add(1)) => {
                Some("TCP RST".into())
            }
            L4::Icmp { kind, code, .. } => {
                let v6 = matches!(info.src, Some(IpAddr::V6(_)));
                let what = super::unreachable_text(v6, *kind, *code)?;
                contains(bytes, &isn.to_be_bytes()).then_some(what)
            }
            _ => None,
        }
    }

    fn learns(&self) -> bool {
        true
    }

    fn retransmits(&self) -> bool {
        true
    }

    fn learn(&mut self, nonce: &[u8], info: &PacketInfo, bytes: &[u8], ts: Duration, carried: Option<&[u8]>) {
        let L4::Tcp { sport: s, dport: d, flags, seq: Some(seq), .. } = &info.l4 else { return };
        // The server's answer quotes the nonce too; only the client's request names the ISN.
        let carried = if contains(bytes, b"reply netpath-") { None } else { carried };
        if !flags.contains('S') && carried == Some(nonce) {
            self.isn = Some(seq.wrapping_sub(1));
        } else if flags == "S"
            && *s == self.sport
            && *d == self.dport
            && info.dst == Some(self.dst)
            && ts >= self.since
            && self.candidate.is_none_or(|(t, _)| ts < t)
        {
            self.candidate = Some((ts, *seq));
        }
    }

    /// The nonce-carrying segment wins over the SYN by ports.
    fn settle(&mut self) {
        if self.isn.is_none() {
            self.isn = self.candidate.map(|(_, seq)| seq);
        }
    }

    fn without_nonce(&self) -> bool {
        true
    }

    fn clone_box(&self) -> Box<dyn Matcher> {
        Box::new(self.clone())
    }
}

/// The least time between two transmissions of a SYN: TCP_TIMEOUT_INIT, the initial
/// retransmission timeout, which backoff (linear, tcp_syn_linear_timeouts, or exponential) only
/// lengthens. (A BPF sock_ops program could lower it: none runs in a lab.)
const SYN_RTO: Duration = Duration::from_secs(1);

/// How often the drops are looked at while the handshake is pending.
const SLICE: Duration = Duration::from_millis(5);

/// CLOCK_MONOTONIC now: the clock of the kernel's drop times.
fn monotonic() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wait for the handshake on `fd` to end (`true`) or for the wait to be over (`false`): the
/// deadline, or a drop of every SYN that could have been answered in time. The kernel sends an
/// unanswered SYN again, the same (a `statistic` or `limit` rule may let a second one through
/// where the first was dropped), and at least [`SYN_RTO`] after the one before: after `n`
/// drops of this connection's SYN the next transmission cannot leave before `sent_at + n`
/// s. So the wait ends once the kernel proved dropped every SYN sent so far and the next one
/// would come after the deadline: what a full wait would have seen, sooner. A drop is this
/// connection's by the addresses and ports it died with, since `since` (before NAT rewrote
/// them: a SYN dropped after DNAT or SNAT is not recognised, and its probe waits as before).
fn handshake(
    fd: &OwnedFd,
    deadline: Instant,
    sent_at: Instant,
    syn_drops: &dyn Fn() -> Vec<Duration>,
) -> std::io::Result<bool> {
    let mut deadline = deadline;
    let mut seen = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
        let ms = PollTimeout::try_from(left.min(SLICE).as_millis() as i32 + 1).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(0) | Err(nix::Error::EINTR) => {}
            Ok(_) => return Ok(true),
            Err(e) => return Err(e.into()),
        }
        let drops = syn_drops();
        if drops.len() > seen {
            seen = drops.len();
            let next_syn = sent_at + SYN_RTO * seen as u32;
            if next_syn >= deadline {
                let grace = drops.iter().copied().min().unwrap_or(super::wait::AFTER_DROP);
                deadline = deadline.min(Instant::now() + grace);
            }
        }
    }
}

/// One connection to `dst:port` within `timeout`; `late`: how much longer to listen for a
/// SYN-ACK that is late ([`super::Context::late_window`]).
fn one(
    netns: &str,
    dst: IpAddr,
    port: u16,
    timeout: Duration,
    late: Option<Duration>,
    drops: &Drops,
) -> std::io::Result<Sent> {
    let nonce = new_nonce();
    let deadline = Instant::now() + timeout;
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    // Bind first so the local port is known even when the connection fails: it is how the
    // SYN is found in the captures.
    let family = if dst.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd: OwnedFd = socket::socket(family, SockType::Stream, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(SocketAddr::new(any_of(dst), 0)))?;
    let local: SockaddrStorage = socket::getsockname(fd.as_raw_fd())?;
    let sport = local.as_sockaddr_in().map(|a| a.port()).or(local.as_sockaddr_in6().map(|a| a.port())).unwrap_or(0);
    let matcher = Connection::new(sport, dst, port, since);
    let sent_at = Instant::now();
    let sent_mono = monotonic();
    let sent = |m: Connection, heard: Heard| Sent { nonce: nonce.clone(), matcher: Box::new(m), heard, answer: None };
    match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(SocketAddr::new(dst, port))) {
        Ok(()) | Err(nix::Error::EINPROGRESS) => {}
        Err(e) => {
            // No route of its own: nothing was sent, nothing can answer.
            if matches!(e, nix::Error::ENETUNREACH | nix::Error::EHOSTUNREACH) {
                return Ok(sent(matcher, Heard::nothing()));
            }
            if let Some(heard) = refused_by(e, sent_at.elapsed()) {
                return Ok(sent(matcher, heard));
            }
            let io = std::io::Error::from(e);
            return match super::local_drop("connect", netns, &io) {
                Some(how) => Ok(sent(matcher, Heard::dropped(how))),
                None => Err(io),
            };
        }
    }
    // The source address is chosen by now: with the ports, what the kernel's drops name.
    let local: SockaddrStorage = socket::getsockname(fd.as_raw_fd())?;
    let src =
        local.as_sockaddr_in().map(|a| IpAddr::V4(a.ip())).or(local.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())));
    let syn_drops = || src.map(|src| drops.syn((src, sport, dst, port), sent_mono)).unwrap_or_default();
    if !handshake(&fd, deadline, sent_at, &syn_drops)? {
        // No SYN-ACK in time, or every SYN that could have been answered in time was dropped:
        // nothing came back, and the kernel's drops are in the evidence. (A SYN an OUTPUT rule
        // dropped ends here too: connect(2) keeps the EPERM to itself and retransmits.)
        if let Some(window) = late.filter(|_| syn_drops().is_empty())
            && handshake(&fd, Instant::now() + window, sent_at, &syn_drops)?
            && socket::getsockopt(&fd, sockopt::SocketError)? == 0
        {
            return Ok(sent(matcher, Heard::late(since, sent_at.elapsed())));
        }
        return Ok(sent(matcher, Heard::nothing()));
    }
    let error = socket::getsockopt(&fd, sockopt::SocketError)?;
    if error != 0 {
        // A RST or an ICMP error ended the handshake.
        let heard = refused_by(nix::Error::from_raw(error), sent_at.elapsed()).unwrap_or_else(Heard::nothing);
        return Ok(sent(matcher, heard));
    }
    let replied_after = sent_at.elapsed();
    // SAFETY: the fd is a connected TCP socket owned here; TcpStream takes ownership.
    let mut stream = unsafe { TcpStream::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(fd)) };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1))))?;
    stream.write_all(&nonce)?;
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let answer = answer_from(&buf, &nonce);
    Ok(Sent { nonce, matcher: Box::new(matcher), heard: Heard::reply(replied_after), answer })
}

/// The refusal a connect error is: ECONNREFUSED is a RST (or an ICMP port unreachable), the
/// unreachable errors an ICMP destination unreachable that came back. The captures say which.
fn refused_by(e: nix::Error, after: Duration) -> Option<Heard> {
    let how = match e {
        nix::Error::ECONNREFUSED => "connect: ECONNREFUSED (a TCP RST or an ICMP port unreachable)",
        nix::Error::EHOSTUNREACH => "connect: EHOSTUNREACH (an ICMP destination unreachable)",
        nix::Error::ENETUNREACH => "connect: ENETUNREACH (an ICMP net unreachable)",
        nix::Error::EACCES => "connect: EACCES (an ICMP administratively prohibited)",
        _ => return None,
    };
    Some(Heard::refused(None, how, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(flags: &str, seq: u32, ack: u32) -> PacketInfo {
        PacketInfo {
            dst: Some("2.2.2.2".parse().unwrap()),
            l4: L4::Tcp { sport: 40000, dport: 88, flags: flags.into(), seq: Some(seq), ack: Some(ack) },
            ..Default::default()
        }
    }

    #[test]
    fn a_connection_is_followed_by_sequence_numbers() {
        let t = Duration::from_secs;
        let mut s = Connection::new(40000, "2.2.2.2".parse().unwrap(), 88, t(10));
        let none: &[u8] = &[];
        assert_eq!(s.classify(none, &tcp("S", 1000, 0), &[]), None, "nothing is known before the SYN is seen");
        // An older connection from the same port, before this one began, is not it.
        s.learn(none, &tcp("S", 500, 0), &[], t(9), None);
        s.learn(none, &tcp("S", 2000, 0), &[], t(12), None);
        s.learn(none, &tcp("S", 1000, 0), &[], t(11), None);
        s.settle();
        // After DNAT the SYN has other addresses and ports but the same sequence number.
        let mut natted = tcp("S", 1000, 0);
        natted.l4 = L4::Tcp { sport: 40000, dport: 12345, flags: "S".into(), seq: Some(1000), ack: Some(0) };
        assert_eq!(s.classify(none, &natted, &[]), Some(Direction::Request));
        assert_eq!(s.classify(none, &tcp("S.", 777, 1001), &[]), Some(Direction::Reply));
        assert_eq!(s.classify(none, &tcp("S.", 777, 2001), &[]), None);
        assert_eq!(s.classify(none, &tcp(".", 1001, 778), &[]), None, "the handshake's ACK is neither");

        // The segment carrying the nonce names the connection even when ports say otherwise;
        // the server's answer quoting it does not.
        let nonce = b"netpath-00000000000000aa";
        let mut s2 = Connection::new(40000, "2.2.2.2".parse().unwrap(), 88, t(10));
        s2.learn(nonce, &tcp("P.", 9001, 9), b"reply netpath-00000000000000aa from x", t(21), Some(nonce));
        s2.learn(nonce, &tcp("P.", 4001, 9), b"..netpath-00000000000000aa..", t(20), Some(nonce));
        s2.learn(nonce, &tcp("S", 1000, 0), &[], t(11), None);
        s2.settle();
        assert_eq!(s2.classify(nonce, &tcp("S", 4000, 0), &[]), Some(Direction::Request));
    }

    #[test]
    fn a_connection_over_ipv6_is_learnt_by_its_destination() {
        let t = Duration::from_secs;
        let dst: IpAddr = "fd00::2".parse().unwrap();
        let mut s = Connection::new(40000, dst, 88, t(10));
        let mut syn = tcp("S", 1000, 0);
        syn.dst = Some(dst);
        s.learn(&[], &tcp("S", 500, 0), &[], t(11), None);
        s.learn(&[], &syn, &[], t(12), None);
        s.settle();
        assert_eq!(s.isn, Some(1000), "the IPv4 SYN with the same ports is another connection");
    }
}
