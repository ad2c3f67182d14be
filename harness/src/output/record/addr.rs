//! Recording `[[probe.addr]]`: what the packets carried at every capture point, ports as
//! numbers only where the scenario fixes them ([`PortPolicy`]).

use std::collections::BTreeSet;

use super::{Group, Recorder, packets_text};
use crate::evidence::Exchange;
use crate::firewall::Backend;
use crate::scenario::{AddrExpect, CapturePoint, Direction, PortExpect, ProbeSpec, Scenario};
use crate::verdict::addr::{oriented, reference_ports};

/// The address entries of the probe of `rec`: one per direction and capture point (`absent`
/// where its packets were not seen), split by packets or backend where they differ.
pub(super) fn recorded(scenario: &Scenario, points: &[CapturePoint], rec: &mut Recorder<'_>) -> Vec<AddrExpect> {
    let spec = rec.spec;
    let policy = PortPolicy::of(scenario, spec);
    // A reply no packet had is not `absent` at every capture point: it is not there to see.
    let any_reply = rec.exchanges().any(|x| x.replied || !x.reply.seen.is_empty());
    let mut out = vec![];
    for d in [Direction::Request, Direction::Reply].into_iter().filter(|d| *d == Direction::Request || any_reply) {
        for point in points {
            // A point that saw some packet more than once gets an entry per sighting.
            let most = rec.exchanges().map(|x| x.of(d).sightings(point).count()).max().unwrap_or(0).max(1);
            for n in 1..=u16::try_from(most).unwrap_or(u16::MAX) {
                let what = || match n {
                    1 => format!("addresses at {point} ({d})"),
                    n => format!("addresses at {point} ({d}, sighting {n})"),
                };
                let differences = |groups: &[Group<AddrExpect>]| groups.iter().map(addr_difference).collect();
                let observed = |x: &Exchange| policy.observed(spec, x, d, point, n);
                for (sel, backend, addr) in rec.entries(&what, observed, differences) {
                    let sighting = (n > 1).then_some(n);
                    out.push(AddrExpect {
                        packet: sel.packet,
                        answered_by: sel.answered_by,
                        backend,
                        sighting,
                        ..addr
                    });
                }
            }
        }
    }
    out
}

pub(super) fn addr_difference(group: &Group<AddrExpect>) -> String {
    let (packets, a) = group;
    let text = if a.absent {
        "not seen".to_string()
    } else {
        let show = |v: Option<std::net::IpAddr>| v.map(|v| v.to_string()).unwrap_or_else(|| "?".into());
        let port = |p: Option<PortExpect>| p.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{}{} > {}{}", show(a.src), port(a.sport), show(a.dst), port(a.dport))
    };
    format!("{} {text}", packets_text(packets))
}

/// Which ports a recording may write as numbers: those the scenario fixes. Every other port
/// the kernel chose (a client's ephemeral port, one MASQUERADE picked) and is recorded by its
/// relation to the probe's own connection, `kept` or `changed`; `changed` is left out where the
/// rules let the kernel pick a port at random (`--random`, `--random-fully`, a port range), since
/// it may pick the same one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPolicy {
    /// Probe ports, frame source ports, server ports, WireGuard ports, NAT target ports.
    pub fixed: BTreeSet<u16>,
    /// Whether some NAT rule picks ports at random.
    pub random: bool,
    /// The port ranges NAT rules translate into (`--to-ports 20000-20010`): a port already in
    /// one may be kept.
    pub ranges: Vec<(u16, u16)>,
    /// Whether the probe's own source port is fixed (a crafted frame's `sport`).
    pub client_fixed: bool,
}

impl PortPolicy {
    /// The port relations `probe` may state in `sc`: none where the kernel chooses the port.
    pub fn of(sc: &Scenario, probe: &ProbeSpec) -> PortPolicy {
        let mut fixed: BTreeSet<u16> = sc.probe.iter().filter_map(|p| p.port).collect();
        fixed.extend(sc.probe.iter().filter_map(|p| p.frame.as_ref()?.sport));
        fixed.extend(sc.server.iter().map(|s| s.port));
        fixed.extend(sc.wireguard.iter().filter_map(|w| w.listen_port));
        fixed.extend(sc.wireguard.iter().flat_map(|w| &w.peers).filter_map(|p| p.endpoint.map(|e| e.port())));
        let (mut random, mut ranges) = (false, vec![]);
        for rules in sc.netns.iter().flat_map(|n| [&n.iptables, &n.nft]).flatten() {
            let nat = nat_ports(rules);
            fixed.extend(nat.ports);
            ranges.extend(nat.ranges);
            random |= nat.random;
        }
        let client_fixed = probe.frame.as_ref().is_some_and(|f| f.sport.is_some());
        PortPolicy { fixed, random, ranges, client_fixed }
    }

    /// What a recording writes for the packet of `x` in direction `d` at `at`.
    fn observed(&self, probe: &ProbeSpec, x: &Exchange, d: Direction, at: &CapturePoint, n: u16) -> AddrExpect {
        let mut e = AddrExpect::new(d, at.clone());
        let Some(p) = x.of(d).sighting(at, n) else {
            e.absent = true;
            return e;
        };
        (e.src, e.dst) = (p.src, p.dst);
        let (sport, dport) = p.ports();
        let (rs, rd) = oriented(reference_ports(probe, x), d);
        // Where the probe's sender put the request on the wire its source port is the
        // reference itself: `kept` there could not fail.
        let own = d == Direction::Request && at.netns == probe.from;
        // The client's side of the connection where source NAT rewrote its address: the port is
        // the NAT's choice, which keeps the port unless that tuple is taken (seen: one hairpin
        // connection in 40 of k8s-service), so neither `kept` nor `changed` would hold for sure.
        let client = x.request.seen.iter().find(|(pt, _)| pt.netns == probe.from).and_then(|(_, p)| p.src);
        let client_here = if d == Direction::Request { p.src } else { p.dst };
        let snatted = client.is_some() && client_here != client;
        e.sport = self.port(sport, rs, d == Direction::Request, own, snatted && d == Direction::Request);
        e.dport = self.port(dport, rd, d == Direction::Reply, false, snatted && d == Direction::Reply);
        e
    }

    /// `got` as a number when the scenario fixes it (and it is not the client's own ephemeral
    /// port that happens to equal one), else as its relation to `reference`.
    /// `snatted`: this is the client's port where source NAT rewrote the client's address.
    fn port(
        &self,
        got: Option<u16>,
        reference: Option<u16>,
        client_side: bool,
        own: bool,
        snatted: bool,
    ) -> Option<PortExpect> {
        let got = got?;
        let ephemeral = client_side && !self.client_fixed;
        if self.fixed.contains(&got) && !(ephemeral && reference == Some(got)) {
            return Some(PortExpect::Is(got));
        }
        let in_range = |p: u16| self.ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&p));
        match reference? {
            _ if snatted && !(in_range(got) && reference.is_some_and(|r| !in_range(r))) => None,
            r if r == got => (!own).then_some(PortExpect::Kept),
            // Picked at random, or from a range the original port is in: it might have stayed.
            r => (!self.random && !in_range(r)).then_some(PortExpect::Changed),
        }
    }
}

/// What the NAT rules of a ruleset say about ports.
#[derive(Debug, Default, PartialEq, Eq)]
struct NatPorts {
    /// The ports they translate to (`--to-destination 10.0.0.2:80`, `--to-ports 8080`, nft
    /// `dnat to 10.0.0.2:80`).
    ports: Vec<u16>,
    /// The ranges they pick from (`--to-ports 20000-20010`, `--to-source 10.0.0.1:1024-2047`).
    ranges: Vec<(u16, u16)>,
    /// Whether some rule picks at random (`--random`, `--random-fully`, nft `random`, `fully-random`).
    random: bool,
}

fn nat_ports(rules: &str) -> NatPorts {
    let mut nat = NatPorts::default();
    let words: Vec<&str> = rules.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        nat.random |= w.contains("random");
        let Some(prev) = i.checked_sub(1).map(|j| words[j]) else { continue };
        let port = match prev {
            "--to-ports" => Some(*w),
            "--to-destination" | "--to-source" | "--to" | "to" => match w.rsplit_once("]:") {
                Some((_, p)) => Some(p),
                None => w.split_once(':').filter(|(_, p)| !p.contains(':')).map(|(_, p)| p),
            },
            _ => None,
        };
        let Some(port) = port.map(|p| p.trim_end_matches([',', ';'])) else { continue };
        match port.split_once('-').map(|(lo, hi)| (lo.parse::<u16>(), hi.parse::<u16>())) {
            Some((Ok(lo), Ok(hi))) => nat.ranges.push((lo, hi)),
            Some(_) => nat.random = true,
            None => nat.ports.extend(port.parse::<u16>()),
        }
    }
    nat
}

/// What makes an old entry of the file this entry's counterpart in [`super::rewrite`]: its
/// place (direction and capture point), its packets, its backend.
pub(super) fn key(a: &AddrExpect) -> (String, String, Option<&'static str>) {
    let nth = a.sighting.map(|n| format!(" #{n}")).unwrap_or_default();
    let place = format!("{} {}{nth}", a.direction, a.at);
    (place, format!("{:?} {:?}", a.packet, a.answered_by), a.backend.map(Backend::name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_rules_fix_ports_or_let_the_kernel_pick() {
        let nat = nat_ports(
            "-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.168.0.2:80\n\
             -A POSTROUTING -s 192.168.0.0/20 ! -o docker0 -j MASQUERADE\n\
             -A OUTPUT -p tcp -j REDIRECT --to-ports 3128\n\
             -A POSTROUTING -p tcp -j SNAT --to-source 10.0.0.1:20000-20010\n",
        );
        assert_eq!(nat, NatPorts { ports: vec![80, 3128], ranges: vec![(20000, 20010)], random: false });
        assert!(nat_ports("-A POSTROUTING -j MASQUERADE --random-fully").random);
        let nft = nat_ports(
            "chain pre { type nat hook prerouting priority dstnat; tcp dport 8080 dnat ip to 192.168.0.2:80; }",
        );
        assert_eq!(nft.ports, [80]);
        assert!(nat_ports("ip saddr 10.0.0.0/8 masquerade fully-random").random);
        assert_eq!(nat_ports("-j DNAT --to-destination 10.0.0.2").ports, Vec::<u16>::new());
    }

    #[test]
    fn ports_are_numbers_where_the_scenario_fixes_them_and_relations_elsewhere() {
        let policy =
            PortPolicy { fixed: [80, 8080].into(), random: false, ranges: vec![(20000, 20010)], client_fixed: false };
        // The service side: the port the probe sent to, or the one DNAT fixed.
        assert_eq!(policy.port(Some(80), Some(8080), false, false, false), Some(PortExpect::Is(80)));
        // The client side: its own port, kept or translated; never the number.
        assert_eq!(policy.port(Some(40312), Some(40312), true, false, false), Some(PortExpect::Kept));
        assert_eq!(policy.port(Some(20003), Some(40312), true, false, false), Some(PortExpect::Changed));
        // Where it is the sender's own port, `kept` could not fail: nothing.
        assert_eq!(policy.port(Some(40312), Some(40312), true, true, false), None);
        // An ephemeral port that happens to equal a fixed one is still the client's port.
        assert_eq!(policy.port(Some(8080), Some(8080), true, false, false), Some(PortExpect::Kept));
        // A port that may have stayed by chance is not said to change.
        assert_eq!(policy.port(Some(20001), Some(20005), true, false, false), None);
        let random = PortPolicy { random: true, ..policy.clone() };
        assert_eq!(random.port(Some(1024), Some(40312), true, false, false), None);
        // Where source NAT rewrote the client's address the port is the NAT's to choose: kept
        // as a rule, changed when the tuple is taken; only a forced move into a range is sure.
        assert_eq!(policy.port(Some(40312), Some(40312), true, false, true), None);
        assert_eq!(policy.port(Some(40313), Some(40312), true, false, true), None);
        assert_eq!(policy.port(Some(20003), Some(40312), true, false, true), Some(PortExpect::Changed));
    }
}
