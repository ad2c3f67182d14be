//! What serde cannot check in a scenario, by topic: the scenario and its namespaces and
//! interfaces ([`topology`]), WireGuard, routes, rules and servers, probes and their
//! expectations. Each check reads the names [`Topology`] collected; the order of the problems
//! is the order of the scenario's parts.

pub(super) mod names;
mod probes;
mod routes;
mod rules;
mod topology;
mod wireguard;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::cidr::Cidr;
use crate::evidence::packet::Mac;
use crate::scenario::Scenario;

impl Scenario {
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
        topology::scenario(self, &mut ps);
        let t = topology::declared(self, &mut ps);
        topology::masters(&t, &mut ps);
        wireguard::check(self, &mut ps);
        routes::check(self, &t, &mut ps);
        rules::check(self, &t, &mut ps);
        probes::check(self, &t, &mut ps);
        ps.0
    }
}

/// The namespaces and interfaces a scenario declares, for the checks that look names up.
pub(super) struct Topology<'a> {
    /// Netns name → its index in `netns`.
    pub(super) netns: BTreeMap<&'a str, usize>,
    pub(super) decls: Vec<IfaceDecl<'a>>,
    /// (netns, interface) → the item that declares it.
    pub(super) ifaces: BTreeMap<(&'a str, &'a str), String>,
}

/// Whether `ns` is declared; a problem at `item` if not.
pub(super) fn known(netns: &BTreeMap<&str, usize>, item: String, ns: &str, ps: &mut Problems) -> bool {
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
}

impl<'a> Topology<'a> {
    pub(super) fn known(&self, item: String, ns: &str, ps: &mut Problems) -> bool {
        known(&self.netns, item, ns, ps)
    }

    pub(super) fn ifaces_of(&self, ns: &str) -> Vec<&IfaceDecl<'a>> {
        self.decls.iter().filter(|d| d.netns == ns).collect()
    }

    // Interfaces in a netns that is not declared were meant for another one: what follows
    // from a netns lacking an interface or an address such an orphan has is not reported.
    fn orphans(&self) -> impl Iterator<Item = &IfaceDecl<'a>> {
        self.decls.iter().filter(|d| !self.netns.contains_key(d.netns))
    }

    pub(super) fn orphan_named(&self, name: &str) -> bool {
        self.orphans().any(|d| d.name == name)
    }

    pub(super) fn orphan_addr(&self, f: &dyn Fn(&Cidr) -> bool) -> bool {
        self.orphans().flat_map(|d| d.addresses).any(f)
    }

    /// `its interfaces: a, b`, for messages about a missing one.
    pub(super) fn names_of(&self, ns: &str) -> String {
        let names = self.ifaces_of(ns).iter().map(|d| d.name).collect::<Vec<_>>();
        if names.is_empty() {
            format!("netns {ns} has no interface")
        } else {
            format!("its interfaces: {}", list(names))
        }
    }
}

/// The most namespaces one scenario may declare: each is a mount and an open descriptor for the
/// whole run, and every capture and trace reader holds more (a file with thousands ran netpath
/// out of descriptors mid-build).
pub const MAX_NETNS: usize = 256;
/// The most bridges one scenario may declare.
pub const MAX_BRIDGES: usize = 256;
/// The most veth pairs one scenario may declare (each end is captured: two pcap handles).
pub const MAX_VETHS: usize = 512;
/// The most WireGuard interfaces one scenario may declare.
pub const MAX_WIREGUARD: usize = 64;
/// The most routes one scenario may declare.
pub const MAX_ROUTES: usize = 4096;
/// The most servers one scenario may declare.
pub const MAX_SERVERS: usize = 256;
/// The most steps one scenario may declare.
pub const MAX_STEPS: usize = 256;
/// The most probes one scenario may declare.
pub const MAX_PROBES: usize = 256;
/// The most packets one probe may send.
pub const MAX_COUNT: u16 = 1000;
/// The longest a probe may wait for a reply.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// One problem [`Scenario::problems`] found: the item it concerns, as a path into the scenario
/// (`veth[2].b.netns`, `probe[0].addr[1].at`; empty for the whole scenario), and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The item it concerns, as a path into the scenario (empty for the whole scenario).
    pub item: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.item.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.item, self.message) }
    }
}

#[derive(Default)]
pub(super) struct Problems(Vec<Problem>);

impl Problems {
    pub(super) fn add(&mut self, item: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { item: item.into(), message: message.into() });
    }
}

/// A bridge or a veth end, as validation sees both.
pub(super) struct IfaceDecl<'a> {
    /// `bridge[0]`, `veth[1].b`.
    pub(super) item: String,
    pub(super) netns: &'a str,
    pub(super) name: &'a str,
    /// The field that holds the name: `name`, or `iface` for a WireGuard interface.
    pub(super) name_key: &'static str,
    pub(super) mac: Option<Mac>,
    pub(super) addresses: &'a [Cidr],
    pub(super) mtu: Option<u32>,
    pub(super) master: Option<&'a str>,
    pub(super) bridge: bool,
}

pub(super) fn list<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> String {
    items.into_iter().map(|s| s.as_ref().to_string()).collect::<Vec<_>>().join(", ")
}

/// Whether the prefix length fits the address (a `Cidr` built in Rust may not).
pub(super) fn sane(c: &Cidr) -> bool {
    c.prefix <= if c.addr.is_ipv4() { 32 } else { 128 }
}

/// The network address of a prefix (host bits cleared).
pub(super) fn network(c: Cidr) -> IpAddr {
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
