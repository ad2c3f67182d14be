//! Routes, in the order the lab adds them.

use super::{Problems, Topology, list, network, sane};
use crate::cidr::Cidr;
use crate::scenario::{RouteDst, RouteSpec, Scenario, is_link_local};

pub(super) fn check(sc: &Scenario, t: &Topology<'_>, ps: &mut Problems) {
    // Routes, in the order the lab adds them; (netns, family, prefix) -> the first route there.
    let mut seen = std::collections::HashMap::new();
    for (i, r) in sc.route.iter().enumerate() {
        let ns_ok = t.known(format!("route[{i}].netns"), &r.netns, ps);
        if let Some(d) = &r.dev
            && ns_ok
            && !t.ifaces.contains_key(&(r.netns.as_str(), d.as_str()))
            && !t.orphan_named(d)
        {
            ps.add(
                format!("route[{i}].dev"),
                format!("netns {} has no interface `{d}` ({})", r.netns, t.names_of(&r.netns)),
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
        let to = match r.to {
            RouteDst::Default => "default".to_string(),
            RouteDst::Prefix(c) => c.to_string(),
        };
        if let Some(j) = seen.get(&(r.netns.as_str(), r.is_ipv6(), r.prefix())).copied().or_else(|| {
            seen.insert((r.netns.as_str(), r.is_ipv6(), r.prefix()), i);
            None
        }) {
            ps.add(format!("route[{i}].to"), format!("netns {} already has a route to {to} (route[{j}])", r.netns));
        } else if let Some((iface, addr)) = connected_v4(t, r) {
            // The kernel added that prefix's route with the address, at the metric a route gets
            // (0): adding it again is EEXIST. (IPv6 prefix routes have metric 256, ours 1024.)
            ps.add(
                format!("route[{i}].to"),
                format!(
                    "netns {} already has a route to {to}: the kernel adds it for address {addr} of interface {iface}, and refuses a second one (leave this route out)",
                    r.netns
                ),
            );
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
            let mut prefixes: Vec<Cidr> = t
                .ifaces_of(&r.netns)
                .iter()
                .filter(|d| on_dev(d.name))
                .flat_map(|d| d.addresses.iter().copied())
                .filter(sane)
                .collect();
            prefixes.extend(sc.route[..i].iter().filter_map(|o| match (o.to, o.via, &o.dev) {
                (RouteDst::Prefix(c), None, Some(d)) if o.netns == r.netns && on_dev(d) && sane(&c) => Some(c),
                _ => None,
            }));
            if !prefixes.iter().any(|c| c.contains(via)) && !t.orphan_addr(&|c| sane(c) && c.contains(via)) {
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
}

/// The interface and address whose IPv4 prefix route is `r`'s destination, if one is: the
/// kernel adds `PREFIX dev IFACE proto kernel` for each address shorter than /32.
fn connected_v4<'a>(t: &Topology<'a>, r: &RouteSpec) -> Option<(&'a str, Cidr)> {
    let RouteDst::Prefix(c) = r.to else { return None };
    if !c.addr.is_ipv4() || c.prefix >= 32 || !sane(&c) {
        return None;
    }
    t.ifaces_of(&r.netns).into_iter().find_map(|d| {
        d.addresses
            .iter()
            .find(|a| a.addr.is_ipv4() && a.prefix == c.prefix && sane(a) && network(**a) == c.addr)
            .map(|a| (d.name, *a))
    })
}
