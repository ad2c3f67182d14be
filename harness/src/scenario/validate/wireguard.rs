//! What only WireGuard entries can get wrong.

use std::collections::BTreeMap;

use super::{Problems, list, network, sane};
use crate::scenario::Scenario;

/// What only WireGuard entries can get wrong (their netns, names, addresses and MTU are
/// checked with the other interfaces): listen ports, peers, allowed IPs.
pub(super) fn check(sc: &Scenario, ps: &mut Problems) {
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for (i, w) in sc.wireguard.iter().enumerate() {
        ids.entry(w.id()).or_insert(i);
    }
    for (i, w) in sc.wireguard.iter().enumerate() {
        if let Some(port) = w.listen_port {
            if port == 0 {
                ps.add(
                    format!("wireguard[{i}].listen_port"),
                    "port 0 is not a port to listen on: leave listen_port out and WireGuard picks one",
                );
            } else if let Some(j) =
                sc.wireguard[..i].iter().position(|o| o.netns == w.netns && o.listen_port == Some(port))
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
                    let have = if sc.wireguard.len() < 2 {
                        "there is no other [[wireguard]] entry".to_string()
                    } else {
                        format!("have: {}", list(ids.keys().filter(|id| **id != w.id())))
                    };
                    let form = if p.peer.contains('/') { "" } else { " (a peer is named netns/iface, e.g. peer2/wg0)" };
                    ps.add(format!("{item}.peer"), format!("`{}` is no [[wireguard]] entry{form} ({have})", p.peer));
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
