//! `[[probe.addr]]`: what a probe's packets carry at a capture point ([`AddrExpect`]): addresses,
//! ports ([`PortExpect`]), TTL, MACs, or that they are not seen there.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{CapturePoint, Conditions, Direction, Packets};
use crate::evidence::packet::Mac;
use crate::firewall::Backend;
use crate::kernel::KernelRange;
use crate::scenario::validate::{Problems, Topology};
use crate::scenario::{ProbeSpec, Scenario};

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
        super::number_or_word(d, "a port (0 to 65535), \"kept\" or \"changed\"", PortExpect::Is, word)
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
    #[serde(default = "super::request", skip_serializing_if = "super::is_request")]
    pub direction: Direction,
    /// Where the packet is looked at.
    pub at: CapturePoint,
    /// Which time it was seen there (1-based: `2` is the second time a packet passed, as a
    /// hairpinned packet comes back through the veth it left by); the first when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sighting: Option<u16>,
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
            sighting: None,
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

impl AddrExpect {
    /// The entry's conditions (see [`Conditions`]).
    pub fn conditions(&self) -> Conditions<'_> {
        Conditions {
            packet: self.packet,
            answered_by: self.answered_by.as_deref(),
            backend: self.backend,
            kernel: self.kernel.as_ref(),
        }
    }
}

/// What is wrong with the address entries of probe `p` (`probe[i]`) of `sc`.
pub(in crate::scenario) fn problems(sc: &Scenario, t: &Topology<'_>, i: usize, p: &ProbeSpec, ps: &mut Problems) {
    for (j, a) in p.addr.iter().enumerate() {
        let item = format!("probe[{i}].addr[{j}].at");
        if !t.netns.contains_key(a.at.netns.as_str()) {
            t.known(item, &a.at.netns, ps);
        } else if let Some(peer) = crate::scenario::handle::peer_of(&a.at) {
            t.known(item, &peer.netns, ps);
        } else if !t.ifaces.contains_key(&(a.at.netns.as_str(), a.at.iface.as_str()))
            && a.at.iface != "lo"
            && !t.orphan_named(&a.at.iface)
            && sc.step.is_empty()
        {
            ps.add(
                item,
                format!(
                    "capture point {} does not exist: netns {} has no interface `{}` ({})",
                    a.at,
                    a.at.netns,
                    a.at.iface,
                    t.names_of(&a.at.netns)
                ),
            );
        }
        if let Some(w) = sc.wireguard_at(&a.at.netns, &a.at.iface) {
            for (key, set) in [("mac_src", a.mac_src.is_some()), ("mac_dst", a.mac_dst.is_some())] {
                if set {
                    ps.add(
                        format!("probe[{i}].addr[{j}].{key}"),
                        format!(
                            "{} is a WireGuard interface: it carries raw IP packets, without MAC addresses",
                            w.id()
                        ),
                    );
                }
            }
        }
        if a.sighting == Some(0) {
            ps.add(
                format!("probe[{i}].addr[{j}].sighting"),
                "sightings count from 1 (the first time the packet is seen there)",
            );
        }
        if !a.asserts_something() {
            ps.add(
                format!("probe[{i}].addr[{j}]"),
                "asserts nothing: give src, dst, sport, dport, ttl, mac_src, mac_dst or absent",
            );
        }
        a.conditions().problems(&format!("probe[{i}].addr[{j}]"), sc, p, ps);
    }
}
