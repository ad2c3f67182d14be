//! What the user's tools made, found after the steps: every link of every netns (all captured),
//! stable handles for interfaces a tool named at random (`host/peer:c1/eth0`: the host end of
//! c1's eth0 veth), probe targets by interface (`to = "@c1/eth0"`), and which iptables backend
//! the tools wrote their rules to in each netns, so the matching trace source follows.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::firewall::{Backend, Family, run_tool};
use crate::lab::{Lab, LinkInfo};
use crate::observe::{self, TraceChoice};
use crate::scenario::{CapturePoint, Scenario};
use crate::verdict::Failure;

/// Where a probe is sent: an address, or `@netns/iface`, the address that interface has once
/// the steps ran (a CNI plugin's IPAM chose it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An address.
    Addr(IpAddr),
    /// `@netns/iface`: the address that interface has once the steps ran.
    Iface(CapturePoint),
}

impl Target {
    /// The address, if it is one already.
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            Target::Addr(a) => Some(*a),
            Target::Iface(_) => None,
        }
    }
}

impl From<IpAddr> for Target {
    fn from(a: IpAddr) -> Target {
        Target::Addr(a)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => write!(f, "{a}"),
            Target::Iface(p) => write!(f, "@{p}"),
        }
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Target, String> {
        match s.strip_prefix('@') {
            Some(point) => point
                .parse::<CapturePoint>()
                .map(Target::Iface)
                .map_err(|_| format!("`{s}` is not an interface target (want @netns/interface, e.g. @c1/eth0)")),
            None => s.parse().map(Target::Addr).map_err(|_| {
                format!("`{s}` is neither an IP address nor @netns/interface (the address it has after the steps)")
            }),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Target, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// `c1/eth0` for the handle `host/peer:c1/eth0`.
pub fn peer_of(p: &CapturePoint) -> Option<CapturePoint> {
    p.iface.strip_prefix("peer:")?.parse().ok()
}

/// The iptables rules found in one netns after the steps, per backend: `-A` lines of
/// `iptables-legacy-save` and `iptables-nft-save`, netpath's own TRACE rules left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Detected {
    /// Rules found through iptables-legacy.
    pub legacy: usize,
    /// Rules found through iptables-nft.
    pub nft: usize,
}

impl Detected {
    /// The one backend that has rules; `None` for none or both.
    pub fn only(self) -> Option<Backend> {
        match (self.legacy > 0, self.nft > 0) {
            (true, false) => Some(Backend::Legacy),
            (false, true) => Some(Backend::Nft),
            _ => None,
        }
    }
}

/// Count the rules each backend holds in `netns`.
pub fn detect(lab: &Lab, netns: &str) -> Result<Detected> {
    let ns = lab.netns(netns)?;
    let count = |save: &str| {
        save.lines()
            .filter(|l| l.starts_with("-A "))
            .filter(|l| !matches!(*l, "-A PREROUTING -j TRACE" | "-A OUTPUT -j TRACE"))
            .count()
    };
    Ok(Detected {
        legacy: count(&run_tool(ns, "iptables-legacy-save", &[], None)?),
        nft: count(&run_tool(ns, "iptables-nft-save", &[], None)?),
    })
}

/// What a run learnt about its lab once the steps ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Setup {
    /// Where the captures run: the scenario's interfaces and, with steps, every other link
    /// that is up in a lab netns.
    #[serde(skip)]
    pub points: Vec<CapturePoint>,
    /// Handle of each interface it stands for (`host/vethd4d2af10` -> `host/peer:c1/eth0`).
    pub handles: BTreeMap<String, String>,
    /// Per traced netns whose iptables rules steps wrote: the source that reads them (the
    /// run's own, or the one the backend its tools chose reports through).
    #[serde(skip)]
    pub traces: BTreeMap<String, TraceChoice>,
    /// Per netns, with steps: the iptables rules each backend held after them.
    pub backends: BTreeMap<String, Detected>,
    /// The steps' records, in the order they ran (teardown steps last).
    pub steps: Vec<crate::lab::step::StepRecord>,
}

impl Setup {
    /// Put each handle beside the real name it resolved to in failure texts:
    /// `host/vethd4d2af10` reads `host/peer:c1/eth0 (vethd4d2af10)`; a failure at such a
    /// point gets its handle.
    pub fn decorate(&self, failures: &mut [Failure]) {
        for f in failures {
            if let Some(at) = &f.at
                && let Some(handle) = self.handles.get(&at.to_string())
            {
                f.handle = handle.parse().ok();
            }
            for (real, handle) in &self.handles {
                let iface = real.split_once('/').map_or(real.as_str(), |(_, i)| i);
                let shown = format!("{handle} ({iface})");
                f.what = replace_token(&f.what, real, &shown);
                f.detail = replace_token(&f.detail, real, &shown);
            }
        }
    }
}

/// `text` with every `token` that is not part of a longer name replaced.
fn replace_token(text: &str, token: &str, with: &str) -> String {
    let name_char = |c: char| c.is_ascii_alphanumeric() || "-_.@".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(token) {
        let prev = rest[..at].chars().next_back().or_else(|| out.chars().next_back());
        let before_ok = !prev.is_some_and(name_char);
        let after_ok = !rest[at + token.len()..].starts_with(name_char);
        out.push_str(&rest[..at]);
        out.push_str(if before_ok && after_ok { with } else { token });
        rest = &rest[at + token.len()..];
    }
    out.push_str(rest);
    out
}

/// After the steps: detect each netns's backend (adding netpath's TRACE rules where the tools'
/// rules need them), list every link, and return the scenario with its handles and interface
/// targets replaced by what they stand for in this lab.
pub fn after_steps(lab: &Lab, sc: &Scenario, backend: Backend, trace: TraceChoice) -> Result<(Scenario, Setup)> {
    let fail = |message: String| Error::Scenario { scenario: sc.name.clone(), message };
    let mut setup = Setup { points: sc.capture_points(), ..Default::default() };
    let mut links: BTreeMap<String, Vec<LinkInfo>> = BTreeMap::new();
    for n in &sc.netns {
        links.insert(n.name.clone(), lab.link_infos(&n.name)?);
    }
    if !sc.step.is_empty() {
        for n in &sc.netns {
            let found = detect(lab, &n.name)?;
            setup.backends.insert(n.name.clone(), found);
            let traced = match (n.traced_backend, found.only()) {
                (Some(pin), _) if found.legacy + found.nft == 0 || pin_has_rules(pin, found) => Some(pin),
                (Some(pin), _) => {
                    return Err(fail(format!(
                        "netns {}: traced_backend = \"{}\", but its iptables rules are all in the other backend ({})",
                        n.name,
                        pin.name(),
                        describe(found)
                    )));
                }
                (None, Some(b)) => Some(b),
                (None, None) if found.legacy + found.nft == 0 => None,
                (None, None) => {
                    return Err(fail(format!(
                        "netns {} has iptables rules in both backends ({}): a packet meets both, netpath traces one; \
                         say which with traced_backend = \"legacy\" or \"nft\" in its [[netns]]",
                        n.name,
                        describe(found)
                    )));
                }
            };
            let Some(b) = traced.filter(|_| n.trace) else { continue };
            // The run's own source where it sees the tools' backend (it may be the kernel log),
            // else the one that backend reports through.
            let source = observe::trace::source::source_for(trace, backend, b).map_err(|why| Error::Trace {
                netns: n.name.clone(),
                message: format!("its steps wrote its iptables rules to {} ({}): {why}", b.name(), describe(found)),
            })?;
            // The scenario's own ruleset under this run's backend has its TRACE rules already.
            // (Only IPv4: the backends are detected from what the tools wrote with iptables.)
            if !(b == backend && n.iptables.is_some()) {
                observe::prepare_iptables(lab.netns(&n.name)?, "", b, Family::V4, source)?;
            }
            setup.traces.insert(n.name.clone(), source);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        for (netns, infos) in &links {
            for l in infos.iter().filter(|l| l.up && l.name != "lo") {
                let p = CapturePoint { netns: netns.clone(), iface: l.name.clone() };
                if !setup.points.contains(&p) {
                    lab.wait_until_up(netns, &l.name, deadline)?;
                    setup.points.push(p);
                }
            }
        }
        setup.points.sort();
    }

    let mut resolved = sc.clone();
    let mut local: BTreeMap<String, std::collections::BTreeSet<IpAddr>> = BTreeMap::new();
    for p in &mut resolved.probe {
        if let Target::Iface(at) = &p.to {
            let addr =
                address_of(lab, &links, at).map_err(|m| fail(format!("probe {}: to = \"@{at}\": {m}", p.name)))?;
            p.to = Target::Addr(addr);
        }
        // A probe to one of its own netns's addresses never leaves it: only `lo` carries it,
        // and without a capture there its nf_tables trace has no frame to be joined to.
        if let Target::Addr(addr) = p.to {
            let own = match local.entry(p.from.clone()) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => e.insert(lab.local_addresses(&p.from)?),
            };
            let lo = CapturePoint { netns: p.from.clone(), iface: "lo".into() };
            if (addr.is_loopback() || own.contains(&addr)) && !setup.points.contains(&lo) {
                setup.points.push(lo);
            }
        }
        for a in &mut p.addr {
            if let Some(peer) = peer_of(&a.at) {
                let real = peer_name(&links, &a.at.netns, &peer)
                    .map_err(|m| fail(format!("probe {}: at = \"{}\": {m}", p.name, a.at)))?;
                let real_point = CapturePoint { netns: a.at.netns.clone(), iface: real };
                setup.handles.insert(real_point.to_string(), a.at.to_string());
                a.at = real_point;
            }
            // Every netns has a loopback: captured where an expectation names it.
            if a.at.iface == "lo" && !setup.points.contains(&a.at) {
                setup.points.push(a.at.clone());
            }
            if !setup.points.contains(&a.at) {
                return Err(fail(format!(
                    "probe {}: at = \"{}\": netns {} has no interface `{}` after the steps (its links: {})",
                    p.name,
                    a.at,
                    a.at.netns,
                    a.at.iface,
                    names(links.get(&a.at.netns))
                )));
            }
        }
    }
    setup.points.sort();
    Ok((resolved, setup))
}

fn pin_has_rules(pin: Backend, found: Detected) -> bool {
    match pin {
        Backend::Legacy => found.legacy > 0,
        Backend::Nft => found.nft > 0,
    }
}

fn describe(d: Detected) -> String {
    format!("x_tables: {} rules in iptables-legacy-save, nf_tables: {} rules in iptables-nft-save", d.legacy, d.nft)
}

fn names(infos: Option<&Vec<LinkInfo>>) -> String {
    let v: Vec<&str> = infos.into_iter().flatten().map(|l| l.name.as_str()).filter(|n| *n != "lo").collect();
    if v.is_empty() { "none but lo".into() } else { v.join(", ") }
}

fn find<'a>(links: &'a BTreeMap<String, Vec<LinkInfo>>, p: &CapturePoint) -> std::result::Result<&'a LinkInfo, String> {
    let infos = links.get(&p.netns).ok_or_else(|| format!("no netns `{}` in this lab", p.netns))?;
    infos.iter().find(|l| l.name == p.iface).ok_or_else(|| {
        format!("netns {} has no interface `{}` after the steps (its links: {})", p.netns, p.iface, names(Some(infos)))
    })
}

/// The name of the link in `netns` that is the other end of the veth `peer`: its IFLA_LINK
/// is `peer`'s index and `peer`'s IFLA_LINK is its index (indexes are per netns, so both
/// directions must agree).
fn peer_name(
    links: &BTreeMap<String, Vec<LinkInfo>>,
    netns: &str,
    peer: &CapturePoint,
) -> std::result::Result<String, String> {
    let end = find(links, peer)?;
    let Some(other) = end.peer_index.filter(|i| *i != end.index || peer.netns != netns) else {
        return Err(format!("{peer} is not a veth (it has no peer link)"));
    };
    let infos = links.get(netns).ok_or_else(|| format!("no netns `{netns}` in this lab"))?;
    infos.iter().find(|l| l.index == other && l.peer_index == Some(end.index)).map(|l| l.name.clone()).ok_or_else(
        || format!("the other end of {peer}'s veth is not in netns {netns} (its links: {})", names(Some(infos))),
    )
}

/// The first IPv4 address of `at` now (probes are IPv4).
fn address_of(
    lab: &Lab,
    links: &BTreeMap<String, Vec<LinkInfo>>,
    at: &CapturePoint,
) -> std::result::Result<IpAddr, String> {
    let l = find(links, at)?;
    let addrs = lab.addresses_of(&at.netns, l.index).map_err(|e| e.to_string())?;
    addrs.into_iter().find(IpAddr::is_ipv4).ok_or_else(|| format!("{at} has no IPv4 address after the steps"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_print() {
        assert_eq!("10.0.0.1".parse::<Target>().unwrap(), Target::Addr("10.0.0.1".parse().unwrap()));
        let t: Target = "@c1/eth0".parse().unwrap();
        assert_eq!(t, Target::Iface("c1/eth0".parse().unwrap()));
        assert_eq!(t.to_string(), "@c1/eth0");
        assert!("@c1".parse::<Target>().unwrap_err().contains("want @netns/interface"));
        assert!("c1/eth0".parse::<Target>().unwrap_err().contains("neither an IP address"));
    }

    #[test]
    fn peer_handles_parse() {
        let p: CapturePoint = "host/peer:c1/eth0".parse().unwrap();
        assert_eq!(p.netns, "host");
        assert_eq!(peer_of(&p), Some("c1/eth0".parse().unwrap()));
        assert_eq!(p.to_string(), "host/peer:c1/eth0");
        assert!("host/peer:c1".parse::<CapturePoint>().is_err());
        assert!("host/c1/eth0".parse::<CapturePoint>().is_err());
        assert_eq!(peer_of(&"host/eth0".parse().unwrap()), None);
    }

    #[test]
    fn peers_are_matched_both_ways() {
        let l = |index, name: &str, peer| LinkInfo { index, name: name.into(), peer_index: peer, up: true };
        let links = BTreeMap::from([
            (
                "host".to_string(),
                vec![l(1, "lo", None), l(2, "cni0", None), l(3, "vethd4d2af10", Some(2)), l(4, "eth0", Some(2))],
            ),
            ("c1".to_string(), vec![l(1, "lo", None), l(2, "eth0", Some(3))]),
        ]);
        assert_eq!(peer_name(&links, "host", &"c1/eth0".parse().unwrap()).unwrap(), "vethd4d2af10");
        assert!(peer_name(&links, "host", &"c1/eth9".parse().unwrap()).unwrap_err().contains("no interface `eth9`"));
    }

    #[test]
    fn handles_are_shown_beside_real_names() {
        let setup = Setup {
            handles: BTreeMap::from([("host/veth1".to_string(), "host/peer:c1/eth0".to_string())]),
            ..Default::default()
        };
        let mut f = vec![Failure::new(
            crate::verdict::FailureKind::Header,
            "addresses of packet 1 reply at host/veth1".into(),
            "at host/veth1: x; host/veth12".into(),
        )];
        f[0].at = Some("host/veth1".parse().unwrap());
        setup.decorate(&mut f);
        assert_eq!(f[0].handle, Some("host/peer:c1/eth0".parse().unwrap()));
        assert_eq!(f[0].what, "addresses of packet 1 reply at host/peer:c1/eth0 (veth1)");
        assert_eq!(f[0].detail, "at host/peer:c1/eth0 (veth1): x; host/veth12");
    }
}
