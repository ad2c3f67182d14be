//! What a probe sends: its kind, target, count and the crafted frame of a frame probe.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::*;
use crate::evidence::packet::Mac;

/// What a probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// ICMP echo request; the target's kernel answers.
    #[default]
    Icmp,
    /// A UDP datagram to `to:port`; a `[[server]]` answers.
    Udp,
    /// A TCP connection to `to:port` carrying one request; a `[[server]]` answers. Packet k of
    /// the probe is connection k: its request is the SYN, its reply the SYN-ACK.
    Tcp,
    /// A crafted TCP segment injected on an interface with an AF_PACKET socket, as `[probe.frame]`
    /// describes it; its reply is whatever answers it (SYN-ACK or RST).
    Frame,
}

/// A crafted TCP segment (the probe's `to` and `port` are its destination).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameSpec {
    /// The interface of the probe's `from` netns it is injected on.
    pub iface: String,
    /// Default: the interface's own MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_src: Option<Mac>,
    /// Default: the MAC of the lab interface that owns the next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_dst: Option<Mac>,
    /// Default: the interface's first address (set it to spoof).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// Its TCP/UDP source port (default: one the kernel would not pick).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// Its IP TTL (hop limit).
    #[serde(default = "default_ttl")]
    pub ttl: u8,
    /// TCP flags as letters: S syn, A ack, F fin, R rst, P push (`S`, `A` for a lone ACK).
    #[serde(default = "default_flags")]
    pub flags: String,
}

fn default_ttl() -> u8 {
    64
}

fn default_flags() -> String {
    "S".into()
}

/// A probe: packets of one flow from a netns to an address, and what they must show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    /// Its name, unique in the scenario.
    pub name: String,
    /// What it sends.
    #[serde(default)]
    pub kind: ProbeKind,
    /// The netns that sends.
    pub from: String,
    /// An address, or `@netns/iface`: the address that interface has after the steps.
    pub to: crate::scenario::handle::Target,
    /// Packets of one flow, sent one after the other.
    #[serde(default = "one")]
    pub count: u16,
    /// How long to wait for each reply.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Whether replies must come back (false: no answer of any kind may come back, `answer =
    /// "none"`). Unsaid: a reply, unless `answer` says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replies: Option<bool>,
    /// The kind of answer each packet must get (default: a reply). See [`ProbeSpec::expected_answer`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Answer>,
    /// Destination port (udp, tcp, frame).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The crafted frame of a `frame` probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<FrameSpec>,
    /// Each server netns named here must have answered at least this many of the packets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub answered_by: BTreeMap<String, u16>,
    /// Conntrack entries the flow must leave.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conntrack: Vec<ConntrackExpect>,
    /// The hooks its packets must (or must never) meet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<PathExpect>,
    /// What its packets must carry at capture points.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addr: Vec<AddrExpect>,
    /// Where and why the kernel must drop its packets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<DropExpect>,
}

impl ProbeSpec {
    /// How long a packet waits for its answer when the probe says nothing (`timeout_ms`).
    pub const DEFAULT_TIMEOUT_MS: u64 = 1000;

    /// A probe with the file format's defaults and no expectations yet.
    pub fn new(name: &str, kind: ProbeKind, from: &str, to: IpAddr) -> ProbeSpec {
        ProbeSpec {
            name: name.into(),
            kind,
            from: from.into(),
            to: crate::scenario::handle::Target::Addr(to),
            count: 1,
            timeout_ms: default_timeout_ms(),
            replies: None,
            answer: None,
            port: None,
            frame: None,
            answered_by: BTreeMap::new(),
            conntrack: vec![],
            path: vec![],
            addr: vec![],
            drop: vec![],
        }
    }
}

fn one() -> u16 {
    1
}

fn default_timeout_ms() -> u64 {
    ProbeSpec::DEFAULT_TIMEOUT_MS
}
