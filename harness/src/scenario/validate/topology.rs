//! The scenario as a whole, its namespaces and its interfaces (bridges, veth ends, WireGuard).

use std::collections::BTreeMap;

use super::{
    IfaceDecl, MAX_BRIDGES, MAX_NETNS, MAX_PROBES, MAX_ROUTES, MAX_SERVERS, MAX_STEPS, MAX_VETHS, MAX_WIREGUARD,
    Problems, Topology, known, list, names, sane,
};
use crate::scenario::Scenario;
use crate::scenario::sysctl::{self, SysctlKey};

/// The scenario's own fields: its name, backends and that it has probes.
pub(super) fn scenario(sc: &Scenario, ps: &mut Problems) {
    if let Some(why) = names::label("scenario", &sc.name) {
        ps.add("name", why);
    }
    if sc.probe.is_empty() {
        ps.add(
            "probe",
            "the scenario has no [[probe]]: it would pass asserting nothing (add a probe and what it must show)",
        );
    }
    for (item, have, max) in [
        ("netns", sc.netns.len(), MAX_NETNS),
        ("bridge", sc.bridge.len(), MAX_BRIDGES),
        ("veth", sc.veth.len(), MAX_VETHS),
        ("wireguard", sc.wireguard.len(), MAX_WIREGUARD),
        ("route", sc.route.len(), MAX_ROUTES),
        ("server", sc.server.len(), MAX_SERVERS),
        ("step", sc.step.len(), MAX_STEPS),
        ("probe", sc.probe.len(), MAX_PROBES),
    ] {
        if have > max {
            ps.add(
                item,
                format!(
                    "{have} [[{item}]] entries: at most {max} fit in one lab (each holds kernel objects and file descriptors); split the scenario"
                ),
            );
        }
    }
    if sc.backends.is_empty() {
        ps.add("backends", "names no backend: give legacy, nft or both, or leave it out to run under legacy");
    }
    for (i, b) in sc.backends.iter().enumerate() {
        if sc.backends[..i].contains(b) {
            ps.add(format!("backends[{i}]"), format!("backend {} is listed twice", b.name()));
        }
    }
}

/// Namespaces and interfaces: names, uniqueness, MACs, MTUs, addresses; what the later checks
/// look names up in.
pub(super) fn declared<'a>(sc: &'a Scenario, ps: &mut Problems) -> Topology<'a> {
    // Namespaces.
    let mut netns: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, n) in sc.netns.iter().enumerate() {
        let item = format!("netns[{i}].name");
        if let Some(why) = names::netns(&n.name) {
            ps.add(&item, why);
        }
        for (key, value) in &n.sysctls {
            let item = format!("netns[{i}].sysctls.{}", crate::scenario::file::key_item(key));
            let problem = SysctlKey::parse(key).err().or_else(|| sysctl::value_problem(value));
            if let Some(why) = problem {
                ps.add(item, why);
            }
        }
        if let Some(j) = netns.get(n.name.as_str()) {
            ps.add(&item, format!("netns `{}` is declared twice (first as netns[{j}])", n.name));
        } else {
            netns.insert(&n.name, i);
        }
    }

    // Interfaces: bridges, then veth ends.
    let mut decls: Vec<IfaceDecl<'_>> = vec![];
    for (i, b) in sc.bridge.iter().enumerate() {
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
    for (i, v) in sc.veth.iter().enumerate() {
        for (side, e) in [("a", &v.a), ("b", &v.b)] {
            if e.hairpin && e.master.is_none() {
                ps.add(format!("veth[{i}].{side}.hairpin"), "hairpin is a bridge port setting: give this end a master");
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
    for (i, w) in sc.wireguard.iter().enumerate() {
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
    let mut ifaces: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for d in &decls {
        known(&netns, format!("{}.netns", d.item), d.netns, ps);
        let item = format!("{}.{}", d.item, d.name_key);
        if let Some(why) = names::iface(d.name) {
            ps.add(&item, why);
        }
        if let Some(first) = ifaces.get(&(d.netns, d.name)) {
            ps.add(&item, format!("interface `{}` is declared twice in netns {} (first as {first})", d.name, d.netns));
        } else {
            ifaces.insert((d.netns, d.name), d.item.clone());
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
            ps.add(format!("{}.mtu", d.item), format!("mtu {mtu} is outside 68 to 65535, which the kernel accepts"));
        }
        for (k, a) in d.addresses.iter().enumerate() {
            if !sane(a) {
                ps.add(format!("{}.addresses[{k}]", d.item), format!("prefix length /{} is too long", a.prefix));
            } else if d.addresses[..k].contains(a) {
                ps.add(format!("{}.addresses[{k}]", d.item), format!("address {a} is given twice"));
            }
        }
    }
    Topology { netns, decls, ifaces }
}

/// Every bridge port's master is a bridge of its netns.
pub(super) fn masters(t: &Topology<'_>, ps: &mut Problems) {
    for d in &t.decls {
        if let Some(m) = d.master
            && t.netns.contains_key(d.netns)
            && !t.decls.iter().any(|b| b.bridge && b.netns == d.netns && b.name == m)
        {
            let bridges: Vec<&str> =
                t.decls.iter().filter(|b| b.bridge && b.netns == d.netns).map(|b| b.name).collect();
            let have = if bridges.is_empty() {
                format!("netns {} has no bridge", d.netns)
            } else {
                format!("its bridges: {}", list(bridges))
            };
            ps.add(format!("{}.master", d.item), format!("`{m}` is no bridge in netns {} ({have})", d.netns));
        }
    }
}
