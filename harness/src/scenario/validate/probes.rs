//! Probes and their expectations.

use std::collections::BTreeMap;

use super::{MAX_COUNT, MAX_TIMEOUT_MS, Problems, Topology, list};
use crate::cidr::Cidr;
use crate::firewall::Family;
use crate::scenario::{Packets, ProbeKind, Scenario};

pub(super) fn check(sc: &Scenario, t: &Topology<'_>, ps: &mut Problems) {
    // Probes and their expectations.
    let mut probes: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, p) in sc.probe.iter().enumerate() {
        let item = format!("probe[{i}].name");
        if p.name.trim().is_empty() {
            ps.add(&item, "the probe's name is empty");
        } else if let Some(j) = probes.get(p.name.as_str()) {
            ps.add(&item, format!("probe `{}` is declared twice (first as probe[{j}])", p.name));
        } else {
            probes.insert(&p.name, i);
        }
        if let crate::scenario::handle::Target::Iface(at) = &p.to {
            t.known(format!("probe[{i}].to"), &at.netns, ps);
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
        for server in p.answered_by.keys() {
            if !sc.server.iter().any(|s| &s.netns == server) {
                ps.add(format!("probe[{i}].answered_by.{server}"), format!("no [[server]] runs in netns `{server}`"));
            }
        }
        for (j, c) in p.conntrack.iter().enumerate() {
            t.known(format!("probe[{i}].conntrack[{j}].netns"), &c.netns, ps);
            // An ICMP of the other family never has an entry of this probe's flow.
            if let (Some(family), Some(to)) = (c.proto.and_then(|p| p.family()), p.to.addr())
                && family != Family::of(to)
            {
                let own = crate::probe::prober(p.kind).conntrack_proto(to.is_ipv6());
                let only = if family == Family::V6 { "IPv6" } else { "IPv4" };
                ps.add(
                    format!("probe[{i}].conntrack[{j}].proto"),
                    format!(
                        "`{}` is carried over {only} only and this probe sends to {to}: its entries are `{own}`",
                        c.proto.unwrap_or(own)
                    ),
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
        let conditions_ok = |item: String, packet: Option<Packets>, answered_by: Option<&String>, ps: &mut Problems| {
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
                && !sc.server.iter().any(|s| &s.netns == server)
            {
                ps.add(format!("{item}.answered_by"), format!("no [[server]] runs in netns `{server}`"));
            }
        };
        for (j, e) in p.path.iter().enumerate() {
            t.known(format!("probe[{i}].path[{j}].netns"), &e.netns, ps);
            if e.exact.is_none() && e.includes.is_none() && e.never.is_empty() && e.last.is_none() {
                ps.add(format!("probe[{i}].path[{j}]"), "asserts nothing: give exact, includes, never or last");
            }
            conditions_ok(format!("probe[{i}].path[{j}]"), e.packet, e.answered_by.as_ref(), ps);
        }
        for (j, a) in p.addr.iter().enumerate() {
            let item = format!("probe[{i}].addr[{j}].at");
            if !t.netns.contains_key(a.at.netns.as_str()) {
                t.known(item, &a.at.netns, ps);
            } else if let Some(peer) = crate::scenario::handle::peer_of(&a.at) {
                t.known(item, &peer.netns, ps);
            } else if !t.ifaces.contains_key(&(a.at.netns.as_str(), a.at.iface.as_str()))
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
            if !a.asserts_something() {
                ps.add(
                    format!("probe[{i}].addr[{j}]"),
                    "asserts nothing: give src, dst, sport, dport, ttl, mac_src, mac_dst or absent",
                );
            }
            conditions_ok(format!("probe[{i}].addr[{j}]"), a.packet, a.answered_by.as_ref(), ps);
        }
    }
}
