//! What a probe must show, one module per kind of expectation: `path.rs` (`[[probe.path]]`, the
//! hooks its packets meet), `addr.rs` (`[[probe.addr]]`, what they carry at a capture point),
//! `conntrack.rs` (`[[probe.conntrack]]`, the entries the flow leaves), `drop.rs`
//! (`[[probe.drop]]`, where and why the kernel drops its packets) and `answer.rs` (`answer`,
//! `replies` and `answered_by`, how and by whom its packets are answered). Each module holds its kind's
//! data types with their serde, and the validation only that kind knows (its `problems`, called
//! from `scenario/validate/probes.rs`); [`crate::verdict`] judges each kind in the module of the
//! same name, and says what adding a kind takes. What several kinds share is here: [`Direction`],
//! [`CapturePoint`], [`Packets`] and the [`Conditions`] of path and address entries.

pub(super) mod addr;
pub(super) mod answer;
pub(super) mod conntrack;
pub(super) mod drop;
pub(super) mod path;
pub(super) mod pattern;

pub use addr::{AddrExpect, PortExpect};
pub use answer::Answer;
pub use conntrack::{ConntrackExpect, ConntrackProto, Tuple};
pub use drop::DropExpect;
pub use path::PathExpect;
pub use pattern::{HookPattern, PathHook, glob};

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::validate::Problems;
use crate::firewall::Backend;
use crate::kernel::KernelRange;
use crate::scenario::{ProbeSpec, Scenario};

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
pub(super) fn number_or_word<'de, D: Deserializer<'de>, T>(
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

/// The conditions of a path or address entry: which packets of the probe it is about, and under
/// which run. Both kinds have the same four keys (`packet`, `answered_by`, `backend`, `kernel`);
/// this is their one meaning: checked here when a file loads, decided for each packet of a run by
/// `Conditions::applies` in [`crate::verdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conditions<'a> {
    /// Which packets of the flow (1 = the first); every packet when `None`.
    pub packet: Option<Packets>,
    /// Only the packets this server netns answered; `packet` counts among them.
    pub answered_by: Option<&'a str>,
    /// Only under this backend.
    pub backend: Option<Backend>,
    /// Only on kernels in this range.
    pub kernel: Option<&'a KernelRange>,
}

impl Conditions<'_> {
    /// What is wrong with the conditions of entry `item` of probe `p`: the packets it names
    /// exist, its endpoint has a server.
    pub(super) fn problems(&self, item: &str, sc: &Scenario, p: &ProbeSpec, ps: &mut Problems) {
        if let Some(sel) = self.packet
            && (sel.first() == 0 || sel.first() > p.count)
        {
            ps.add(
                format!("{item}.packet"),
                format!("packet {} does not exist: the probe sends {} (packets count from 1)", sel.first(), p.count),
            );
        }
        if let Some(server) = self.answered_by
            && !sc.server.iter().any(|s| s.netns == server)
        {
            ps.add(format!("{item}.answered_by"), format!("no [[server]] runs in netns `{server}`"));
        }
    }
}

pub(super) fn request() -> Direction {
    Direction::Request
}

pub(super) fn is_request(d: &Direction) -> bool {
    *d == Direction::Request
}
