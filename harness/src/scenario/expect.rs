//! What a probe must show: the hooks each packet meets (path), what it carries at each capture
//! point (addresses, ports, TTL, MACs), and the conntrack entries it leaves.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::evidence::packet::Mac;
use crate::firewall::Backend;
use crate::kernel::KernelRange;
use crate::observe::trace::Hook;

/// Request or reply of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The packet the probe sends (echo request, datagram, SYN).
    Request,
    /// The packet that answers it (echo reply, response datagram, SYN-ACK).
    Reply,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Request => "request",
            Direction::Reply => "reply",
        })
    }
}

/// Where a pcap ran: `netns/iface`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CapturePoint {
    /// The netns (as the scenario names it).
    pub netns: String,
    /// The interface in it.
    pub iface: String,
}

impl fmt::Display for CapturePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.netns, self.iface)
    }
}

impl FromStr for CapturePoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // `host/peer:c1/eth0`: the host end of c1's eth0 veth, whatever a tool named it.
        let plain = |i: &str| !i.is_empty() && !i.contains('/');
        let peer_ok = |i: &str| {
            i.strip_prefix("peer:").and_then(|p| p.split_once('/')).is_some_and(|(n, i)| plain(n) && plain(i))
        };
        match s.split_once('/') {
            Some((n, i)) if !n.is_empty() && (plain(i) && !i.starts_with("peer:") || peer_ok(i)) => {
                Ok(CapturePoint { netns: n.into(), iface: i.into() })
            }
            _ => Err(format!(
                "`{s}` is not a capture point (want netns/interface, e.g. host/eth0, or netns/peer:netns/interface for the other end of a veth, e.g. host/peer:c1/eth0)"
            )),
        }
    }
}

impl Serialize for CapturePoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CapturePoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<CapturePoint, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A pattern over hooks: `nat` (any chain of the nat table), `nat:POSTROUTING`, `eb:nat`,
/// `filter:FORWARD:rule:3`; `*` matches any one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookPattern(Vec<String>);

impl HookPattern {
    /// Whether `hook` matches, `*` standing for any one part.
    pub fn matches(&self, hook: &Hook) -> bool {
        let text = hook.to_string();
        let parts: Vec<&str> = text.split(':').collect();
        self.0.len() <= parts.len() && self.0.iter().zip(parts).all(|(p, h)| p == "*" || p == h)
    }
}

impl FromStr for HookPattern {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<String> = s.split(':').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) || parts.len() > 4 {
            return Err(format!("`{s}` is not a hook pattern (want e.g. nat, nat:POSTROUTING, eb:nat:OUTPUT)"));
        }
        Ok(HookPattern(parts))
    }
}

impl fmt::Display for HookPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(":"))
    }
}

impl Serialize for HookPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HookPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HookPattern, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// What the hooks of a probe's packets in one netns must be. Without `packet` and
/// `answered_by` it holds for every packet of the probe; see [`PathExpect::applies`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathExpect {
    /// Which packets of the flow (1 = the first); every packet when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet: Option<Packets>,
    /// Only the packets this server netns answered: one entry per endpoint of a load split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// The packet's direction this entry is about.
    #[serde(default = "request", skip_serializing_if = "is_request")]
    pub direction: Direction,
    /// The netns whose hooks are checked.
    pub netns: String,
    /// Only under this backend: paths that really differ by backend are written as variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// Only on kernels in this range (`">=6.1"`): paths that really differ by kernel are variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelRange>,
    /// The whole sequence, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<Vec<Hook>>,
    /// These hooks in this order, others may stand between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Vec<Hook>>,
    /// No hook matching any of these patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub never: Vec<HookPattern>,
    /// The last hook the packet met in this netns: where it was dropped, or where it left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Hook>,
}

impl PathExpect {
    /// An entry about every packet of the probe in `netns`, asserting nothing yet.
    pub fn new(direction: Direction, netns: &str) -> PathExpect {
        PathExpect {
            packet: None,
            answered_by: None,
            direction,
            netns: netns.into(),
            backend: None,
            kernel: None,
            exact: None,
            includes: None,
            never: vec![],
            last: None,
        }
    }
}

fn request() -> Direction {
    Direction::Request
}

fn is_request(d: &Direction) -> bool {
    *d == Direction::Request
}

/// Which packets of a probe an expectation is about: one (`packet = 2`), or one and every later
/// one (`packet = "2-"`: the packets after the first of a flow, which conntrack already knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Packets {
    /// One packet (`packet = 2`).
    One(u16),
    /// This packet and every one after it (`packet = "2-"`).
    From(u16),
}

impl Packets {
    /// Whether packet number `packet` is selected.
    pub fn contains(&self, packet: u16) -> bool {
        match *self {
            Packets::One(n) => packet == n,
            Packets::From(n) => packet >= n,
        }
    }

    /// The lowest packet it names.
    pub fn first(&self) -> u16 {
        match *self {
            Packets::One(n) | Packets::From(n) => n,
        }
    }
}

impl fmt::Display for Packets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Packets::One(n) => write!(f, "packet {n}"),
            Packets::From(n) => write!(f, "packets {n}-"),
        }
    }
}

impl Serialize for Packets {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Packets::One(n) => s.serialize_u16(n),
            Packets::From(n) => s.collect_str(&format_args!("{n}-")),
        }
    }
}

impl<'de> Deserialize<'de> for Packets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Packets, D::Error> {
        let from = |w: &str| w.strip_suffix('-').and_then(|n| n.parse().ok()).map(Packets::From);
        number_or_word(d, "a packet number (2) or a packet and every later one (\"2-\")", Packets::One, from)
    }
}

/// A value written as a number from 0 to 65535 or as a word (`packet = 2` or `"2-"`, `sport =
/// 80` or `"kept"`), `expecting` saying which.
fn number_or_word<'de, D: Deserializer<'de>, T>(
    d: D,
    expecting: &'static str,
    number: fn(u16) -> T,
    word: fn(&str) -> Option<T>,
) -> Result<T, D::Error> {
    struct V<T> {
        expecting: &'static str,
        number: fn(u16) -> T,
        word: fn(&str) -> Option<T>,
    }
    impl<T> serde::de::Visitor<'_> for V<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
            u16::try_from(v).map(self.number).map_err(|_| E::custom(format!("{v} is not {}", self.expecting)))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
            u16::try_from(v).map(self.number).map_err(|_| E::custom(format!("{v} is not {}", self.expecting)))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
            (self.word)(v).ok_or_else(|| E::custom(format!("`{v}` is not {}", self.expecting)))
        }
    }
    d.deserialize_any(V { expecting, number, word })
}

/// What a TCP/UDP port must be at a capture point: a number the scenario fixes (`dport = 80`),
/// or its relation to the port of the probe's own connection (see [`PortExpect::Kept`]), for
/// ports the kernel chooses (a client's ephemeral port, a port MASQUERADE picks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortExpect {
    /// This port number.
    Is(u16),
    /// `"kept"`: the same port the probe's connection has where its sender put it on the wire,
    /// for this side of the connection (a request's sport and a reply's dport: the client's
    /// port; a request's dport and a reply's sport: the port the probe sent to).
    Kept,
    /// `"changed"`: another port than that one: NAT translated it.
    Changed,
}

impl From<u16> for PortExpect {
    fn from(p: u16) -> PortExpect {
        PortExpect::Is(p)
    }
}

impl fmt::Display for PortExpect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortExpect::Is(p) => write!(f, "{p}"),
            PortExpect::Kept => f.write_str("kept"),
            PortExpect::Changed => f.write_str("changed"),
        }
    }
}

impl Serialize for PortExpect {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            PortExpect::Is(p) => s.serialize_u16(*p),
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for PortExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PortExpect, D::Error> {
        let word = |w: &str| match w {
            "kept" => Some(PortExpect::Kept),
            "changed" => Some(PortExpect::Changed),
            _ => None,
        };
        number_or_word(d, "a port (0 to 65535), \"kept\" or \"changed\"", PortExpect::Is, word)
    }
}

/// What addresses a probe's packets carried at one capture point. Without `packet` and
/// `answered_by` it holds for every packet of the probe; see [`AddrExpect::applies`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddrExpect {
    /// Which packets of the flow (1 = the first); every packet when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet: Option<Packets>,
    /// Only the packets this server netns answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// The packet's direction this entry is about.
    #[serde(default = "request", skip_serializing_if = "is_request")]
    pub direction: Direction,
    /// Where the packet is looked at.
    pub at: CapturePoint,
    /// Only under this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// Only on kernels in this range (`"<6.1"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelRange>,
    /// Its source address there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// Its destination address there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    /// TCP/UDP source port: a number, `"kept"` or `"changed"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<PortExpect>,
    /// TCP/UDP destination port: a number, `"kept"` or `"changed"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<PortExpect>,
    /// IPv4 TTL / IPv6 hop limit (`hoplimit` is the same key): how many routers it crossed.
    #[serde(default, alias = "hoplimit", skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    /// Its source MAC there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_src: Option<Mac>,
    /// Its destination MAC there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_dst: Option<Mac>,
    /// The packet must not be seen there at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
}

impl AddrExpect {
    /// An entry about every packet of the probe at `at`, asserting nothing yet.
    pub fn new(direction: Direction, at: CapturePoint) -> AddrExpect {
        AddrExpect {
            packet: None,
            answered_by: None,
            direction,
            at,
            backend: None,
            kernel: None,
            src: None,
            dst: None,
            sport: None,
            dport: None,
            ttl: None,
            mac_src: None,
            mac_dst: None,
            absent: false,
        }
    }

    /// Whether it says anything about the packet.
    pub fn asserts_something(&self) -> bool {
        self.absent
            || self.src.is_some()
            || self.dst.is_some()
            || self.sport.is_some()
            || self.dport.is_some()
            || self.ttl.is_some()
            || self.mac_src.is_some()
            || self.mac_dst.is_some()
    }
}
