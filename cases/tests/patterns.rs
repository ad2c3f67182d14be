//! `never` patterns that cannot be vacuous: a glob inside a name part matches kube-proxy-like
//! hashed chains as a group, and `type:nat` matches a native nft nat chain whatever its table
//! is called (Docker 29's `docker-bridges`).

use netpath::scenario::{Direction, Packets, PathExpect};
use netpath::verdict::expect::FailureKind::PathNever;
use netpath::{Backend, Scenario};
use netpath_cases::{assert_passes, load, run, want};
use rstest::rstest;

fn never(direction: Direction, netns: &str, packet: Option<u16>, patterns: &[&str]) -> PathExpect {
    let mut e = PathExpect::new(direction, netns);
    e.packet = packet.map(Packets::One);
    e.never = patterns.iter().map(|p| p.parse().unwrap()).collect();
    e
}

/// k8s-service's ClusterIP probe, a few connections, its path entries replaced by `paths`.
fn cluster_ip(paths: Vec<PathExpect>) -> Scenario {
    let mut sc = load("k8s-service");
    sc.probe.truncate(1);
    let p = &mut sc.probe[0];
    p.count = 4;
    p.answered_by = Default::default();
    p.addr.retain(|a| a.answered_by.is_none());
    p.path = paths;
    sc
}

/// Every connection's SYN visits one of the `Test-SEP-<n>` chains: `never` with a glob in the
/// chain part fails on it (a glob taken literally would pass); the replies, de-NATed by
/// conntrack, never meet a nat chain and pass the same pattern.
#[rstest]
fn a_glob_inside_a_chain_name_matches_the_chains_it_names(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let reply = never(Direction::Reply, "node1", None, &["nat:Test-SEP-*", "nat:Test-SEP-?"]);
    assert_passes(&cluster_ip(vec![reply]), backend);
    let request = never(Direction::Request, "node1", None, &["nat:Test-SEP-*", "nat:Test-S?P-?"]);
    let o = run(&cluster_ip(vec![request]), backend);
    let f = &o.probes[0].failures;
    want(PathNever).packet(1).request().netns("node1").expected("nat:Test-SEP-*").find(f);
    let hit = want(PathNever).packet(1).request().netns("node1").expected("nat:Test-S?P-?").find(f);
    assert!(hit.unexpected.iter().all(|h| h.chain().starts_with("Test-SEP-")), "{hit:#?}");
}

/// docker-masquerade-native-nft with its nat chain where Docker 29 puts it: table
/// `docker-bridges`, chain `nat-POSTROUTING`.
fn docker_bridges(paths: Vec<PathExpect>) -> Scenario {
    let mut sc = load("docker-masquerade-native-nft");
    let host = sc.netns.iter_mut().find(|n| n.name == "host").unwrap();
    let nft = host.nft.as_mut().unwrap();
    *nft = nft
        .replace("table ip nat {", "table ip docker-bridges {")
        .replace("chain postrouting {", "chain nat-POSTROUTING {");
    sc.probe[0].path = paths;
    sc
}

/// The first packet is masqueraded: `never = ["type:nat"]` fails on it naming the chain, and
/// so does `type:nat:hook:postrouting`; the second packet (conntrack: no nat chain) passes.
#[test]
fn type_nat_matches_a_nat_chain_in_a_table_not_called_nat() {
    let later = never(Direction::Request, "host", Some(2), &["type:nat", "type:nat:hook:postrouting"]);
    assert_passes(&docker_bridges(vec![later]), Backend::Nft);
    // No nat chain hooks prerouting here: a pattern for one would pass whatever happened, and
    // is refused before the run.
    let vacuous = never(Direction::Request, "host", Some(1), &["type:nat:hook:prerouting"]);
    let refused = docker_bridges(vec![vacuous]).validate().join("\n");
    assert!(
        refused.contains("never[0]: `type:nat:hook:prerouting` matches no chain of netns host (its base chains: docker-bridges:nat-POSTROUTING type nat hook postrouting"),
        "{refused}"
    );
    let first = never(Direction::Request, "host", Some(1), &["type:nat", "type:nat:hook:postrouting"]);
    let o = run(&docker_bridges(vec![first]), Backend::Nft);
    let f = &o.probes[0].failures;
    let hit = want(PathNever)
        .packet(1)
        .request()
        .netns("host")
        .expected("type:nat")
        .unexpected("docker-bridges:nat-POSTROUTING:rule:1")
        .find(f);
    assert_eq!(hit.unexpected.len(), 1, "{hit:#?}");
    want(PathNever).packet(1).expected("type:nat:hook:postrouting").find(f);
}

/// The load-time check that a `never` pattern names a table the netns has rejects none of the
/// bundled files (their `never = ["nat"]` are all in netns with a nat table).
#[test]
fn every_bundled_scenario_names_tables_it_has() {
    let mut errors = vec![];
    for entry in std::fs::read_dir(netpath_cases::scenarios_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml")
            && let Err(e) = Scenario::load(&path)
        {
            errors.push(e.to_string());
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}
