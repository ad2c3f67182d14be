//! A scenario: topology, rules, probes and what each probe must show. Rust code and scenario
//! files build the same types.

pub mod handle;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::IntoDeserializer;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::cidr::Cidr;
use crate::evidence::packet::Mac;
use crate::firewall::{Backend, Family};
use crate::kernel::KernelRange;
use crate::observe::trace::Hook;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The seed article section it reproduces (`000 §5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// The iptables backends to run it under.
    #[serde(default = "default_backends")]
    pub backends: Vec<Backend>,
    #[serde(default)]
    pub netns: Vec<NetnsSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridge: Vec<BridgeSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub veth: Vec<VethSpec>,
    /// WireGuard interfaces, brought up after the veths have their addresses and before the
    /// routes are added (a route may lead through one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wireguard: Vec<WireGuardSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteSpec>,
    /// TCP/UDP servers the probes talk to, started before any probe is sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server: Vec<ServerSpec>,
    /// The user's own programs, run in lab namespaces at their phase (see [`crate::lab::step`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub step: Vec<crate::lab::step::StepSpec>,
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
    pub netns: String,
    /// `tcp` or `udp`.
    pub kind: ProbeKind,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetnsSpec {
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSpec {
    pub netns: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Cidr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VethSpec {
    pub a: VethEndSpec,
    pub b: VethEndSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VethEndSpec {
    pub netns: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Cidr>,
    /// The bridge (in the same netns) this end is a port of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// As a bridge port: send frames back out of this port too (`bridge link set dev X hairpin
    /// on`), what a pod reaching itself through a Service needs (kubelet's hairpin-veth).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hairpin: bool,
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
    pub netns: String,
    /// The interface name (`wg0`).
    pub iface: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Cidr>,
    /// The UDP port it listens on (`ListenPort`); default: one the implementation picks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    /// Default: the implementation's (1420 for both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
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
    Default,
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

/// A route of a netns. Its family is its destination's; `default` takes the gateway's (IPv4
/// without one, as `ip route add default dev X` does), and `::/0` is IPv6's default. A
/// link-local gateway (`fe80::1`) needs `dev`: it is the same address on every link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub netns: String,
    pub to: RouteDst,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
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

/// One side of a conntrack entry; unset fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tuple {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
}

/// A conntrack entry that must exist in a netns after the probe (`conntrack -L`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConntrackExpect {
    pub netns: String,
    /// `icmp`, `icmpv6`, `tcp` or `udp`; default: the probe's protocol (`icmpv6` for an icmp
    /// probe to an IPv6 address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    #[serde(default)]
    pub orig: Tuple,
    #[serde(default)]
    pub reply: Tuple,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    pub name: String,
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
    /// Whether replies must come back (false: the request must be dropped on its way).
    #[serde(default = "yes")]
    pub replies: bool,
    /// Destination port (udp, tcp, frame).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<FrameSpec>,
    /// Each server netns named here must have answered at least this many of the packets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub answered_by: BTreeMap<String, u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conntrack: Vec<ConntrackExpect>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<PathExpect>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addr: Vec<AddrExpect>,
}

impl ProbeSpec {
    /// A probe with the file format's defaults and no expectations yet.
    pub fn new(name: &str, kind: ProbeKind, from: &str, to: IpAddr) -> ProbeSpec {
        ProbeSpec {
            name: name.into(),
            kind,
            from: from.into(),
            to: crate::scenario::handle::Target::Addr(to),
            count: 1,
            timeout_ms: default_timeout_ms(),
            replies: true,
            port: None,
            frame: None,
            answered_by: BTreeMap::new(),
            conntrack: vec![],
            path: vec![],
            addr: vec![],
        }
    }
}

fn one() -> u16 {
    1
}

fn default_timeout_ms() -> u64 {
    1000
}

/// Request or reply of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Request,
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
    pub netns: String,
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
    #[serde(default = "request", skip_serializing_if = "is_request")]
    pub direction: Direction,
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
    One(u16),
    From(u16),
}

impl Packets {
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
    #[serde(default = "request", skip_serializing_if = "is_request")]
    pub direction: Direction,
    pub at: CapturePoint,
    /// Only under this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// Only on kernels in this range (`"<6.1"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelRange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_src: Option<Mac>,
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

impl Scenario {
    /// The netns spec named `name`.
    pub fn netns_mut(&mut self, name: &str) -> Option<&mut NetnsSpec> {
        self.netns.iter_mut().find(|n| n.name == name)
    }

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

    /// Check what serde cannot: every name a part refers to exists, names are unique, interface
    /// names fit the kernel's 15 bytes, numbers are in range, and nothing asks the kernel for
    /// what it refuses. Returns every problem found, each as `item: message` where the item is
    /// a path into the scenario (`veth[2].b.netns`); [`Scenario::problems`] keeps them apart.
    pub fn validate(&self) -> Vec<String> {
        self.problems().iter().map(Problem::to_string).collect()
    }

    /// The problems [`Scenario::validate`] reports, with the item each concerns.
    pub fn problems(&self) -> Vec<Problem> {
        let mut ps = Problems::default();

        if self.name.trim().is_empty() {
            ps.add("name", "the scenario's name is empty");
        }
        if self.backends.is_empty() {
            ps.add("backends", "names no backend: give legacy, nft or both, or leave it out to run under legacy");
        }
        for (i, b) in self.backends.iter().enumerate() {
            if self.backends[..i].contains(b) {
                ps.add(format!("backends[{i}]"), format!("backend {} is listed twice", b.name()));
            }
        }

        // Namespaces.
        let mut netns: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, n) in self.netns.iter().enumerate() {
            let item = format!("netns[{i}].name");
            if n.name.is_empty() || n.name.contains(['/', ' ', '\t', '\n']) || n.name.len() > 32 {
                ps.add(&item, format!("netns name `{}` must be 1 to 32 characters without `/` or spaces", n.name));
            }
            if let Some(j) = netns.get(n.name.as_str()) {
                ps.add(&item, format!("netns `{}` is declared twice (first as netns[{j}])", n.name));
            } else {
                netns.insert(&n.name, i);
            }
        }
        let known = |item: String, ns: &str, ps: &mut Problems| -> bool {
            if netns.contains_key(ns) {
                return true;
            }
            let have = if netns.is_empty() {
                "no [[netns]] is declared".to_string()
            } else {
                format!("have: {}", list(netns.keys().copied()))
            };
            ps.add(item, format!("netns `{ns}` is not declared ({have})"));
            false
        };

        // Interfaces: bridges, then veth ends.
        let mut decls: Vec<IfaceDecl<'_>> = vec![];
        for (i, b) in self.bridge.iter().enumerate() {
            decls.push(IfaceDecl {
                item: format!("bridge[{i}]"),
                netns: &b.netns,
                name: &b.name,
                name_key: "name",
                mac: b.mac,
                addresses: &b.addresses,
                mtu: b.mtu,
                master: None,
                bridge: true,
            });
        }
        for (i, v) in self.veth.iter().enumerate() {
            for (side, e) in [("a", &v.a), ("b", &v.b)] {
                if e.hairpin && e.master.is_none() {
                    ps.add(
                        format!("veth[{i}].{side}.hairpin"),
                        "hairpin is a bridge port setting: give this end a master",
                    );
                }
                decls.push(IfaceDecl {
                    item: format!("veth[{i}].{side}"),
                    netns: &e.netns,
                    name: &e.name,
                    name_key: "name",
                    mac: e.mac,
                    addresses: &e.addresses,
                    mtu: e.mtu,
                    master: e.master.as_deref(),
                    bridge: false,
                });
            }
        }
        for (i, w) in self.wireguard.iter().enumerate() {
            decls.push(IfaceDecl {
                item: format!("wireguard[{i}]"),
                netns: &w.netns,
                name: &w.iface,
                name_key: "iface",
                mac: None,
                addresses: &w.addresses,
                mtu: w.mtu,
                master: None,
                bridge: false,
            });
        }
        let mut ifaces: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        for d in &decls {
            known(format!("{}.netns", d.item), d.netns, &mut ps);
            let item = format!("{}.{}", d.item, d.name_key);
            if d.name.is_empty() || d.name.len() > 15 || d.name.contains(['/', ' ', ':', '\t', '\n']) {
                ps.add(
                    &item,
                    format!("interface name `{}` must be 1 to 15 characters without `/`, `:` or spaces", d.name),
                );
            }
            if let Some(first) = ifaces.get(&(d.netns, d.name)) {
                ps.add(
                    &item,
                    format!("interface `{}` is declared twice in netns {} (first as {first})", d.name, d.netns),
                );
            } else {
                ifaces.insert((d.netns, d.name), &d.item);
            }
            if let Some(m) = d.mac {
                if m.0 == [0; 6] {
                    ps.add(format!("{}.mac", d.item), format!("MAC {m} is all zeros: the kernel refuses it"));
                } else if m.0[0] & 1 == 1 {
                    ps.add(
                        format!("{}.mac", d.item),
                        format!(
                            "MAC {m} is a multicast address (its first byte is odd): an interface needs a unicast one, e.g. 02:{}",
                            &m.to_string()[3..]
                        ),
                    );
                }
            }
            if let Some(mtu) = d.mtu
                && !(68..=65535).contains(&mtu)
            {
                ps.add(
                    format!("{}.mtu", d.item),
                    format!("mtu {mtu} is outside 68 to 65535, which the kernel accepts"),
                );
            }
            for (k, a) in d.addresses.iter().enumerate() {
                if !sane(a) {
                    ps.add(format!("{}.addresses[{k}]", d.item), format!("prefix length /{} is too long", a.prefix));
                } else if d.addresses[..k].contains(a) {
                    ps.add(format!("{}.addresses[{k}]", d.item), format!("address {a} is given twice"));
                }
            }
        }
        let ifaces_of = |ns: &str| -> Vec<&IfaceDecl<'_>> { decls.iter().filter(|d| d.netns == ns).collect() };
        // Interfaces in a netns that is not declared were meant for another one: what follows
        // from a netns lacking an interface or an address such an orphan has is not reported.
        let orphans: Vec<&IfaceDecl<'_>> = decls.iter().filter(|d| !netns.contains_key(d.netns)).collect();
        let orphan_named = |name: &str| orphans.iter().any(|d| d.name == name);
        let orphan_addr = |f: &dyn Fn(&Cidr) -> bool| orphans.iter().flat_map(|d| d.addresses).any(f);
        let names_of = |ns: &str| -> String {
            let names = ifaces_of(ns).iter().map(|d| d.name).collect::<Vec<_>>();
            if names.is_empty() {
                format!("netns {ns} has no interface")
            } else {
                format!("its interfaces: {}", list(names))
            }
        };
        for d in &decls {
            if let Some(m) = d.master
                && netns.contains_key(d.netns)
                && !decls.iter().any(|b| b.bridge && b.netns == d.netns && b.name == m)
            {
                let bridges: Vec<&str> =
                    decls.iter().filter(|b| b.bridge && b.netns == d.netns).map(|b| b.name).collect();
                let have = if bridges.is_empty() {
                    format!("netns {} has no bridge", d.netns)
                } else {
                    format!("its bridges: {}", list(bridges))
                };
                ps.add(format!("{}.master", d.item), format!("`{m}` is no bridge in netns {} ({have})", d.netns));
            }
        }

        self.wireguard_problems(&mut ps);

        // Routes, in the order the lab adds them.
        for (i, r) in self.route.iter().enumerate() {
            let ns_ok = known(format!("route[{i}].netns"), &r.netns, &mut ps);
            if let Some(d) = &r.dev
                && ns_ok
                && !ifaces.contains_key(&(r.netns.as_str(), d.as_str()))
                && !orphan_named(d)
            {
                ps.add(
                    format!("route[{i}].dev"),
                    format!("netns {} has no interface `{d}` ({})", r.netns, names_of(&r.netns)),
                );
            }
            if r.via.is_none() && r.dev.is_none() {
                ps.add(format!("route[{i}]"), "gives neither via nor dev: say where the route leads");
            }
            let mut broken = false;
            if let RouteDst::Prefix(c) = r.to {
                if !sane(&c) {
                    broken = true;
                    ps.add(format!("route[{i}].to"), format!("prefix length /{} is too long", c.prefix));
                } else if network(c) != c.addr {
                    ps.add(
                        format!("route[{i}].to"),
                        format!(
                            "`{c}` has host bits set and the kernel refuses it: a route leads to a network, e.g. {}/{}",
                            network(c),
                            c.prefix
                        ),
                    );
                }
            }
            if let Some(via) = r.via {
                if via.is_ipv6() != r.is_ipv6() {
                    broken = true;
                    ps.add(
                        format!("route[{i}].via"),
                        format!(
                            "gateway {via} is not of the family of the route to {}: give an {} gateway",
                            r.prefix(),
                            if r.is_ipv6() { "IPv6" } else { "IPv4" }
                        ),
                    );
                } else if is_link_local(via) && r.dev.is_none() {
                    broken = true;
                    ps.add(
                        format!("route[{i}].via"),
                        format!(
                            "gateway {via} is link-local, the same address on every link: give dev, the interface it is reached on (dev = \"eth0\")"
                        ),
                    );
                }
            }
            let same = |o: &RouteSpec| o.netns == r.netns && o.is_ipv6() == r.is_ipv6() && o.prefix() == r.prefix();
            if let Some(j) = self.route[..i].iter().position(same) {
                let to = match r.to {
                    RouteDst::Default => "default".to_string(),
                    RouteDst::Prefix(c) => c.to_string(),
                };
                ps.add(format!("route[{i}].to"), format!("netns {} already has a route to {to} (route[{j}])", r.netns));
            }
            // The kernel takes a gateway only if a link route reaches it: a connected prefix of an
            // interface there (of `dev` if given) or an earlier route through a device. A
            // link-local gateway is reached on its `dev`, whose fe80::/64 every link has.
            if let Some(via) = r.via
                && ns_ok
                && !broken
                && !is_link_local(via)
            {
                let on_dev = |dev: &str| r.dev.as_deref().is_none_or(|d| d == dev);
                let mut prefixes: Vec<Cidr> = ifaces_of(&r.netns)
                    .iter()
                    .filter(|d| on_dev(d.name))
                    .flat_map(|d| d.addresses.iter().copied())
                    .filter(sane)
                    .collect();
                prefixes.extend(self.route[..i].iter().filter_map(|o| match (o.to, o.via, &o.dev) {
                    (RouteDst::Prefix(c), None, Some(d)) if o.netns == r.netns && on_dev(d) && sane(&c) => Some(c),
                    _ => None,
                }));
                if !prefixes.iter().any(|c| c.contains(via)) && !orphan_addr(&|c| sane(c) && c.contains(via)) {
                    let whose = match &r.dev {
                        Some(d) => format!("interface {d} of netns {}", r.netns),
                        None => format!("netns {}", r.netns),
                    };
                    let have = if prefixes.is_empty() {
                        "it has none".to_string()
                    } else {
                        format!("it has {}", list(prefixes.iter().map(ToString::to_string)))
                    };
                    ps.add(
                        format!("route[{i}].via"),
                        format!(
                            "gateway {via} is outside every connected prefix of {whose} ({have}), so the kernel refuses the route"
                        ),
                    );
                }
            }
        }

        for (i, srv) in self.server.iter().enumerate() {
            known(format!("server[{i}].netns"), &srv.netns, &mut ps);
            if !matches!(srv.kind, ProbeKind::Tcp | ProbeKind::Udp) {
                ps.add(format!("server[{i}].kind"), "a server is tcp or udp");
            }
            if srv.port == 0 {
                ps.add(format!("server[{i}].port"), "port 0 is not a port to listen on");
            }
        }

        for (i, n) in self.netns.iter().enumerate() {
            if n.nft.is_some() && self.backends.iter().any(|b| *b != Backend::Nft) {
                ps.add(
                    format!("netns[{i}].nft"),
                    "a native nft ruleset is traced through nf_tables trace events: give the scenario backends = [\"nft\"]",
                );
            }
        }

        for (item, message) in crate::lab::step::problems(self) {
            ps.add(item, message);
        }

        // Probes and their expectations.
        let mut probes: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, p) in self.probe.iter().enumerate() {
            let item = format!("probe[{i}].name");
            if p.name.trim().is_empty() {
                ps.add(&item, "the probe's name is empty");
            } else if let Some(j) = probes.get(p.name.as_str()) {
                ps.add(&item, format!("probe `{}` is declared twice (first as probe[{j}])", p.name));
            } else {
                probes.insert(&p.name, i);
            }
            if let crate::scenario::handle::Target::Iface(at) = &p.to {
                known(format!("probe[{i}].to"), &at.netns, &mut ps);
            }
            // Steps may give any netns its addresses: that one has them is checked after them.
            let to = p.to.addr().filter(|_| self.step.is_empty());
            if let Some(to) = to
                && known(format!("probe[{i}].from"), &p.from, &mut ps)
                && !to.is_loopback()
            {
                let family = if to.is_ipv4() { "IPv4" } else { "IPv6" };
                let own = ifaces_of(&p.from);
                let fits = |a: &Cidr| a.addr.is_ipv4() == to.is_ipv4();
                if !own.iter().flat_map(|d| d.addresses).any(fits) && !orphan_addr(&fits) {
                    let fix = if own.is_empty() {
                        "it has no interface".to_string()
                    } else {
                        format!("give one of its interfaces ({}) an address", list(own.iter().map(|d| d.name)))
                    };
                    ps.add(
                        format!("probe[{i}].from"),
                        format!("netns {} has no {family} address to send to {to} from: {fix}", p.from),
                    );
                }
            }
            let prober = crate::probe::prober(p.kind);
            let needs_port = prober.needs_port();
            if needs_port && p.port.is_none() {
                ps.add(
                    format!("probe[{i}].port"),
                    format!("a {:?} probe needs a destination port", p.kind).to_lowercase(),
                );
            }
            if !needs_port && p.port.is_some() {
                ps.add(format!("probe[{i}].port"), "an icmp probe has no port");
            }
            if p.frame.is_some() && p.kind != ProbeKind::Frame {
                ps.add(format!("probe[{i}].frame"), "only kind = \"frame\" takes a [probe.frame] table");
            }
            for (below, message) in prober.problems(self, p) {
                let item = if below.is_empty() { format!("probe[{i}]") } else { format!("probe[{i}].{below}") };
                ps.add(item, message);
            }
            for server in p.answered_by.keys() {
                if !self.server.iter().any(|s| &s.netns == server) {
                    ps.add(
                        format!("probe[{i}].answered_by.{server}"),
                        format!("no [[server]] runs in netns `{server}`"),
                    );
                }
            }
            for (j, c) in p.conntrack.iter().enumerate() {
                known(format!("probe[{i}].conntrack[{j}].netns"), &c.netns, &mut ps);
                if let Some(proto) = &c.proto
                    && !["icmp", "icmpv6", "tcp", "udp"].contains(&proto.as_str())
                {
                    ps.add(
                        format!("probe[{i}].conntrack[{j}].proto"),
                        format!("`{proto}` is not icmp, icmpv6, tcp or udp"),
                    );
                }
            }
            if p.count == 0 || p.count > MAX_COUNT {
                ps.add(format!("probe[{i}].count"), format!("count {} is outside 1 to {MAX_COUNT}", p.count));
            }
            if p.timeout_ms == 0 || p.timeout_ms > MAX_TIMEOUT_MS {
                ps.add(
                    format!("probe[{i}].timeout_ms"),
                    format!("timeout_ms {} is outside 1 to {MAX_TIMEOUT_MS} (one minute)", p.timeout_ms),
                );
            }
            // The conditions of an entry: the packets it names exist, its endpoint has a server.
            let conditions_ok =
                |item: String, packet: Option<Packets>, answered_by: Option<&String>, ps: &mut Problems| {
                    if let Some(sel) = packet
                        && (sel.first() == 0 || sel.first() > p.count)
                    {
                        ps.add(
                            format!("{item}.packet"),
                            format!(
                                "packet {} does not exist: the probe sends {} (packets count from 1)",
                                sel.first(),
                                p.count
                            ),
                        );
                    }
                    if let Some(server) = answered_by
                        && !self.server.iter().any(|s| &s.netns == server)
                    {
                        ps.add(format!("{item}.answered_by"), format!("no [[server]] runs in netns `{server}`"));
                    }
                };
            for (j, e) in p.path.iter().enumerate() {
                known(format!("probe[{i}].path[{j}].netns"), &e.netns, &mut ps);
                if e.exact.is_none() && e.includes.is_none() && e.never.is_empty() && e.last.is_none() {
                    ps.add(format!("probe[{i}].path[{j}]"), "asserts nothing: give exact, includes, never or last");
                }
                conditions_ok(format!("probe[{i}].path[{j}]"), e.packet, e.answered_by.as_ref(), &mut ps);
            }
            for (j, a) in p.addr.iter().enumerate() {
                let item = format!("probe[{i}].addr[{j}].at");
                if !netns.contains_key(a.at.netns.as_str()) {
                    known(item, &a.at.netns, &mut ps);
                } else if let Some(peer) = crate::scenario::handle::peer_of(&a.at) {
                    known(item, &peer.netns, &mut ps);
                } else if !ifaces.contains_key(&(a.at.netns.as_str(), a.at.iface.as_str()))
                    && !orphan_named(&a.at.iface)
                    && self.step.is_empty()
                {
                    ps.add(
                        item,
                        format!(
                            "capture point {} does not exist: netns {} has no interface `{}` ({})",
                            a.at,
                            a.at.netns,
                            a.at.iface,
                            names_of(&a.at.netns)
                        ),
                    );
                }
                if let Some(w) = self.wireguard_at(&a.at.netns, &a.at.iface) {
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
                if !a.asserts_something() {
                    ps.add(
                        format!("probe[{i}].addr[{j}]"),
                        "asserts nothing: give src, dst, sport, dport, ttl, mac_src, mac_dst or absent",
                    );
                }
                conditions_ok(format!("probe[{i}].addr[{j}]"), a.packet, a.answered_by.as_ref(), &mut ps);
            }
        }
        ps.0
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

    /// What only WireGuard entries can get wrong (their netns, names, addresses and MTU are
    /// checked with the other interfaces): listen ports, peers, allowed IPs.
    fn wireguard_problems(&self, ps: &mut Problems) {
        let mut ids: BTreeMap<String, usize> = BTreeMap::new();
        for (i, w) in self.wireguard.iter().enumerate() {
            ids.entry(w.id()).or_insert(i);
        }
        for (i, w) in self.wireguard.iter().enumerate() {
            if let Some(port) = w.listen_port {
                if port == 0 {
                    ps.add(
                        format!("wireguard[{i}].listen_port"),
                        "port 0 is not a port to listen on: leave listen_port out and WireGuard picks one",
                    );
                } else if let Some(j) =
                    self.wireguard[..i].iter().position(|o| o.netns == w.netns && o.listen_port == Some(port))
                {
                    ps.add(
                        format!("wireguard[{i}].listen_port"),
                        format!("netns {} already has wireguard[{j}] listening on UDP port {port}", w.netns),
                    );
                }
            }
            for (k, p) in w.peers.iter().enumerate() {
                let item = format!("wireguard[{i}].peers[{k}]");
                match ids.get(&p.peer) {
                    Some(&j) if j == i => {
                        ps.add(format!("{item}.peer"), format!("{} cannot be its own peer", w.id()));
                    }
                    Some(_) => {}
                    None => {
                        let have = if self.wireguard.len() < 2 {
                            "there is no other [[wireguard]] entry".to_string()
                        } else {
                            format!("have: {}", list(ids.keys().filter(|id| **id != w.id())))
                        };
                        let form =
                            if p.peer.contains('/') { "" } else { " (a peer is named netns/iface, e.g. peer2/wg0)" };
                        ps.add(
                            format!("{item}.peer"),
                            format!("`{}` is no [[wireguard]] entry{form} ({have})", p.peer),
                        );
                    }
                }
                if let Some(m) = w.peers[..k].iter().position(|o| o.peer == p.peer) {
                    ps.add(format!("{item}.peer"), format!("peer {} is listed twice (first as peers[{m}])", p.peer));
                }
                if let Some(e) = p.endpoint
                    && e.port() == 0
                {
                    ps.add(format!("{item}.endpoint"), format!("endpoint {e} has port 0: give the peer's listen_port"));
                }
                for (a, c) in p.allowed_ips.iter().enumerate() {
                    let at = format!("{item}.allowed_ips[{a}]");
                    if !sane(c) {
                        ps.add(at, format!("prefix length /{} is too long", c.prefix));
                    } else if network(*c) != c.addr {
                        ps.add(
                            at,
                            format!(
                                "`{c}` has host bits set: WireGuard would silently take it as {}/{}; write that",
                                network(*c),
                                c.prefix
                            ),
                        );
                    } else if p.allowed_ips[..a].contains(c) {
                        ps.add(at, format!("{c} is given twice"));
                    } else if let Some(m) = w.peers[..k].iter().position(|o| o.allowed_ips.contains(c)) {
                        ps.add(
                            at,
                            format!(
                                "{c} is also allowed for peers[{m}] ({}): WireGuard gives a prefix to one peer only, the last one set",
                                w.peers[m].peer
                            ),
                        );
                    }
                }
            }
        }
    }
}

/// The most packets one probe may send.
pub const MAX_COUNT: u16 = 1000;
/// The longest a probe may wait for a reply.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// One problem [`Scenario::problems`] found: the item it concerns, as a path into the scenario
/// (`veth[2].b.netns`, `probe[0].addr[1].at`; empty for the whole scenario), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub item: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.item.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.item, self.message) }
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, item: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { item: item.into(), message: message.into() });
    }
}

/// A bridge or a veth end, as validation sees both.
struct IfaceDecl<'a> {
    /// `bridge[0]`, `veth[1].b`.
    item: String,
    netns: &'a str,
    name: &'a str,
    /// The field that holds the name: `name`, or `iface` for a WireGuard interface.
    name_key: &'static str,
    mac: Option<Mac>,
    addresses: &'a [Cidr],
    mtu: Option<u32>,
    master: Option<&'a str>,
    bridge: bool,
}

fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items.into_iter().map(|s| s.as_ref().to_string()).collect::<Vec<_>>().join(", ")
}

/// Whether the prefix length fits the address (a `Cidr` built in Rust may not).
fn sane(c: &Cidr) -> bool {
    c.prefix <= if c.addr.is_ipv4() { 32 } else { 128 }
}

/// The network address of a prefix (host bits cleared).
fn network(c: Cidr) -> IpAddr {
    match c.addr {
        IpAddr::V4(a) => {
            let mask = if c.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(c.prefix.min(32))) };
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = if c.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(c.prefix.min(128))) };
            IpAddr::V6((u128::from(a) & mask).into())
        }
    }
}

/// A problem of a scenario file with where it is; shown as `file.toml:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.column, self.message)
    }
}

/// Where in a file a problem is: 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

impl Scenario {
    /// Parse a scenario file's text; `origin` names it in errors. Each problem is one line
    /// `origin:LINE:COL: message` ([`Diagnostic`]): one problem is an [`Error::File`] whose
    /// `path` is `origin:LINE:COL`, several are an [`Error::Many`] of those.
    ///
    /// [`Error::File`]: crate::Error::File
    /// [`Error::Many`]: crate::Error::Many
    pub fn from_toml(text: &str, origin: &Path) -> crate::Result<Scenario> {
        Scenario::parse(text, origin).map_err(|diags| {
            let errs: Vec<crate::Error> = diags
                .into_iter()
                .map(|d| crate::Error::File {
                    path: PathBuf::from(format!("{}:{}:{}", d.file.display(), d.line, d.column)),
                    message: d.message,
                })
                .collect();
            match <[crate::Error; 1]>::try_from(errs) {
                Ok([e]) => e,
                Err(errs) => crate::Error::Many(errs),
            }
        })
    }

    /// Parse a scenario file's text and check it, reporting every problem with its line and
    /// column, in file order. A syntax error comes alone (the first: what a parser says after
    /// one is mostly its echo); else every type error (a wrong type, an unknown key, a missing
    /// field, a bad CIDR, MAC, backend or hook name); else what [`Scenario::problems`] finds.
    pub fn parse(text: &str, origin: &Path) -> Result<Scenario, Vec<Diagnostic>> {
        let diag = |span: Range<usize>, message: String| {
            let (line, column) = line_col(text, span.start);
            Diagnostic { file: origin.to_path_buf(), line, column, message }
        };
        let sorted = |mut v: Vec<Diagnostic>| {
            v.sort_by_key(|d| (d.line, d.column));
            v
        };
        let (doc, syntax) = DeTable::parse_recoverable(text);
        // A syntax error comes alone: what the parser says after one is mostly its echo.
        if let Some(e) = syntax.iter().min_by_key(|e| e.span().map_or(0, |s| s.start)) {
            let span = e.span().unwrap_or(0..0);
            let mut message = e.message().to_string();
            if message == "duplicate key"
                && let Some(key) = text.get(span.clone()).filter(|k| !k.is_empty() && k.len() < 80)
            {
                message = format!("duplicate key `{key}`");
            } else if message.contains("inline table") {
                message.push_str(" (does a `{ ... }` before this lack its `}`?)");
            }
            return Err(vec![diag(span, message)]);
        }
        let doc: Node<'_> = Spanned::new(doc.span(), DeValue::Table(doc.into_inner()));
        let mut sc =
            deserialize_all(&doc).map_err(|errs| sorted(errs.into_iter().map(|(s, m)| diag(s, m)).collect()))?;
        crate::lab::step::resolve_files(&mut sc, origin);
        sc.source = crate::firewall::located::Source::new(origin, ruleset_lines(&doc, text));
        let problems = sc.problems();
        if problems.is_empty() {
            return Ok(sc);
        }
        Err(sorted(problems.into_iter().map(|p| diag(span_of(&doc, &parse_item(&p.item)), p.to_string())).collect()))
    }

    /// Read and parse a scenario file.
    pub fn load(path: &Path) -> crate::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| crate::Error::File { path: path.to_path_buf(), message: e.to_string() })?;
        Scenario::from_toml(&text, path)
    }

    /// The scenario as a scenario file.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"))
    }
}

/// Per netns with a ruleset: `(netns, field, line)`, the file line of the ruleset's first line
/// (a multi-line string's first newline is not part of its value).
fn ruleset_lines(doc: &Node<'_>, text: &str) -> Vec<(String, &'static str, usize)> {
    let mut out = vec![];
    let Some(DeValue::Array(all)) = child(doc, &Step::Key("netns".into())).map(Spanned::get_ref) else { return out };
    for n in all {
        let Some(name) = child(n, &Step::Key("name".into())).and_then(|v| v.get_ref().as_str()) else { continue };
        for field in ["iptables", "ip6tables", "ebtables", "nft"] {
            let Some(v) = child(n, &Step::Key(field.into())) else { continue };
            let start = v.span().start;
            let (line, _) = line_col(text, start);
            let rest = text.get(start..).unwrap_or("");
            let skips_newline = ["\"\"\"\n", "'''\n", "\"\"\"\r\n", "'''\r\n"].iter().any(|q| rest.starts_with(q));
            out.push((name.to_string(), field, line + usize::from(skips_newline)));
        }
    }
    out
}

/// A value of the parsed document, with its byte span.
type Node<'i> = Spanned<DeValue<'i>>;

/// One step of a path into the document: a key of a table or an index of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `veth[2].b.netns` for its steps.
fn item_name(steps: &[Step]) -> String {
    let mut s = String::new();
    for st in steps {
        match st {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                    s.push_str(k);
                } else {
                    s.push_str(&format!("{k:?}"));
                }
            }
            Step::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The steps of `veth[2].b.netns`.
fn parse_item(item: &str) -> Vec<Step> {
    let mut steps = vec![];
    for seg in item.split('.').filter(|s| !s.is_empty()) {
        let mut parts = seg.split('[');
        if let Some(k) = parts.next()
            && !k.is_empty()
        {
            steps.push(Step::Key(k.to_string()));
        }
        steps.extend(parts.filter_map(|p| p.trim_end_matches(']').parse().ok()).map(Step::Index));
    }
    steps
}

fn child<'a, 'i>(v: &'a Node<'i>, step: &Step) -> Option<&'a Node<'i>> {
    match (v.get_ref(), step) {
        (DeValue::Table(t), Step::Key(k)) => t.get(k.as_str()),
        (DeValue::Array(a), Step::Index(i)) => a.get(*i),
        _ => None,
    }
}

fn walk<'a, 'i>(root: &'a Node<'i>, steps: &[Step]) -> Option<&'a Node<'i>> {
    steps.iter().try_fold(root, |v, st| child(v, st))
}

fn walk_mut<'a, 'i>(root: &'a mut Node<'i>, steps: &[Step]) -> Option<&'a mut Node<'i>> {
    let mut cur = root;
    for st in steps {
        cur = match (cur.get_mut(), st) {
            (DeValue::Table(t), Step::Key(k)) => t.get_mut(k.as_str())?,
            (DeValue::Array(a), Step::Index(i)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// The span of the value at `steps`, or of its deepest ancestor in the file (a value left to
/// its default is not in the file: its table stands for it).
fn span_of(root: &Node<'_>, steps: &[Step]) -> Range<usize> {
    let mut cur = root;
    for st in steps {
        match child(cur, st) {
            Some(c) => cur = c,
            None => break,
        }
    }
    cur.span()
}

/// The deepest entry whose value (or key: `true`) has exactly `span`.
fn find_span(v: &Node<'_>, span: &Range<usize>, path: &mut Vec<Step>, best: &mut Option<(Vec<Step>, bool)>) {
    let deeper = |best: &Option<(Vec<Step>, bool)>, len: usize| best.as_ref().is_none_or(|(p, _)| p.len() < len);
    if v.span() == *span && deeper(best, path.len()) {
        *best = Some((path.clone(), false));
    }
    match v.get_ref() {
        DeValue::Table(t) => {
            for (k, c) in t.iter() {
                path.push(Step::Key(k.get_ref().to_string()));
                if k.span() == *span && deeper(best, path.len()) {
                    *best = Some((path.clone(), true));
                }
                find_span(c, span, path, best);
                path.pop();
            }
        }
        DeValue::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                path.push(Step::Index(i));
                find_span(c, span, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The `quoted` parts of a message.
fn backticked(s: &str) -> impl Iterator<Item = &str> {
    s.split('`').skip(1).step_by(2)
}

/// Where an error at `span` is: the path of the value (or, `true`, of the key) it is about. An
/// error about an element of an array of strings (a bad hook, CIDR or backend) carries the span
/// of the array: the element is the one the message quotes.
fn locate(root: &Node<'_>, span: &Range<usize>, message: &str) -> Option<(Vec<Step>, bool)> {
    let mut best = None;
    find_span(root, span, &mut vec![], &mut best);
    let (mut path, key) = best?;
    if !key
        && let Some(DeValue::Array(a)) = walk(root, &path).map(Spanned::get_ref)
        && let Some(i) = backticked(message).find_map(|t| a.iter().position(|e| e.get_ref().as_str() == Some(t)))
    {
        path.push(Step::Index(i));
    }
    Some((path, key))
}

/// Deserialize the document, collecting every type error rather than the first: after each
/// error the offending value is cut from a working copy (a table missing a field goes whole)
/// and deserialization runs again. A "missing field" for a field cut that way is not reported.
fn deserialize_all(doc: &Node<'_>) -> Result<Scenario, Vec<(Range<usize>, String)>> {
    let mut work = doc.clone();
    let mut found: Vec<(Range<usize>, String)> = vec![];
    let mut cut: Vec<(Range<usize>, String)> = vec![];
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..500 {
        let e = match Scenario::deserialize(work.clone().into_deserializer()) {
            Ok(sc) if found.is_empty() => return Ok(sc),
            Ok(_) => return Err(found),
            Err(e) => e,
        };
        let message = e.message().to_string();
        let Some(span) = e.span() else {
            found.push((0..0, message));
            break;
        };
        if !seen.insert((span.start, span.end, message.clone())) {
            break;
        }
        let missing = message.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')).map(str::to_string);
        let after_cut = missing.as_ref().is_some_and(|m| cut.contains(&(span.clone(), m.clone())));
        let (shown, suggested) = polish(&message);
        if !after_cut {
            let (at, item) = match locate(doc, &span, &message) {
                // An unknown key: the key is where it is, its table is the item.
                Some((path, true)) => (span.clone(), item_name(path.split_last().map_or(&[][..], |(_, p)| p))),
                Some((path, false)) => (span_of(doc, &path), item_name(&path)),
                None => (span.clone(), String::new()),
            };
            found.push((at, Problem { item, message: shown }.to_string()));
        }
        let Some((path, key)) = locate(&work, &span, &message) else { break };
        // A misspelt key: the field it was meant to be is not missing on top of that.
        if key
            && let Some(meant) = suggested
            && let Some((_, parent)) = path.split_last()
            && let Some(table) = walk(&work, parent)
        {
            cut.push((table.span(), meant));
        }
        if path.is_empty() {
            // The root lacks a field: `name` is its only required one.
            match (work.get_mut(), missing.as_deref()) {
                (DeValue::Table(t), Some("name")) => {
                    t.insert(Spanned::new(0..0, "name".into()), Spanned::new(0..0, DeValue::String("".into())));
                    continue;
                }
                _ => break,
            }
        }
        if !cut_at(&mut work, &path, &mut cut) {
            break;
        }
    }
    if found.is_empty() {
        found.push((0..0, "the file does not describe a scenario".to_string()));
    }
    Err(found)
}

/// Remove the value at `path` from its table or array; note `(table span, key)` of what a table lost.
fn cut_at(root: &mut Node<'_>, path: &[Step], cut: &mut Vec<(Range<usize>, String)>) -> bool {
    let Some((last, parent)) = path.split_last() else { return false };
    let Some(parent) = walk_mut(root, parent) else { return false };
    let parent_span = parent.span();
    match (parent.get_mut(), last) {
        (DeValue::Table(t), Step::Key(k)) => {
            cut.push((parent_span, k.clone()));
            t.remove(k.as_str()).is_some()
        }
        (DeValue::Array(a), Step::Index(i)) if *i < a.len() => {
            *a = a.iter().enumerate().filter(|(j, _)| j != i).map(|(_, e)| e.clone()).collect();
            true
        }
        _ => false,
    }
}

/// Serde's message, with a suggestion for a misspelt key (and the key suggested).
fn polish(message: &str) -> (String, Option<String>) {
    if message.starts_with("unknown field `") {
        let words: Vec<&str> = backticked(message).collect();
        if let Some((unknown, valid)) = words.split_first()
            && let Some((d, best)) = valid.iter().map(|v| (edit_distance(unknown, v), *v)).min()
            && d <= 2
            && d < unknown.len()
        {
            return (format!("{message} (did you mean `{best}`?)"), Some(best.to_string()));
        }
    }
    (message.to_string(), None)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_patterns() {
        let p: HookPattern = "nat".parse().unwrap();
        assert!(p.matches(&"nat:POSTROUTING:rule:1".parse().unwrap()));
        assert!(!p.matches(&"eb:nat:POSTROUTING".parse().unwrap()));
        let p: HookPattern = "eb:nat".parse().unwrap();
        assert!(p.matches(&"eb:nat:POSTROUTING".parse().unwrap()));
        let p: HookPattern = "*:POSTROUTING".parse().unwrap();
        assert!(p.matches(&"mangle:POSTROUTING:policy:1".parse().unwrap()));
        assert!(!p.matches(&"mangle:FORWARD:policy:1".parse().unwrap()));
        assert!("nat::x".parse::<HookPattern>().is_err());
    }

    #[test]
    fn capture_points_parse() {
        let p: CapturePoint = "host/eth0".parse().unwrap();
        assert_eq!(p.to_string(), "host/eth0");
        assert!("host".parse::<CapturePoint>().is_err());
        assert!("host/eth0/x".parse::<CapturePoint>().is_err());
    }

    fn bundled() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases/scenarios/docker-masquerade.toml")
    }

    #[test]
    fn bundled_file_loads_and_to_toml_round_trips() {
        let sc = Scenario::load(&bundled()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sc.name, "docker-masquerade");
        assert!(!sc.netns.is_empty() && !sc.veth.is_empty() && !sc.probe.is_empty());
        assert!(!sc.probe[0].path.is_empty() && !sc.probe[0].addr.is_empty());
        assert_eq!(sc.validate(), Vec::<String>::new());
        let text = sc.to_toml();
        let again = Scenario::from_toml(&text, Path::new("to_toml.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(again, sc);
    }

    /// host -- veth -- c1, built in Rust.
    fn small() -> Scenario {
        let end = |netns: &str, name: &str, addr: &str| VethEndSpec {
            netns: netns.into(),
            name: name.into(),
            mac: None,
            addresses: vec![addr.parse().unwrap()],
            master: None,
            hairpin: false,
            mtu: None,
        };
        let ns = |name: &str| NetnsSpec {
            name: name.into(),
            sysctls: BTreeMap::new(),
            iptables: None,
            ip6tables: None,
            ebtables: None,
            nft: None,
            trace: true,
            traced_backend: None,
        };
        Scenario {
            name: "small".into(),
            description: String::new(),
            seed: None,
            backends: vec![Backend::Legacy],
            netns: vec![ns("host"), ns("c1")],
            bridge: vec![],
            veth: vec![VethSpec { a: end("host", "veth0", "10.0.0.1/24"), b: end("c1", "eth0", "10.0.0.2/24") }],
            wireguard: vec![],
            route: vec![],
            server: vec![],
            step: vec![],
            source: Default::default(),
            probe: vec![ProbeSpec::new("ping", ProbeKind::Icmp, "c1", "10.0.0.1".parse().unwrap())],
        }
    }

    #[test]
    fn validate_names_the_item_for_rust_built_scenarios() {
        let mut sc = small();
        assert_eq!(sc.validate(), Vec::<String>::new());
        sc.veth[0].b.netns = "c9".into();
        sc.probe[0].count = 1001;
        sc.probe[0].timeout_ms = 0;
        sc.route.push(RouteSpec {
            netns: "host".into(),
            to: RouteDst::Default,
            via: Some("10.9.0.1".parse().unwrap()),
            dev: None,
        });
        sc.probe[0].addr.push(AddrExpect {
            dst: Some("10.0.0.1".parse().unwrap()),
            ..AddrExpect::new(Direction::Request, "host/eth9".parse().unwrap())
        });
        let errs = sc.validate();
        // c1 lost its only interface to the undeclared c9: that c1 has no address to send from
        // follows from the first problem and is not reported on top of it.
        let want = [
            "veth[0].b.netns: netns `c9` is not declared (have: c1, host)",
            "route[0].via: gateway 10.9.0.1 is outside every connected prefix of netns host (it has 10.0.0.1/24), so the kernel refuses the route",
            "probe[0].count: count 1001 is outside 1 to 1000",
            "probe[0].timeout_ms: timeout_ms 0 is outside 1 to 60000 (one minute)",
            "probe[0].addr[0].at: capture point host/eth9 does not exist: netns host has no interface `eth9` (its interfaces: veth0)",
        ];
        assert_eq!(errs, want, "{errs:#?}");
    }

    fn diags(text: &str) -> Vec<String> {
        match Scenario::parse(text, Path::new("t.toml")) {
            Ok(_) => vec![],
            Err(d) => d.iter().map(ToString::to_string).collect(),
        }
    }

    const SMALL: &str = r#"name = "small"

[[netns]]
name = "host"

[[netns]]
name = "c1"

[[veth]]
a = { netns = "host", name = "veth0", addresses = ["10.0.0.1/24"] }
b = { netns = "c1", name = "eth0", addresses = ["10.0.0.2/24"] }

[[probe]]
name = "ping"
from = "c1"
to = "10.0.0.1"
"#;

    /// SMALL with both families on its veth, a default route per family in c1 (IPv6's via a
    /// link-local gateway) and one to an IPv6 prefix in host; the probe pings host over IPv6.
    fn dual() -> String {
        const ROUTES: &str = r#"[[route]]
netns = "c1"
to = "default"
via = "fe80::1"
dev = "eth0"

[[route]]
netns = "c1"
to = "default"
via = "10.0.0.1"

[[route]]
netns = "host"
to = "fd00:1::/64"
via = "fd00::2"

"#;
        SMALL
            .replace(r#"["10.0.0.1/24"]"#, r#"["fd00::1/64", "10.0.0.1/24"]"#)
            .replace(r#"["10.0.0.2/24"]"#, r#"["fd00::2/64", "10.0.0.2/24"]"#)
            .replace("[[probe]]", &format!("{ROUTES}[[probe]]"))
            .replace(r#"to = "10.0.0.1""#, r#"to = "fd00::1""#)
    }

    #[test]
    fn ipv6_routes_are_checked_like_ipv4_ones_and_located() {
        let dual = dual();
        assert_eq!(diags(&dual), Vec::<String>::new(), "one default per family is no duplicate");
        let sc = Scenario::parse(&dual, Path::new("t.toml")).unwrap();
        assert!(sc.route[0].is_ipv6() && !sc.route[1].is_ipv6());
        assert_eq!(sc.route[0].prefix().to_string(), "::/0");
        assert_eq!(sc.next_hop("c1", "eth0", "fd00:9::9".parse().unwrap()).to_string(), "fe80::1");
        assert_eq!(sc.next_hop("c1", "eth0", "10.9.9.9".parse().unwrap()).to_string(), "10.0.0.1");
        let bad = dual.replace("dev = \"eth0\"\n", "").replace("via = \"fd00::2\"", "via = \"fd00:9::2\"").replace(
            "via = \"10.0.0.1\"",
            "via = \"10.0.0.1\"\n\n[[route]]\nnetns = \"c1\"\nto = \"::/0\"\nvia = \"fd00::1\"",
        );
        assert_eq!(
            diags(&bad),
            [
                "t.toml:16:7: route[0].via: gateway fe80::1 is link-local, the same address on every link: give dev, the interface it is reached on (dev = \"eth0\")",
                "t.toml:25:6: route[2].to: netns c1 already has a route to ::/0 (route[0])",
                "t.toml:31:7: route[3].via: gateway fd00:9::2 is outside every connected prefix of netns host (it has fd00::1/64, 10.0.0.1/24), so the kernel refuses the route",
            ]
        );
        let mixed = dual.replace("to = \"fd00:1::/64\"", "to = \"10.1.0.0/16\"");
        assert_eq!(
            diags(&mixed),
            [
                "t.toml:27:7: route[2].via: gateway fd00::2 is not of the family of the route to 10.1.0.0/16: give an IPv4 gateway"
            ]
        );
        let hop = format!("{dual}addr = [{{ at = \"host/veth0\", hoplimit = 64 }}]\n");
        let sc = Scenario::parse(&hop, Path::new("t.toml")).unwrap();
        assert_eq!(sc.probe[0].addr[0].ttl, Some(64), "hoplimit is ttl's other name");
    }

    #[test]
    fn semantic_errors_carry_line_and_column() {
        assert_eq!(diags(SMALL), Vec::<String>::new());
        let text = SMALL
            .replace(r#"netns = "c1", name"#, r#"netns = "c9", name"#)
            .replace("from = \"c1\"\n", "from = \"c1\"\ncount = 0\n");
        assert_eq!(
            diags(&text),
            [
                "t.toml:11:15: veth[0].b.netns: netns `c9` is not declared (have: c1, host)",
                "t.toml:16:9: probe[0].count: count 0 is outside 1 to 1000",
            ]
        );
        // An interface in an undeclared netns was meant for another: that this one then lacks
        // an address follows, and is reported once the first problem is fixed.
        let text = SMALL
            .replace(r#"netns = "c1", name = "eth0", addresses = ["10.0.0.2/24"]"#, r#"netns = "c1", name = "eth0""#);
        assert_eq!(
            diags(&text),
            [
                "t.toml:15:8: probe[0].from: netns c1 has no IPv4 address to send to 10.0.0.1 from: give one of its interfaces (eth0) an address"
            ]
        );
        // A value left to its default is pointed at by its table.
        let text = format!("{SMALL}\n[[probe.addr]]\nat = \"c1/eth0\"\n");
        assert_eq!(
            diags(&text),
            [
                "t.toml:18:1: probe[0].addr[0]: asserts nothing: give src, dst, sport, dport, ttl, mac_src, mac_dst or absent"
            ]
        );
    }

    #[test]
    fn every_type_error_is_reported_at_its_value() {
        let text = SMALL
            .replace(r#""10.0.0.2/24""#, r#""10.0.0.2/33""#)
            .replace(r#"to = "10.0.0.1""#, "to = \"10.0.0.1\"\ncolour = 3\ncount = -1")
            .replace(r#"name = "host""#, "name = \"host\"\ntrace = \"yes\"");
        let d = diags(&text);
        assert_eq!(d.len(), 4, "{d:#?}");
        assert!(d[0].starts_with("t.toml:5:9: netns[0].trace: invalid type: string"), "{d:#?}");
        assert!(d[1].starts_with("t.toml:12:49: veth[0].b.addresses[0]: `33` in `10.0.0.2/33`"), "{d:#?}");
        assert!(d[2].starts_with("t.toml:18:1: probe[0]: unknown field `colour`"), "{d:#?}");
        assert!(d[3].starts_with("t.toml:19:9: probe[0].count: invalid value: integer `-1`"), "{d:#?}");
    }

    #[test]
    fn bad_hooks_and_missing_fields_are_located() {
        let text = format!(
            "{SMALL}\n[[probe.path]]\nnetns = \"host\"\nexact = [\n  \"raw:PREROUTING:policy:2\",\n  \"filter:FORWARD:rle:5\",\n]\n\n[[veth]]\na = {{ netns = \"host\", name = \"x\" }}\n"
        );
        let d = diags(&text);
        assert_eq!(d.len(), 2, "{d:#?}");
        assert!(
            d[0].starts_with("t.toml:22:3: probe[0].path[0].exact[1]: `filter:FORWARD:rle:5` is not a hook"),
            "{d:#?}"
        );
        assert_eq!(d[1], "t.toml:25:1: veth[1]: missing field `b`");
        let d = diags("description = \"no name\"\n");
        assert_eq!(d, ["t.toml:1:1: missing field `name`"]);
        let d = diags("name = 3\nbackends = [\"legacy\", \"nftables\"]\n");
        assert_eq!(d.len(), 2, "{d:#?}");
        assert!(d[0].starts_with("t.toml:1:8: name: invalid type: integer `3`"), "{d:#?}");
        assert!(d[1].starts_with("t.toml:2:23: backends[1]: unknown variant `nftables`"), "{d:#?}");
    }

    #[test]
    fn kernel_variants_are_chosen_by_range_and_bad_ranges_are_located() {
        let text = format!(
            "{SMALL}\n[[probe.path]]\nnetns = \"host\"\nkernel = \"<6.1\"\nexact = [\"raw:PREROUTING:policy:1\"]\n\n\
             [[probe.path]]\nnetns = \"host\"\nkernel = \">=6.1\"\nbackend = \"nft\"\nexact = [\"raw:PREROUTING:policy:2\"]\n\n\
             [[probe.addr]]\nat = \"host/veth0\"\nkernel = \">=5.10,<6.12\"\nsrc = \"10.0.0.2\"\n"
        );
        let sc = Scenario::parse(&text, Path::new("t.toml")).unwrap();
        let p = &sc.probe[0];
        let ex = crate::evidence::Exchange {
            packet: 1,
            nonce: vec![],
            request: Default::default(),
            reply: Default::default(),
            replied: true,
            answer: None,
        };
        let ctx = |backend, release: Option<&str>| crate::verdict::expect::Context {
            backend,
            kernel: release.map(|r| r.parse().unwrap()),
            exchange: &ex,
            exchanges: std::slice::from_ref(&ex),
        };
        let chosen = |backend, release: &str| -> Vec<usize> {
            let c = ctx(backend, Some(release));
            (0..p.path.len()).filter(|&i| p.path[i].applies(&c)).collect()
        };
        assert_eq!(chosen(Backend::Nft, "5.10.0-46-amd64"), [0]);
        assert_eq!(chosen(Backend::Nft, "6.1.0-57-amd64"), [1]);
        assert_eq!(chosen(Backend::Legacy, "6.12.118+deb13-amd64"), Vec::<usize>::new());
        assert!(p.addr[0].applies(&ctx(Backend::Legacy, Some("6.1.0"))));
        assert!(!p.addr[0].applies(&ctx(Backend::Legacy, Some("6.12.1"))));
        // An unknown kernel takes no ranged variant, never a wrong one.
        assert!(!p.path[0].applies(&ctx(Backend::Legacy, None)));

        let d = diags(&text.replace("kernel = \">=6.1\"", "kernel = \"6.1\""));
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(
            d[0].starts_with("t.toml:25:10: probe[0].path[1].kernel: kernel range `6.1`: `6.1` needs a comparison"),
            "{d:#?}"
        );
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_valid_ones() {
        let d = diags(&SMALL.replace("[[probe]]\nname", "[[probe]]\nnmae"));
        assert_eq!(
            d,
            [
                "t.toml:14:1: probe[0]: unknown field `nmae`, expected one of `name`, `kind`, `from`, `to`, `count`, `timeout_ms`, `replies`, `port`, `frame`, `answered_by`, `conntrack`, `path`, `addr` (did you mean `name`?)"
            ]
        );
    }

    #[test]
    fn syntax_errors_are_located() {
        let d = diags("name = \"x\"\nname = \"y\"\n");
        assert_eq!(d, ["t.toml:2:1: duplicate key `name`"]);
        let d = diags("name = \"x\"\n[[netns]\n");
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(d[0].starts_with("t.toml:2:"), "{d:#?}");
    }

    #[test]
    fn from_toml_error_reads_file_line_col() {
        let text = SMALL.replace(r#"netns = "c1", name"#, r#"netns = "c9", name"#);
        let e = Scenario::from_toml(&text, Path::new("dir/t.toml")).unwrap_err();
        assert!(matches!(e, crate::Error::File { .. }), "{e:?}");
        assert_eq!(e.to_string(), "dir/t.toml:11:15: veth[0].b.netns: netns `c9` is not declared (have: c1, host)");
        let text = text.replace("from = \"c1\"\n", "from = \"c1\"\ntimeout_ms = 60001\n");
        let e = Scenario::from_toml(&text, Path::new("dir/t.toml")).unwrap_err().to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 2, "{e}");
        assert!(lines[0].starts_with("dir/t.toml:11:15: veth[0].b.netns: "), "{e}");
        assert!(lines[1].starts_with("dir/t.toml:16:14: probe[0].timeout_ms: "), "{e}");
    }

    const WG: &str = r#"name = "wg"

[[netns]]
name = "p1"

[[netns]]
name = "p2"

[[veth]]
a = { netns = "p1", name = "eth0", addresses = ["172.21.0.5/24"] }
b = { netns = "p2", name = "eth0", addresses = ["172.21.0.6/24"] }

[[wireguard]]
netns = "p1"
iface = "wg0"
addresses = ["10.0.0.1/32"]
listen_port = 51820

[[wireguard.peers]]
peer = "p2/wg0"
endpoint = "172.21.0.6:51820"
allowed_ips = ["10.0.0.2/32"]

[[wireguard]]
netns = "p2"
iface = "wg0"
addresses = ["10.0.0.2/32"]
listen_port = 51820
peers = [{ peer = "p1/wg0", allowed_ips = ["10.0.0.1/32"], persistent_keepalive = 25 }]

[[route]]
netns = "p1"
to = "10.0.0.2/32"
dev = "wg0"

[[probe]]
name = "ping"
from = "p1"
to = "10.0.0.2"

[[probe.addr]]
at = "p2/wg0"
src = "10.0.0.1"
"#;

    #[test]
    fn wireguard_entries_parse_and_are_interfaces() {
        let sc = Scenario::from_toml(WG, Path::new("wg.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sc.wireguard.len(), 2);
        assert_eq!(sc.wireguard[0].id(), "p1/wg0");
        assert_eq!(sc.wireguard[0].peers[0].endpoint, Some("172.21.0.6:51820".parse().unwrap()));
        assert_eq!(sc.wireguard[1].peers[0].persistent_keepalive, Some(25));
        // Capture points, addresses and owners know them.
        let points: Vec<String> = sc.capture_points().iter().map(ToString::to_string).collect();
        assert_eq!(points, ["p1/eth0", "p1/wg0", "p2/eth0", "p2/wg0"]);
        assert_eq!(sc.interface_addresses("p2", "wg0"), vec!["10.0.0.2/32".parse().unwrap()]);
        assert_eq!(sc.owner_of("10.0.0.2".parse().unwrap()), Some(("p2".into(), "wg0".into())));
        let again = Scenario::from_toml(&sc.to_toml(), Path::new("again.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, sc);
        // A netns whose only address is on its WireGuard interface can send.
        let text = WG.replace(
            r#"a = { netns = "p1", name = "eth0", addresses = ["172.21.0.5/24"] }"#,
            r#"a = { netns = "p1", name = "eth0" }"#,
        );
        assert_eq!(diags(&text), Vec::<String>::new());
    }

    #[test]
    fn wireguard_problems_name_their_item() {
        let text = WG
            .replace(r#"peer = "p2/wg0""#, r#"peer = "p3/wg0""#)
            .replace(
                r#"allowed_ips = ["10.0.0.2/32"]"#,
                r#"allowed_ips = ["10.0.0.2/24", "10.0.0.2/32", "10.0.0.2/32"]"#,
            )
            .replace("listen_port = 51820\npeers", "listen_port = 0\npeers")
            .replace(
                r#"iface = "wg0"
addresses = ["10.0.0.2/32"]"#,
                r#"iface = "wireguard-interface"
addresses = ["10.0.0.2/32"]"#,
            )
            .replace("at = \"p2/wg0\"\nsrc = \"10.0.0.1\"", "at = \"p1/wg0\"\nmac_src = \"02:00:00:00:00:01\"");
        assert_eq!(
            diags(&text),
            [
                "t.toml:20:8: wireguard[0].peers[0].peer: `p3/wg0` is no [[wireguard]] entry (have: p2/wireguard-interface)",
                "t.toml:22:16: wireguard[0].peers[0].allowed_ips[0]: `10.0.0.2/24` has host bits set: WireGuard would silently take it as 10.0.0.0/24; write that",
                "t.toml:22:46: wireguard[0].peers[0].allowed_ips[2]: 10.0.0.2/32 is given twice",
                "t.toml:26:9: wireguard[1].iface: interface name `wireguard-interface` must be 1 to 15 characters without `/`, `:` or spaces",
                "t.toml:28:15: wireguard[1].listen_port: port 0 is not a port to listen on: leave listen_port out and WireGuard picks one",
                "t.toml:43:11: probe[0].addr[0].mac_src: p1/wg0 is a WireGuard interface: it carries raw IP packets, without MAC addresses",
            ]
        );
        // Two peers of one interface may not share a prefix; a peer is named netns/iface.
        let text = WG.replacen(
            "allowed_ips = [\"10.0.0.2/32\"]\n",
            "allowed_ips = [\"10.0.0.2/32\"]\n\n[[wireguard.peers]]\npeer = \"p2\"\nallowed_ips = [\"10.0.0.2/32\"]\n",
            1,
        );
        assert_eq!(
            diags(&text),
            [
                "t.toml:25:8: wireguard[0].peers[1].peer: `p2` is no [[wireguard]] entry (a peer is named netns/iface, e.g. peer2/wg0) (have: p2/wg0)",
                "t.toml:26:16: wireguard[0].peers[1].allowed_ips[0]: 10.0.0.2/32 is also allowed for peers[0] (p2/wg0): WireGuard gives a prefix to one peer only, the last one set",
            ]
        );
        // A route through a WireGuard interface that does not exist is caught like any other.
        let text = WG.replace("dev = \"wg0\"", "dev = \"wg1\"");
        assert_eq!(
            diags(&text),
            ["t.toml:34:7: route[0].dev: netns p1 has no interface `wg1` (its interfaces: eth0, wg0)"]
        );
    }

    #[test]
    fn damaged_files_never_panic() {
        let text = std::fs::read_to_string(bundled()).unwrap();
        let cuts = (0..text.len()).filter(|i| text.is_char_boundary(*i)).step_by(3);
        for cut in cuts {
            let _ = Scenario::parse(&text[..cut], Path::new("cut.toml"));
        }
        for (from, to) in [("\"", ""), ("=", ""), ("[", ""), ("]", ""), ("host", ""), ("1", "x"), ("\n", " ")] {
            let _ = Scenario::parse(&text.replacen(from, to, 3), Path::new("edit.toml"));
        }
        // Random edits with TOML's own characters: every Err carries a located problem.
        let alphabet: Vec<char> = "\"'[]{}=,.:#\n 0123456789abcdefghijklmnopqrstuvwxyz/-é".chars().collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n.max(1)
        };
        for _ in 0..400 {
            let mut chars: Vec<char> = text.chars().collect();
            for _ in 0..1 + next(4) {
                let at = next(chars.len());
                match next(3) {
                    0 => drop(chars.remove(at)),
                    1 => chars.insert(at, alphabet[next(alphabet.len())]),
                    _ => chars[at] = alphabet[next(alphabet.len())],
                }
            }
            let edited: String = chars.into_iter().collect();
            if let Err(d) = Scenario::parse(&edited, Path::new("fuzz.toml")) {
                assert!(!d.is_empty() && d.iter().all(|d| d.line >= 1 && d.column >= 1), "{edited}");
            }
        }
        assert_eq!(line_col("aé\nb", 2), (1, 2));
        assert_eq!(line_col("a", 99), (1, 2));
    }
}
