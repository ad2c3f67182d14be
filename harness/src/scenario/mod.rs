//! A scenario: topology, rules, probes and what each probe must show. Rust code and scenario
//! files build the same types.

mod expect;
mod extends;
mod file;
pub(crate) use file::edit_distance;
pub mod handle;
pub mod input;
mod probe;
pub mod sysctl;
#[cfg(test)]
mod tests;
mod validate;

pub use expect::*;
pub use file::{Diagnostic, line_col, read_file};
pub use input::MAX_FILE_BYTES;
pub use probe::*;
pub use validate::names::{label as name_problem, printable};
pub use validate::{MAX_COUNT, MAX_TIMEOUT_MS, Problem};

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cidr::Cidr;
use crate::evidence::packet::Mac;
use crate::firewall::{Backend, Family};

/// A scenario: topology, rules, probes and what each probe must show. Build one in Rust or
/// load a scenario file with [`Scenario::load`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Its name, in reports and in the names of its namespaces' artifacts.
    pub name: String,
    /// What it shows, for people reading the report.
    #[serde(default)]
    pub description: String,
    /// The seed article section it reproduces (`000 §5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// The iptables backends to run it under.
    #[serde(default = "default_backends")]
    pub backends: Vec<Backend>,
    /// The network namespaces; each gets a unique name per run.
    #[serde(default)]
    pub netns: Vec<NetnsSpec>,
    /// Linux bridges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridge: Vec<BridgeSpec>,
    /// veth pairs, each end in a netns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub veth: Vec<VethSpec>,
    /// WireGuard interfaces, brought up after the veths have their addresses and before the
    /// routes are added (a route may lead through one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wireguard: Vec<WireGuardSpec>,
    /// Routes, added in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteSpec>,
    /// TCP/UDP servers the probes talk to, started before any probe is sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server: Vec<ServerSpec>,
    /// The user's own programs, run in lab namespaces at their phase (see [`crate::lab::step`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step: Vec<crate::lab::step::StepSpec>,
    /// The probes, sent in this order.
    #[serde(default)]
    pub probe: Vec<ProbeSpec>,
    /// Where its rulesets are in its file, for errors about a rule (empty when built in Rust).
    #[serde(skip)]
    pub source: crate::firewall::located::Source,
}

/// A server inside a netns that answers every request with `reply <request> from <netns>`, so
/// a probe learns which endpoint answered (a DNAT target, a load-balanced backend).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSpec {
    /// The netns it listens in.
    pub netns: String,
    /// `tcp` or `udp`.
    pub kind: ProbeKind,
    /// The port it listens on.
    pub port: u16,
}

fn default_backends() -> Vec<Backend> {
    vec![Backend::Legacy]
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// A network namespace and what goes into it: sysctls and rulesets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetnsSpec {
    /// The name the scenario uses; the real one has the run's id added.
    pub name: String,
    /// Per-netns sysctls (`net.ipv4.ip_forward = "1"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// An IPv4 ruleset in `iptables-save` format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iptables: Option<String>,
    /// An IPv6 ruleset in `ip6tables-save` format, applied with `ip6tables-restore` of the
    /// run's backend and traced as the IPv4 one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6tables: Option<String>,
    /// ebtables rules in `ebtables-save` format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebtables: Option<String>,
    /// A native nftables ruleset (`nft -f` syntax). Its chains report through nf_tables trace
    /// events, so a scenario with one runs under backend `nft`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nft: Option<String>,
    /// Collect the netfilter trace of this netns (iptables TRACE where it has a ruleset,
    /// ebtables trace rules where it has a bridge).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub trace: bool,
    /// The iptables backend whose rules are traced here when steps wrote rules (default: the
    /// one detected after the steps; see [`crate::scenario::handle::detect`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traced_backend: Option<Backend>,
}

impl NetnsSpec {
    /// The netns's `iptables-save` rulesets, each with its family (IPv4 first).
    pub fn iptables_rulesets(&self) -> impl Iterator<Item = (Family, &str)> {
        [(Family::V4, &self.iptables), (Family::V6, &self.ip6tables)]
            .into_iter()
            .filter_map(|(family, rules)| Some((family, rules.as_deref()?)))
    }
}

/// A Linux bridge (`ip link add NAME type bridge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSpec {
    /// The netns it is in.
    pub netns: String,
    /// Its interface name.
    pub name: String,
    /// Its MAC address (default: the kernel's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// Addresses on it (`ip addr add`), IPv4 or IPv6.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Cidr>,
    /// Its MTU (default: the kernel's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// A veth pair (`ip link add A type veth peer name B`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VethSpec {
    /// One end.
    pub a: VethEndSpec,
    /// The other end.
    pub b: VethEndSpec,
}

/// One end of a veth pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VethEndSpec {
    /// The netns it is in.
    pub netns: String,
    /// Its interface name.
    pub name: String,
    /// Its MAC address (default: the kernel's choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// Addresses on it (`ip addr add`), IPv4 or IPv6.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Cidr>,
    /// The bridge (in the same netns) this end is a port of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// As a bridge port: send frames back out of this port too (`bridge link set dev X hairpin
    /// on`), what a pod reaching itself through a Service needs (kubelet's hairpin-veth).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hairpin: bool,
    /// Its MTU (default: the kernel's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// A WireGuard interface in a netns, as a `wg0.conf` describes it (seed 001): its keys are made
/// at run time (`wg genkey`), each peer names another `[[wireguard]]` entry whose public key it
/// takes. Made with the kernel's WireGuard where the kernel has it, else with `wireguard-go`
/// over a TUN device (see [`crate::lab::wireguard`]). Like `wg-quick`'s `Address =`, `addresses` go
/// on the interface; unlike `wg-quick`, no route is added for `allowed_ips`: say it with a
/// `[[route]]` with `dev` (what `wg-quick up` prints as `ip -4 route add 10.0.0.2/32 dev wg0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireGuardSpec {
    /// The netns it is in.
    pub netns: String,
    /// The interface name (`wg0`).
    pub iface: String,
    /// Addresses on it, as `wg-quick`'s `Address =`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Cidr>,
    /// The UDP port it listens on (`ListenPort`); default: one the implementation picks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    /// Default: the implementation's (1420 for both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Its peers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<WireGuardPeerSpec>,
}

impl WireGuardSpec {
    /// How peers name it: `netns/iface`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.netns, self.iface)
    }
}

/// One `[Peer]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireGuardPeerSpec {
    /// The `[[wireguard]]` entry this peer is, as `netns/iface` (`peer2/wg0`): its public key.
    pub peer: String,
    /// Where its packets go before the peer has been heard from (`Endpoint = ip:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<std::net::SocketAddr>,
    /// The inner addresses this peer may send from, and that are sent to it (`AllowedIPs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<Cidr>,
    /// Seconds between keepalives (`PersistentKeepalive`); default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_keepalive: Option<u16>,
}

/// `default` or a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteDst {
    /// The default route (`default`).
    Default,
    /// A prefix (`10.0.0.0/8`).
    Prefix(Cidr),
}

impl Serialize for RouteDst {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RouteDst::Default => s.serialize_str("default"),
            RouteDst::Prefix(c) => s.collect_str(c),
        }
    }
}

impl<'de> Deserialize<'de> for RouteDst {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RouteDst, D::Error> {
        let s = String::deserialize(d)?;
        if s == "default" {
            Ok(RouteDst::Default)
        } else {
            s.parse().map(RouteDst::Prefix).map_err(serde::de::Error::custom)
        }
    }
}

/// A route (`ip route add TO [via VIA] [dev DEV]`). Its family is its destination's; `default`
/// takes the gateway's (IPv4 without one, as `ip route add default dev X` does), and `::/0` is
/// IPv6's default. A link-local gateway (`fe80::1`) needs `dev`: it is the same address on
/// every link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The netns whose main table gets it.
    pub netns: String,
    /// Where it leads.
    pub to: RouteDst,
    /// The gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    /// The interface it leaves through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
}

impl RouteSpec {
    /// Whether it is an IPv6 route.
    pub fn is_ipv6(&self) -> bool {
        match self.to {
            RouteDst::Prefix(c) => c.addr.is_ipv6(),
            RouteDst::Default => self.via.is_some_and(|v| v.is_ipv6()),
        }
    }

    /// The prefix it leads to: `default` is 0.0.0.0/0 or ::/0 by its family.
    pub fn prefix(&self) -> Cidr {
        match self.to {
            RouteDst::Prefix(c) => c,
            RouteDst::Default if self.is_ipv6() => {
                Cidr { addr: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), prefix: 0 }
            }
            RouteDst::Default => Cidr { addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), prefix: 0 },
        }
    }
}

/// Whether `a` is an IPv6 link-local unicast address (fe80::/10): valid on every link alike.
pub fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
}

impl Scenario {
    /// The netns spec named `name`.
    pub fn netns_mut(&mut self, name: &str) -> Option<&mut NetnsSpec> {
        self.netns.iter_mut().find(|n| n.name == name)
    }

    /// The probe named `name`.
    pub fn probe_mut(&mut self, name: &str) -> Option<&mut ProbeSpec> {
        self.probe.iter_mut().find(|p| p.name == name)
    }

    /// The addresses the scenario gives `netns/iface`.
    pub fn interface_addresses(&self, netns: &str, iface: &str) -> Vec<Cidr> {
        self.bridge
            .iter()
            .filter(|b| b.netns == netns && b.name == iface)
            .flat_map(|b| b.addresses.clone())
            .chain(
                self.veth
                    .iter()
                    .flat_map(|v| [&v.a, &v.b])
                    .filter(|e| e.netns == netns && e.name == iface)
                    .flat_map(|e| e.addresses.clone()),
            )
            .chain(
                self.wireguard
                    .iter()
                    .filter(|w| w.netns == netns && w.iface == iface)
                    .flat_map(|w| w.addresses.clone()),
            )
            .collect()
    }

    /// The names of the interfaces the scenario declares in `netns`: bridges, veth ends and
    /// WireGuard interfaces, in that order.
    pub fn interface_names(&self, netns: &str) -> Vec<&str> {
        let bridges = self.bridge.iter().filter(|b| b.netns == netns).map(|b| b.name.as_str());
        let ends = self.veth.iter().flat_map(|v| [&v.a, &v.b]).filter(|e| e.netns == netns).map(|e| e.name.as_str());
        let tunnels = self.wireguard.iter().filter(|w| w.netns == netns).map(|w| w.iface.as_str());
        bridges.chain(ends).chain(tunnels).collect()
    }

    /// The interface (netns, name) the scenario gives address `addr`.
    pub fn owner_of(&self, addr: IpAddr) -> Option<(String, String)> {
        let bridges = self.bridge.iter().map(|b| (&b.netns, &b.name, &b.addresses));
        let ends = self.veth.iter().flat_map(|v| [&v.a, &v.b]).map(|e| (&e.netns, &e.name, &e.addresses));
        let tunnels = self.wireguard.iter().map(|w| (&w.netns, &w.iface, &w.addresses));
        bridges
            .chain(ends)
            .chain(tunnels)
            .find(|(_, _, a)| a.iter().any(|c| c.addr == addr))
            .map(|(n, i, _)| (n.clone(), i.clone()))
    }

    /// Where a packet from `netns` out of `iface` to `dst` goes first: `dst` itself when it is
    /// on the interface's link, else the gateway of the most specific route that covers it.
    pub fn next_hop(&self, netns: &str, iface: &str, dst: IpAddr) -> IpAddr {
        if self.interface_addresses(netns, iface).iter().any(|c| c.contains(dst)) {
            return dst;
        }
        self.route
            .iter()
            .filter(|r| r.netns == netns)
            .filter(|r| r.is_ipv6() == dst.is_ipv6())
            .filter_map(|r| match r.to {
                RouteDst::Default => Some((0, r.via?)),
                RouteDst::Prefix(c) if c.contains(dst) => Some((c.prefix, r.via?)),
                RouteDst::Prefix(_) => None,
            })
            .max_by_key(|(prefix, _)| *prefix)
            .map(|(_, via)| via)
            .unwrap_or(dst)
    }

    /// Every capture point the topology has (each veth end, each bridge, each WireGuard
    /// interface: those capture raw IP packets, without a link-layer header).
    pub fn capture_points(&self) -> Vec<CapturePoint> {
        let mut v: Vec<CapturePoint> = self
            .bridge
            .iter()
            .map(|b| CapturePoint { netns: b.netns.clone(), iface: b.name.clone() })
            .chain(
                self.veth
                    .iter()
                    .flat_map(|v| [&v.a, &v.b].map(|e| CapturePoint { netns: e.netns.clone(), iface: e.name.clone() })),
            )
            .chain(self.wireguard.iter().map(|w| CapturePoint { netns: w.netns.clone(), iface: w.iface.clone() }))
            .collect();
        v.sort();
        v
    }
}

impl Scenario {
    /// Why the scenario cannot run under `backend` at all, if it cannot: a native nft ruleset
    /// is only ever traced through nf_tables. Not a failure nor a skip: not applicable.
    pub fn not_applicable(&self, backend: Backend) -> Option<&'static str> {
        (backend != Backend::Nft && self.netns.iter().any(|n| n.nft.is_some())).then_some("native nft ruleset")
    }

    /// The backends it can run under, in the order `netpath run --backend all` takes them.
    pub fn allowed_backends(&self) -> Vec<Backend> {
        [Backend::Legacy, Backend::Nft].into_iter().filter(|b| self.not_applicable(*b).is_none()).collect()
    }

    /// The `mtu` the scenario gives interface `iface` of `netns` (a veth end or a bridge).
    pub fn iface_mtu(&self, netns: &str, iface: &str) -> Option<u32> {
        let ends = self.veth.iter().flat_map(|v| [&v.a, &v.b]);
        ends.filter(|e| e.netns == netns && e.name == iface)
            .map(|e| e.mtu)
            .chain(self.bridge.iter().filter(|b| b.netns == netns && b.name == iface).map(|b| b.mtu))
            .next()
            .flatten()
    }

    /// Whether `netns` has a bridge (and so, when traced, ebtables trace rules).
    pub fn has_bridge(&self, netns: &str) -> bool {
        self.bridge.iter().any(|b| b.netns == netns)
    }

    /// Whether netpath puts trace rules into `n`: ebtables trace rules where a traced netns has a
    /// bridge, iptables TRACE where it has a ruleset (what `run::build` does).
    pub fn has_trace_rules(&self, n: &NetnsSpec) -> bool {
        n.trace && (n.iptables_rulesets().next().is_some() || self.has_bridge(&n.name))
    }

    /// The `[[wireguard]]` entry that is `netns/iface`, if any.
    pub fn wireguard_at(&self, netns: &str, iface: &str) -> Option<&WireGuardSpec> {
        self.wireguard.iter().find(|w| w.netns == netns && w.iface == iface)
    }
}
