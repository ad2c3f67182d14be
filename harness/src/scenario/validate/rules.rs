//! What goes into a netns besides interfaces: servers, native nft rulesets, the user's steps.

use super::{Problems, Topology};
use crate::firewall::Backend;
use crate::scenario::{ProbeKind, Scenario};

pub(super) fn check(sc: &Scenario, t: &Topology<'_>, ps: &mut Problems) {
    for (i, srv) in sc.server.iter().enumerate() {
        t.known(format!("server[{i}].netns"), &srv.netns, ps);
        if !matches!(srv.kind, ProbeKind::Tcp | ProbeKind::Udp) {
            ps.add(format!("server[{i}].kind"), "a server is tcp or udp");
        }
        if srv.port == 0 {
            ps.add(format!("server[{i}].port"), "port 0 is not a port to listen on");
        }
    }

    for (i, n) in sc.netns.iter().enumerate() {
        if n.nft.is_some() && sc.backends.iter().any(|b| *b != Backend::Nft) {
            ps.add(
                format!("netns[{i}].nft"),
                "a native nft ruleset is traced through nf_tables trace events: give the scenario backends = [\"nft\"]",
            );
        }
    }

    for (item, message) in crate::lab::step::problems(sc) {
        ps.add(item, message);
    }
}
