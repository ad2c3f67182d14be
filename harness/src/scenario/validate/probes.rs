//! Probes, and the expectations of each kind (their checks are in `scenario/expect/`).

use std::collections::BTreeMap;

use super::{MAX_COUNT, MAX_TIMEOUT_MS, Problems, Topology, list, names};
use crate::cidr::Cidr;
use crate::scenario::{CapturePoint, ProbeKind, Scenario, expect};

pub(super) fn check(sc: &Scenario, t: &Topology<'_>, ps: &mut Problems) {
    // Probes and their expectations.
    let mut probes: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, p) in sc.probe.iter().enumerate() {
        let item = format!("probe[{i}].name");
        if let Some(why) = names::label("probe", &p.name) {
            ps.add(&item, why);
        } else if let Some(j) = probes.get(p.name.as_str()) {
            ps.add(&item, format!("probe `{}` is declared twice (first as probe[{j}])", p.name));
        } else {
            probes.insert(&p.name, i);
        }
        if let crate::scenario::handle::Target::Iface(at) = &p.to {
            t.known(format!("probe[{i}].to"), &at.netns, ps);
            point_names(format!("probe[{i}].to"), at, ps);
        }
        // Steps may give any netns its addresses: that one has them is checked after them.
        let to = p.to.addr().filter(|_| sc.step.is_empty());
        if let Some(to) = to
            && t.known(format!("probe[{i}].from"), &p.from, ps)
            && !to.is_loopback()
        {
            let family = if to.is_ipv4() { "IPv4" } else { "IPv6" };
            let own = t.ifaces_of(&p.from);
            let fits = |a: &Cidr| a.addr.is_ipv4() == to.is_ipv4();
            if !own.iter().flat_map(|d| d.addresses).any(fits) && !t.orphan_addr(&fits) {
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
            ps.add(format!("probe[{i}].port"), format!("a {:?} probe needs a destination port", p.kind).to_lowercase());
        }
        if !needs_port && p.port.is_some() {
            ps.add(format!("probe[{i}].port"), "an icmp probe has no port");
        }
        if p.frame.is_some() && p.kind != ProbeKind::Frame {
            ps.add(format!("probe[{i}].frame"), "only kind = \"frame\" takes a [probe.frame] table");
        }
        for (below, message) in prober.problems(sc, p) {
            let item = if below.is_empty() { format!("probe[{i}]") } else { format!("probe[{i}].{below}") };
            ps.add(item, message);
        }
        expect::answer::problems(sc, i, p, ps);
        expect::conntrack::problems(t, i, p, ps);
        expect::drop::problems(t, sc, i, p, ps);
        if p.count == 0 || p.count > MAX_COUNT {
            ps.add(format!("probe[{i}].count"), format!("count {} is outside 1 to {MAX_COUNT}", p.count));
        }
        if p.timeout_ms == 0 || p.timeout_ms > MAX_TIMEOUT_MS {
            ps.add(
                format!("probe[{i}].timeout_ms"),
                format!("timeout_ms {} is outside 1 to {MAX_TIMEOUT_MS} (one minute)", p.timeout_ms),
            );
        }
        expect::path::problems(sc, t, i, p, ps);
        for (j, a) in p.addr.iter().enumerate() {
            point_names(format!("probe[{i}].addr[{j}].at"), &a.at, ps);
        }
        expect::addr::problems(sc, t, i, p, ps);
    }
}

/// The interface names of a capture point or an `@netns/iface` target (and of the veth end a
/// `peer:` handle names) are names the kernel could have: with steps, an interface the scenario
/// does not declare is looked up after them, so its name is checked here.
fn point_names(item: String, at: &CapturePoint, ps: &mut Problems) {
    let peer = crate::scenario::handle::peer_of(at);
    let iface = if peer.is_some() { None } else { Some(at.iface.as_str()) };
    for name in iface.into_iter().chain(peer.as_ref().map(|p| p.iface.as_str())) {
        if let Some(why) = names::iface(name) {
            ps.add(item.clone(), why);
        }
    }
}
