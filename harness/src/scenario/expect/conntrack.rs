//! `[[probe.conntrack]]`: an entry a probe's flow must leave in a netns's conntrack table
//! ([`ConntrackExpect`]), its protocol ([`ConntrackProto`]) and its two tuples ([`Tuple`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::firewall::Family;
use crate::scenario::ProbeSpec;
use crate::scenario::validate::{Problems, Topology};

/// One side of a conntrack entry; unset fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuple {
    /// The original direction's source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    /// The original direction's destination address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    /// Its source port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    /// Its destination port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
}

impl fmt::Display for Tuple {
    /// As a scenario file writes it: `{ src = "10.0.0.1", dport = 8080 }` (`{}` matches anything).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![];
        if let Some(a) = self.src {
            parts.push(format!("src = \"{a}\""));
        }
        if let Some(a) = self.dst {
            parts.push(format!("dst = \"{a}\""));
        }
        if let Some(p) = self.sport {
            parts.push(format!("sport = {p}"));
        }
        if let Some(p) = self.dport {
            parts.push(format!("dport = {p}"));
        }
        if parts.is_empty() { f.write_str("{}") } else { write!(f, "{{ {} }}", parts.join(", ")) }
    }
}

/// A protocol of a conntrack entry, as `conntrack -L` names it in its first column: what a
/// `[[probe.conntrack]]` entry's `proto` may say and what each kind of probe produces
/// ([`crate::probe::Prober::conntrack_proto`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConntrackProto {
    /// ICMP over IPv4 (echo request and reply).
    Icmp,
    /// ICMPv6 (echo request and reply over IPv6).
    Icmpv6,
    /// TCP, over either family.
    Tcp,
    /// UDP, over either family.
    Udp,
}

impl ConntrackProto {
    /// Every protocol a conntrack expectation may name.
    pub const ALL: [ConntrackProto; 4] =
        [ConntrackProto::Icmp, ConntrackProto::Icmpv6, ConntrackProto::Tcp, ConntrackProto::Udp];

    /// Its name in `conntrack -L` and in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            ConntrackProto::Icmp => "icmp",
            ConntrackProto::Icmpv6 => "icmpv6",
            ConntrackProto::Tcp => "tcp",
            ConntrackProto::Udp => "udp",
        }
    }

    /// The ICMP of `family`: what an echo request and its reply are to conntrack.
    pub fn icmp_over(family: Family) -> ConntrackProto {
        match family {
            Family::V4 => ConntrackProto::Icmp,
            Family::V6 => ConntrackProto::Icmpv6,
        }
    }

    /// The one address family it is carried over, for the ICMPs; `None` for TCP and UDP.
    pub fn family(self) -> Option<Family> {
        match self {
            ConntrackProto::Icmp => Some(Family::V4),
            ConntrackProto::Icmpv6 => Some(Family::V6),
            ConntrackProto::Tcp | ConntrackProto::Udp => None,
        }
    }
}

impl fmt::Display for ConntrackProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ConntrackProto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ConntrackProto::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| {
            let names: Vec<&str> = ConntrackProto::ALL.iter().map(|p| p.name()).collect();
            let (last, rest) = names.split_last().expect("ALL is not empty");
            format!("`{s}` is not {} or {last}", rest.join(", "))
        })
    }
}

impl Serialize for ConntrackProto {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ConntrackProto {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ConntrackProto, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A conntrack entry that must exist in a netns after the probe (`conntrack -L`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConntrackExpect {
    /// The netns whose conntrack table holds the entry.
    pub netns: String,
    /// Default: the probe's protocol (`icmpv6` for an icmp probe to an IPv6 address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<ConntrackProto>,
    /// The original tuple (as the request left its sender).
    #[serde(default)]
    pub orig: Tuple,
    /// The reply tuple (as the reply is expected, after NAT).
    #[serde(default)]
    pub reply: Tuple,
}

/// What is wrong with the conntrack entries of probe `p` (`probe[i]`): an unknown netns, or an
/// ICMP of the other family than the probe's, which never has an entry of this probe's flow.
pub(in crate::scenario) fn problems(t: &Topology<'_>, i: usize, p: &ProbeSpec, ps: &mut Problems) {
    for (j, c) in p.conntrack.iter().enumerate() {
        t.known(format!("probe[{i}].conntrack[{j}].netns"), &c.netns, ps);
        if let (Some(proto), Some(to)) = (c.proto, p.to.addr())
            && let Some(family) = proto.family()
            && family != Family::of(to)
        {
            let (only, theirs) = match family {
                Family::V4 => ("IPv4", "IPv6"),
                Family::V6 => ("IPv6", "IPv4"),
            };
            let other = ConntrackProto::icmp_over(Family::of(to));
            ps.add(
                format!("probe[{i}].conntrack[{j}].proto"),
                format!(
                    "`{proto}` is carried over {only} only and this probe sends to {to}: over {theirs} it is `{other}`"
                ),
            );
        }
    }
}
