//! Probes: real packets sent from inside a netns. Each carries a nonce or is pinned by fields
//! NAT leaves alone (TCP sequence numbers), so the same packet is found at every capture point
//! and in every trace event even after NAT rewrote its addresses.
//!
//! Adding a probe kind takes:
//! - one new file here with a [`Prober`] (whether it needs a port, its conntrack protocol, its
//!   own validation in `problems`, how it sends) and a [`Matcher`] per packet it sends (how the
//!   packet and its reply are found in frames and trace events);
//! - its line in [`PROBERS`];
//! - its variant in [`crate::scenario::ProbeKind`] (the `kind = "..."` of scenario files).
//!
//! A kind a `[[server]]` answers also needs its listening socket in [`server`] and its name in
//! the server kinds `scenario/validate/rules.rs` allows. The unit tests fail if a `ProbeKind`
//! has no prober in [`PROBERS`].

pub mod frame;
pub mod icmp;
pub mod server;
pub mod tcp;
pub mod udp;
pub mod wait;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::bound::RunBound;
use crate::error::{Error, Result};
use crate::evidence::packet::{L4, PacketInfo};
use crate::lab::Lab;
use crate::lab::netns::Netns;
use crate::observe::drops::Drops;
use crate::scenario::{Answer, ConntrackProto, Direction, ProbeKind, ProbeSpec, Scenario};

/// The nonce of one packet: `netpath-` and 16 hex digits, unique per packet of a run.
pub fn new_nonce() -> Vec<u8> {
    format!("netpath-{:016x}", crate::random::u64()).into_bytes()
}

/// The nonce a packet carries, if it is a probe's.
pub fn find_nonce(data: &[u8]) -> Option<Vec<u8>> {
    const TAG: &[u8] = b"netpath-";
    let at = data.windows(TAG.len()).position(|w| w == TAG)?;
    let nonce = data.get(at..at + TAG.len() + 16)?;
    nonce[TAG.len()..].iter().all(u8::is_ascii_hexdigit).then(|| nonce.to_vec())
}

/// What a server sends back for a request: the request and who answered.
pub fn answer_for(request: &[u8], server: &str) -> Vec<u8> {
    let mut out = b"reply ".to_vec();
    out.extend_from_slice(request);
    out.extend_from_slice(format!(" from {server}").as_bytes());
    out
}

/// The server name in an answer to `nonce`, if `data` is one.
pub fn answer_from(data: &[u8], nonce: &[u8]) -> Option<String> {
    let mut head = b"reply ".to_vec();
    head.extend_from_slice(nonce);
    head.extend_from_slice(b" from ");
    let at = data.windows(head.len()).position(|w| w == head.as_slice())?;
    let rest = &data[at + head.len()..];
    let end = rest.iter().position(|b| !b.is_ascii_graphic()).unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// How one packet a probe sent, and its reply, are recognised in a frame or a trace event: each
/// kind of probe has its own (by nonce, by TCP sequence numbers...).
pub trait Matcher: fmt::Debug + Send + Sync {
    /// Whether a packet (its header summary and, where known, its bytes) is this probe packet
    /// or its reply; `nonce` is the probe packet's.
    fn classify(&self, nonce: &[u8], info: &PacketInfo, bytes: &[u8]) -> Option<Direction>;

    /// Whether a packet that is neither ([`Matcher::classify`]) refuses this probe packet: a TCP
    /// RST answering it, an ICMP or ICMPv6 destination unreachable quoting it. `Some(how)`, in
    /// words (`TCP RST`, `ICMP port unreachable`), if so.
    fn refusal(&self, nonce: &[u8], info: &PacketInfo, bytes: &[u8]) -> Option<String> {
        unreachable_quoting(nonce, info, bytes)
    }

    /// Whether its sender's kernel sends the request again, unchanged, while unanswered (a TCP
    /// SYN): then each transmission is its own traversal in the evidence.
    fn retransmits(&self) -> bool {
        false
    }

    /// Whether it must see the captures before it can classify ([`Matcher::learn`]).
    fn learns(&self) -> bool {
        false
    }

    /// Learn what the captures alone can tell (a connection's initial sequence number) from a
    /// frame captured at `ts`; `carried` is the probe nonce the frame's bytes carry, if any.
    fn learn(&mut self, _nonce: &[u8], _info: &PacketInfo, _bytes: &[u8], _ts: Duration, _carried: Option<&[u8]>) {}

    /// Settle what `learn` saw, once every frame was shown.
    fn settle(&mut self) {}

    /// Whether its packets may be found without their nonce (a TCP SYN, a trace event of headers
    /// only): then every such packet is offered to it.
    fn without_nonce(&self) -> bool {
        false
    }

    fn clone_box(&self) -> Box<dyn Matcher>;
}

impl Clone for Box<dyn Matcher> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// What the sender of one packet heard back, as its socket told it: the kind of answer, and
/// what the socket knows of it (who refused, how, how soon). The captures add where it was
/// seen ([`crate::evidence::Response`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    pub kind: Answer,
    /// Who answered, where the socket says (the source of an ICMP error).
    pub from: Option<IpAddr>,
    /// How, in words: `TCP RST`, `ICMP port unreachable`, `sendto: EPERM`.
    pub how: Option<String>,
    /// How long after the send the socket had it.
    pub after: Option<Duration>,
    /// An answer that came after the deadline, while the sender kept listening a while longer
    /// ([`Context::late_window`]): the packet still counts as unanswered (`kind` is none).
    pub late: Option<Late>,
}

/// A reply that reached the sender's socket after its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Late {
    /// When the packet was sent, on the wall clock the captures stamp frames with (since the
    /// Unix epoch): where its wait for a neighbour entry is found among the frames.
    pub sent: Duration,
    /// How long after the send the reply reached the socket.
    pub after: Duration,
}

/// The wall clock (since the Unix epoch), which the captures' timestamps are on.
pub fn wall_clock() -> Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

impl Heard {
    /// The reply came, `after` the send.
    pub fn reply(after: Duration) -> Heard {
        Heard { kind: Answer::Reply, from: None, how: None, after: Some(after), late: None }
    }

    /// Nothing came back in time.
    pub fn nothing() -> Heard {
        Heard { kind: Answer::None, from: None, how: None, after: None, late: None }
    }

    /// A refusal (`how`: `TCP RST`, `ICMP port unreachable`...), from `from` where known.
    pub fn refused(from: Option<IpAddr>, how: impl Into<String>, after: Duration) -> Heard {
        Heard { kind: Answer::Refused, from, how: Some(how.into()), after: Some(after), late: None }
    }

    /// No reply in time, but one `after` the send (past the deadline), for a packet sent at
    /// `sent` on the wall clock ([`wall_clock`]).
    pub fn late(sent: Duration, after: Duration) -> Heard {
        Heard { late: Some(Late { sent, after }), ..Heard::nothing() }
    }

    /// The sender's kernel would not send it (`how`: what failed, and why).
    pub fn dropped(how: impl Into<String>) -> Heard {
        Heard { kind: Answer::Dropped, from: None, how: Some(how.into()), after: None, late: None }
    }
}

/// Whether a send that failed with `e` is a local drop, and if so, what to say of it: EPERM is
/// a netfilter hook that dropped the packet on its way out (an OUTPUT or POSTROUTING rule or
/// policy of the sender's netns); ENOKEY is a WireGuard device with no peer whose allowed-ips
/// cover the destination. Any other error is the run's, not the datapath's.
pub fn local_drop(call: &str, netns: &str, e: &std::io::Error) -> Option<String> {
    match e.raw_os_error()? {
        libc::EPERM => Some(format!(
            "dropped on its way out of netns {netns} ({call}: EPERM): an OUTPUT or POSTROUTING rule or policy dropped it"
        )),
        libc::ENOKEY => Some(format!(
            "dropped by a WireGuard device of netns {netns} ({call}: ENOKEY): no peer's allowed-ips cover the destination"
        )),
        _ => None,
    }
}

/// One packet a probe sent and what came back.
#[derive(Debug, Clone)]
pub struct Sent {
    pub nonce: Vec<u8>,
    pub matcher: Box<dyn Matcher>,
    /// What the sender heard back.
    pub heard: Heard,
    /// Which server answered (udp, tcp).
    pub answer: Option<String>,
}

impl Sent {
    /// Whether the sender got the reply.
    pub fn replied(&self) -> bool {
        self.heard.kind == Answer::Reply
    }

    /// See [`Matcher::classify`].
    pub fn classify(&self, info: &PacketInfo, bytes: &[u8]) -> Option<Direction> {
        self.matcher.classify(&self.nonce, info, bytes)
    }

    /// See [`Matcher::refusal`].
    pub fn refusal(&self, info: &PacketInfo, bytes: &[u8]) -> Option<String> {
        self.matcher.refusal(&self.nonce, info, bytes)
    }

    /// See [`Matcher::learn`].
    pub fn learn(&mut self, info: &PacketInfo, bytes: &[u8], ts: Duration, carried: Option<&[u8]>) {
        self.matcher.learn(&self.nonce, info, bytes, ts, carried);
    }
}

/// The least a packet listens for a late reply ([`Context::late_window`]): a lost ARP request
/// or neighbour solicitation is sent again `retrans_time_ms` later, 1 s by default, and a proxy
/// ARP reply is delayed by up to `proxy_delay`, 0.8 s by default.
pub const LATE_MIN: Duration = Duration::from_secs(1);

/// What a probe's packets are sent with: the probe, its resolved target, the lab and the drops
/// the trace has seen so far (a packet seen dropped is not waited for).
pub struct Context<'a> {
    pub lab: &'a Lab,
    pub scenario: &'a Scenario,
    pub spec: &'a ProbeSpec,
    pub ns: &'a Netns,
    /// The target's address: its family is the probe's.
    pub dst: IpAddr,
    pub timeout: Duration,
    pub drops: &'a Drops,
    /// The run's bound: no wait goes past it.
    pub bound: &'a RunBound,
    /// Whether a packet that expects a reply and got none in time keeps listening for a late
    /// one ([`Context::late_window`]).
    pub late_answers: bool,
}

impl Context<'_> {
    /// The destination port, which kinds with [`Prober::needs_port`] have (validated).
    pub fn port(&self) -> Result<u16> {
        self.spec.port.ok_or_else(|| self.fail("this kind of probe needs a port"))
    }

    pub fn fail(&self, message: impl Into<String>) -> Error {
        Error::Probe { probe: self.spec.name.clone(), message: message.into() }
    }

    /// How long packet `n` (from 1) may wait for its answer: the probe's timeout, or the time
    /// the run has left if that is shorter; `Err` once the run is past its bound.
    pub fn packet(&self, n: usize) -> Result<Duration> {
        // The previous packet's wait may have used up the run: that is where it was.
        self.bound.check()?;
        self.bound.at(format!("probe {}, packet {n} of {}", self.spec.name, self.spec.count))?;
        Ok(self.bound.cap(self.timeout))
    }

    /// How much longer a packet that expects a reply, got none by its deadline and is not known
    /// dropped listens for a late one: as long again as its timeout, and at least [`LATE_MIN`],
    /// within half the time the run has left. A reply that comes then still fails the probe, but the failure can say
    /// "answered 232 ms after the 1,000 ms deadline" instead of reading as no answer at all.
    /// `None` for a probe that expects no reply (its silence costs nothing more).
    pub fn late_window(&self) -> Option<Duration> {
        let window = self.timeout.max(LATE_MIN).min(self.bound.remaining() / 2);
        (self.late_answers && self.spec.expected_answer() == Answer::Reply && !window.is_zero()).then_some(window)
    }
}

/// One kind of probe: what it checks in a scenario, and how it sends its packets (each with a
/// [`Matcher`] that finds it again). A new kind is one file with a `Prober` and one line in
/// [`PROBERS`].
pub trait Prober: Sync {
    fn kind(&self) -> ProbeKind;

    /// Whether it goes to `to:port`.
    fn needs_port(&self) -> bool;

    /// Its protocol as conntrack names it (`conntrack -L`'s first column), over IPv6 if `v6`.
    fn conntrack_proto(&self, v6: bool) -> ConntrackProto;

    /// What is wrong with probe `p` of `sc` that only this kind knows, as (item below the
    /// probe's, message): `("frame.iface", "...")`.
    fn problems(&self, _sc: &Scenario, _p: &ProbeSpec) -> Vec<(String, String)> {
        vec![]
    }

    /// Send the probe's `count` packets, one after the other.
    fn send(&self, cx: &Context<'_>) -> Result<Vec<Sent>>;
}

/// Every kind of probe.
pub static PROBERS: &[&dyn Prober] = &[&icmp::Icmp, &udp::Udp, &tcp::Tcp, &frame::Frame];

/// The prober of a kind.
pub fn prober(kind: ProbeKind) -> &'static dyn Prober {
    *PROBERS.iter().find(|p| p.kind() == kind).expect("every ProbeKind has its prober in PROBERS")
}

/// Send probe `spec` of `sc` from its netns in `lab`, within the run's `bound`.
/// `late_answers`: see [`Context::late_window`].
pub fn send(
    lab: &Lab,
    sc: &Scenario,
    spec: &ProbeSpec,
    drops: &Drops,
    bound: &RunBound,
    late_answers: bool,
) -> Result<Vec<Sent>> {
    let dst = spec.to.addr().ok_or_else(|| Error::Probe {
        probe: spec.name.clone(),
        message: format!("to = \"{}\" was not resolved to an address", spec.to),
    })?;
    let cx = Context {
        lab,
        scenario: sc,
        spec,
        ns: lab.netns(&spec.from)?,
        dst,
        timeout: Duration::from_millis(spec.timeout_ms),
        drops,
        bound,
        late_answers,
    };
    prober(spec.kind).send(&cx)
}

/// Whether `info` is an ICMP or ICMPv6 destination unreachable quoting the packet that carries
/// `nonce` (the kernel quotes as much of it as fits: 576 bytes in all for ICMP, 1280 for
/// ICMPv6, so a probe's nonce near the start of its payload is in the quote), and what it says.
pub fn unreachable_quoting(nonce: &[u8], info: &PacketInfo, bytes: &[u8]) -> Option<String> {
    let L4::Icmp { kind, code, .. } = info.l4 else { return None };
    let v6 = matches!(info.src, Some(IpAddr::V6(_)));
    let what = unreachable_text(v6, kind, code)?;
    crate::evidence::packet::contains(bytes, nonce).then_some(what)
}

/// `ICMP port unreachable`, `ICMPv6 administratively prohibited`... for a destination
/// unreachable (ICMP type 3, ICMPv6 type 1) of code `code`; `None` for another type.
pub fn unreachable_text(v6: bool, kind: u8, code: u8) -> Option<String> {
    let reason = match (v6, kind, code) {
        (false, 3, 0) => "net unreachable",
        (false, 3, 1) => "host unreachable",
        (false, 3, 2) => "protocol unreachable",
        (false, 3, 3) => "port unreachable",
        (false, 3, 9 | 10 | 13) => "administratively prohibited",
        (false, 3, _) => "destination unreachable",
        (true, 1, 0) => "no route",
        (true, 1, 1) => "administratively prohibited",
        (true, 1, 3) => "address unreachable",
        (true, 1, 4) => "port unreachable",
        (true, 1, 5 | 6) => "rejected by policy",
        (true, 1, _) => "destination unreachable",
        _ => return None,
    };
    Some(format!("{} {reason} (code {code})", if v6 { "ICMPv6" } else { "ICMP" }))
}

/// The unspecified address of `dst`'s family, to bind a probe's socket to.
pub fn any_of(dst: IpAddr) -> IpAddr {
    match dst {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_probe_kind_has_exactly_one_prober() {
        // An exhaustive match: a new kind fails to compile here until it is listed.
        let all = [ProbeKind::Icmp, ProbeKind::Udp, ProbeKind::Tcp, ProbeKind::Frame];
        for k in all {
            match k {
                ProbeKind::Icmp | ProbeKind::Udp | ProbeKind::Tcp | ProbeKind::Frame => {}
            }
            assert_eq!(PROBERS.iter().filter(|p| p.kind() == k).count(), 1, "{k:?} in PROBERS");
        }
        assert_eq!(PROBERS.len(), all.len(), "PROBERS has a prober per ProbeKind, no more");
    }

    #[test]
    fn local_drops_are_eperm_and_enokey_and_nothing_else() {
        let e = |n| std::io::Error::from_raw_os_error(n);
        let eperm = local_drop("sendto", "c1", &e(libc::EPERM)).unwrap();
        assert!(eperm.contains("netns c1 (sendto: EPERM)"), "{eperm}");
        // What WireGuard's kernel module says when no peer covers the destination (os error 126).
        assert_eq!(libc::ENOKEY, 126);
        let enokey = local_drop("sendto", "peer1", &e(126)).unwrap();
        assert!(enokey.contains("WireGuard device of netns peer1 (sendto: ENOKEY)"), "{enokey}");
        assert_eq!(local_drop("sendto", "c1", &e(libc::ENETUNREACH)), None);
        assert_eq!(local_drop("sendto", "c1", &std::io::Error::other("x")), None);
    }

    #[test]
    fn answers_name_their_server() {
        let nonce = new_nonce();
        let a = answer_for(&nonce, "ep1");
        assert_eq!(answer_from(&a, &nonce).as_deref(), Some("ep1"));
        assert_eq!(answer_from(&nonce, &nonce), None);
        assert_eq!(find_nonce(&a), Some(nonce));
    }
}
