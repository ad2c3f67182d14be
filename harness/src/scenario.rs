//! A scenario: topology, rules, probes and what each probe must show. Rust code and scenario
//! files build the same types.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::cidr::Cidr;
use crate::firewall::Backend;
use crate::packet::Mac;
use crate::trace::Hook;

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
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteSpec>,
    #[serde(default)]
    pub probe: Vec<ProbeSpec>,
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
    /// ebtables rules in `ebtables-save` format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebtables: Option<String>,
    /// Collect the netfilter trace of this netns (iptables TRACE where it has a ruleset,
    /// ebtables trace rules where it has a bridge).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub trace: bool,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    /// ICMP echo request; the target's kernel answers.
    #[default]
    Icmp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeSpec {
    pub name: String,
    #[serde(default)]
    pub kind: ProbeKind,
    /// The netns that sends.
    pub from: String,
    pub to: IpAddr,
    /// Packets of one flow, sent one after the other.
    #[serde(default = "one")]
    pub count: u16,
    /// How long to wait for each reply.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Whether replies must come back (false: the request must be dropped on its way).
    #[serde(default = "yes")]
    pub replies: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<PathExpect>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addr: Vec<AddrExpect>,
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
        match s.split_once('/') {
            Some((n, i)) if !n.is_empty() && !i.is_empty() && !i.contains('/') => {
                Ok(CapturePoint { netns: n.into(), iface: i.into() })
            }
            _ => Err(format!("`{s}` is not a capture point (want netns/interface, e.g. host/eth0)")),
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

/// What the hooks of one packet in one netns must be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathExpect {
    /// Which packet of the flow (1 = the first).
    #[serde(default = "one")]
    pub packet: u16,
    #[serde(default = "request")]
    pub direction: Direction,
    pub netns: String,
    /// Only under this backend: paths that really differ by backend are written as variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// The whole sequence, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<Vec<Hook>>,
    /// These hooks in this order, others may stand between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Vec<Hook>>,
    /// No hook matching any of these patterns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub never: Vec<HookPattern>,
}

fn request() -> Direction {
    Direction::Request
}

/// What addresses one packet carried at one capture point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddrExpect {
    #[serde(default = "one")]
    pub packet: u16,
    #[serde(default = "request")]
    pub direction: Direction,
    pub at: CapturePoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    /// The packet must not be seen there at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
}

impl Scenario {
    /// The netns spec named `name`.
    pub fn netns_mut(&mut self, name: &str) -> Option<&mut NetnsSpec> {
        self.netns.iter_mut().find(|n| n.name == name)
    }

    pub fn probe_mut(&mut self, name: &str) -> Option<&mut ProbeSpec> {
        self.probe.iter_mut().find(|p| p.name == name)
    }

    /// Every capture point the topology has (each veth end, each bridge).
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
            .collect();
        v.sort();
        v
    }

    /// Check what serde cannot: every name a part refers to exists, names are unique and
    /// interface names fit the kernel's 15 bytes. Returns every problem found.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = vec![];
        let mut seen = std::collections::BTreeSet::new();
        for n in &self.netns {
            if !seen.insert(n.name.as_str()) {
                errs.push(format!("netns `{}` is declared twice", n.name));
            }
            if n.name.is_empty() || n.name.contains('/') || n.name.len() > 32 {
                errs.push(format!("netns name `{}` must be 1 to 32 characters without `/`", n.name));
            }
        }
        let known = |ns: &str, what: &str, errs: &mut Vec<String>| {
            if !seen.contains(ns) {
                errs.push(format!(
                    "{what} names netns `{ns}`, which is not declared (have: {})",
                    seen.iter().copied().collect::<Vec<_>>().join(", ")
                ));
            }
        };
        let mut ifaces = std::collections::BTreeSet::new();
        let mut add_iface = |p: CapturePoint, errs: &mut Vec<String>| {
            if p.iface.is_empty() || p.iface.len() > 15 || p.iface.contains(['/', ' ', ':']) {
                errs.push(format!(
                    "interface name `{}` must be 1 to 15 characters without `/`, `:` or spaces",
                    p.iface
                ));
            }
            if !ifaces.insert(p.clone()) {
                errs.push(format!("interface {p} is declared twice"));
            }
        };
        for b in &self.bridge {
            known(&b.netns, &format!("bridge {}", b.name), &mut errs);
            add_iface(CapturePoint { netns: b.netns.clone(), iface: b.name.clone() }, &mut errs);
        }
        for v in &self.veth {
            for e in [&v.a, &v.b] {
                known(&e.netns, &format!("veth end {}", e.name), &mut errs);
                add_iface(CapturePoint { netns: e.netns.clone(), iface: e.name.clone() }, &mut errs);
                if let Some(m) = &e.master
                    && !self.bridge.iter().any(|b| &b.name == m && b.netns == e.netns)
                {
                    errs.push(format!(
                        "veth end {}/{} has master `{m}`, which is no bridge in netns {}",
                        e.netns, e.name, e.netns
                    ));
                }
            }
        }
        for r in &self.route {
            known(&r.netns, "a route", &mut errs);
            if let Some(d) = &r.dev
                && !ifaces.contains(&CapturePoint { netns: r.netns.clone(), iface: d.clone() })
            {
                errs.push(format!("a route in netns {} names dev `{d}`, which is not an interface there", r.netns));
            }
        }
        let mut probes = std::collections::BTreeSet::new();
        for p in &self.probe {
            if !probes.insert(p.name.as_str()) {
                errs.push(format!("probe `{}` is declared twice", p.name));
            }
            known(&p.from, &format!("probe {}", p.name), &mut errs);
            if p.count == 0 {
                errs.push(format!("probe {} has count 0", p.name));
            }
            for e in &p.path {
                known(&e.netns, &format!("a path expectation of probe {}", p.name), &mut errs);
                if e.exact.is_none() && e.includes.is_none() && e.never.is_empty() {
                    errs.push(format!(
                        "a path expectation of probe {} asserts nothing: give exact, includes or never",
                        p.name
                    ));
                }
                if e.packet == 0 || e.packet > p.count {
                    errs.push(format!(
                        "a path expectation of probe {} names packet {}, but it sends {}",
                        p.name, e.packet, p.count
                    ));
                }
            }
            for a in &p.addr {
                if !ifaces.contains(&a.at) {
                    errs.push(format!(
                        "an address expectation of probe {} names capture point {}, which does not exist",
                        p.name, a.at
                    ));
                }
                if !a.absent && a.src.is_none() && a.dst.is_none() {
                    errs.push(format!(
                        "an address expectation of probe {} at {} asserts nothing: give src, dst or absent",
                        p.name, a.at
                    ));
                }
                if a.packet == 0 || a.packet > p.count {
                    errs.push(format!(
                        "an address expectation of probe {} names packet {}, but it sends {}",
                        p.name, a.packet, p.count
                    ));
                }
            }
        }
        errs
    }
}

/// Where in a file a problem is: 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

impl Scenario {
    /// Parse a scenario file's text; `origin` names it in errors, which give line and column.
    pub fn from_toml(text: &str, origin: &std::path::Path) -> crate::Result<Scenario> {
        let sc: Scenario = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| line_col(text, s.start));
            let message = match at {
                Some((l, c)) => format!("line {l}, column {c}: {}", e.message()),
                None => e.message().to_string(),
            };
            crate::Error::File { path: origin.to_path_buf(), message }
        })?;
        let errs = sc.validate();
        if !errs.is_empty() {
            return Err(crate::Error::File { path: origin.to_path_buf(), message: errs.join("\n") });
        }
        Ok(sc)
    }

    /// Read and parse a scenario file.
    pub fn load(path: &std::path::Path) -> crate::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| crate::Error::File { path: path.to_path_buf(), message: e.to_string() })?;
        Scenario::from_toml(&text, path)
    }

    /// The scenario as a scenario file.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"))
    }
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
}
