//! Seed 002 §5 and §6: Docker made by hand (a bridge, a netns on a veth, ip_forward and two nat
//! rules) on one node, then two such nodes routing to each other's containers (flannel
//! host-gw). These tests flip ip_forward, remove a rule or a route, and check the scenario
//! files' key expectations fail, naming the hop.

use netpath::Backend;
use netpath::scenario::RouteDst;
use netpath_cases::{load, named, named_saying};
use rstest::rstest;

fn set_forward(sc: &mut netpath::Scenario, netns: &str, on: bool) {
    let ns = sc.netns_mut(netns).unwrap_or_else(|| panic!("no netns {netns}"));
    let old = ns.sysctls.insert("net.ipv4.ip_forward".into(), if on { "1" } else { "0" }.into());
    assert_eq!(old.as_deref(), Some(if on { "0" } else { "1" }), "ip_forward was not flipped");
}

fn without_rule(sc: &mut netpath::Scenario, netns: &str, rule: &str) {
    let ns = sc.netns_mut(netns).unwrap_or_else(|| panic!("no netns {netns}"));
    let rules = ns.iptables.take().unwrap();
    let edited: String = rules.lines().filter(|l| *l != rule).map(|l| format!("{l}\n")).collect();
    assert_ne!(rules, edited, "`{rule}` not found");
    ns.iptables = Some(edited);
}

/// handmade-docker with ip_forward=0: the request dies at the bridge, nothing leaves ens3.
#[rstest]
fn handmade_docker_without_ip_forward_nothing_leaves(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("handmade-docker");
    set_forward(&mut sc, "node", false);
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    named(f, "packet 1: a reply");
    named_saying(
        f,
        "path of packet 1 request in netns node (exact)",
        &["    eb:filter:INPUT", "  - nat:POSTROUTING:rule:2"],
    );
    let ens3 = named(f, "addresses of packet 1 request at node/ens3");
    assert!(ens3.detail.ends_with("observed not seen"), "{}", ens3.detail);
    // It did reach mydocker.
    assert!(!f.iter().any(|f| f.what == "addresses of packet 1 request at node/mydocker"), "{f:#?}");
}

/// handmade-docker without MASQUERADE: the container's own address goes out on ens3, and the
/// gateway, with no route back to 10.10.14.0/24, cannot answer. The nat chains vanish from the
/// path altogether, not only rule 2: MASQUERADE was the only rule that needed conntrack, and this
/// kernel turns conntrack on in a netns only for rules that need it; without a conntrack entry
/// the nat hooks never run the nat table (its counters stay at 0).
#[rstest]
fn handmade_docker_without_masquerade_the_container_address_leaves(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("handmade-docker");
    without_rule(&mut sc, "node", "-A POSTROUTING -s 10.10.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE");
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    named_saying(f, "addresses of packet 1 request at node/ens3", &["observed 10.10.14.2 > 192.168.122.1 ttl 63"]);
    let path = named_saying(
        f,
        "path of packet 1 request in netns node (exact)",
        &["  - nat:PREROUTING:policy:1", "  - nat:POSTROUTING:rule:2"],
    );
    assert!(!path.detail.contains("  + nat"), "{}", path.detail);
    named(f, "packet 1: a reply");
}

/// handmade-docker-no-forward with ip_forward=1: the request leaves, gets answered, and the
/// "last hook", "no reply" and "absent on ens3" expectations all fail.
#[rstest]
fn handmade_docker_no_forward_with_ip_forward_the_request_leaves(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("handmade-docker-no-forward");
    set_forward(&mut sc, "node", true);
    let o = netpath_cases::run_or_return!(&sc, backend);
    assert_eq!(o.probes[0].name, "ns1-to-mydocker");
    assert!(o.probes[0].failures.is_empty(), "{:#?}", o.probes[0].failures);
    let f = &o.probes[1].failures;
    named(f, "packet 1: no reply (the request is dropped)");
    let last = named(f, "path of packet 1 request in netns node (last hook)");
    assert!(
        last.detail.starts_with("expected the packet's last hook to be eb:filter:INPUT, it was nat:POSTROUTING:rule:2"),
        "{}",
        last.detail
    );
    named_saying(
        f,
        "addresses of packet 1 request at node/ens3",
        &["expected not seen, observed 192.168.122.197 > 192.168.122.1"],
    );
}

/// host-gw without node1's RETURN rule: container traffic to the other node is masqueraded to
/// 192.168.122.183 (the reply still comes back, translated); the address expectation on 183's
/// ens3 names it.
#[rstest]
fn host_gw_without_return_container_traffic_is_masqueraded(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("host-gw");
    without_rule(&mut sc, "node1", "-A POSTROUTING -s 10.10.0.0/16 -d 10.10.0.0/16 -j RETURN");
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    assert!(!f.iter().any(|f| f.what.contains("a reply")), "{f:#?}");
    named_saying(f, "addresses of packet 1 request at node1/ens3", &["observed 192.168.122.183 > 10.10.14.2 ttl 63"]);
    named_saying(
        f,
        "addresses of packet 1 request at container2/eth0",
        &["observed 192.168.122.183 > 10.10.14.2 ttl 62"],
    );
    // MASQUERADE is rule 1 now: the RETURN's fall to the policy is what is missing.
    named_saying(f, "path of packet 1 request in netns node1 (exact)", &["  - nat:POSTROUTING:policy:3"]);
}

/// host-gw without node1's route to 10.10.14.0/24 via 197: the request goes to the default
/// gateway instead. The next-hop MAC on 183's ens3 says so, the switch passes the frame up to
/// its own stack instead of bridging it to 197, and container2 never sees it.
#[rstest]
fn host_gw_without_the_route_the_next_hop_is_the_gateway(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("host-gw");
    let before = sc.route.len();
    sc.route.retain(|r| !(r.netns == "node1" && r.to == RouteDst::Prefix("10.10.14.0/24".parse().unwrap())));
    assert_eq!(sc.route.len(), before - 1, "the host-gw route was not found");
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    named(f, "packet 1: a reply");
    named_saying(
        f,
        "addresses of packet 1 request at node1/ens3",
        &["observed 10.10.15.2 > 10.10.14.2 ttl 63 mac 52:54:00:1e:45:e1 > fe:54:00:1e:45:e1"],
    );
    named_saying(
        f,
        "path of packet 1 request in netns switch (exact)",
        &["  - eb:filter:FORWARD", "  + eb:filter:INPUT"],
    );
    let c2 = named(f, "addresses of packet 1 request at container2/eth0");
    assert!(c2.detail.ends_with("observed not seen"), "{}", c2.detail);
    // The internet probe does not use that route.
    assert!(o.probes[1].failures.is_empty(), "{:#?}", o.probes[1].failures);
}
