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
        // The second bind would fail mid-run (EADDRINUSE): say so where the file says it.
        let kind = format!("{:?}", srv.kind).to_lowercase();
        if let Some(j) =
            sc.server[..i].iter().position(|o| o.netns == srv.netns && o.kind == srv.kind && o.port == srv.port)
        {
            ps.add(
                format!("server[{i}].port"),
                format!("netns {} already has server[{j}] on {kind} port {}: one server per port", srv.netns, srv.port),
            );
        } else if let Some(j) = sc
            .wireguard
            .iter()
            .position(|w| srv.kind == ProbeKind::Udp && w.netns == srv.netns && w.listen_port == Some(srv.port))
        {
            ps.add(
                format!("server[{i}].port"),
                format!(
                    "netns {} has wireguard[{j}] listening on udp port {}: give the server another port",
                    srv.netns, srv.port
                ),
            );
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
