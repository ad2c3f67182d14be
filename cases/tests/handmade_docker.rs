//! Seed 002 §5 and §6: Docker made by hand (a bridge, a netns on a veth, ip_forward and two nat
//! rules) on one node, then two such nodes routing to each other's containers (flannel
//! host-gw). These tests flip ip_forward, remove a rule or a route, and check the scenario
//! files' key expectations fail, naming the hop.

use netpath::Backend;
use netpath::scenario::RouteDst;
use netpath::verdict::expect::FailureKind::{self, *};
use netpath_cases::{edit_iptables, load, want, want_any, without_lines};
use rstest::rstest;

fn set_forward(sc: &mut netpath::Scenario, netns: &str, on: bool) {
    let ns = sc.netns_mut(netns).unwrap_or_else(|| panic!("no netns {netns}"));
    let old = ns.sysctls.insert("net.ipv4.ip_forward".into(), if on { "1" } else { "0" }.into());
    assert_eq!(old.as_deref(), Some(if on { "0" } else { "1" }), "ip_forward was not flipped");
}

fn without_rule(sc: &mut netpath::Scenario, netns: &str, rule: &str) {
    edit_iptables(sc, netns, |r| without_lines(r, rule));
}

/// handmade-docker with ip_forward=0: the request dies at the bridge, nothing leaves ens3.
#[rstest]
fn handmade_docker_without_ip_forward_nothing_leaves(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("handmade-docker");
    set_forward(&mut sc, "node", false);
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    want(NoReply).packet(1).find(f);
    want(PathExact)
        .packet(1)
        .request()
        .netns("node")
        .observing("eb:filter:INPUT")
        .missing("nat:POSTROUTING:rule:2")
        .find(f);
    want(NotSeen).packet(1).request().at("node/ens3").find(f);
    // It did reach mydocker.
    want_any(&FailureKind::ADDRESS).packet(1).request().at("node/mydocker").assert_none(f);
}

/// handmade-docker without MASQUERADE: the container's own address goes out on ens3 (the gateway
/// routes 10.10.14.0/24 back through the node, for gateway-to-ns1, so it still answers; that
/// probe's `never` names the removed rule, so the twin leaves it out). The nat chains vanish from the
/// path altogether, not only rule 2: MASQUERADE was the only rule that needed conntrack, and this
/// kernel turns conntrack on in a netns only for rules that need it; without a conntrack entry
/// the nat hooks never run the nat table (its counters stay at 0).
#[rstest]
fn handmade_docker_without_masquerade_the_container_address_leaves(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("handmade-docker");
    without_rule(&mut sc, "node", "-A POSTROUTING -s 10.10.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE");
    sc.probe.retain(|p| p.name != "gateway-to-ns1");
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    want(Header)
        .packet(1)
        .request()
        .at("node/ens3")
        .observed("10.10.14.2 > 192.168.122.1 ttl 63 mac 52:54:00:1e:45:ef > fe:54:00:1e:45:e1")
        .find(f);
    let path = want(PathExact)
        .packet(1)
        .request()
        .netns("node")
        .missing("nat:PREROUTING:policy:1")
        .missing("nat:POSTROUTING:rule:2")
        .find(f);
    assert!(!path.unexpected.iter().any(|h| h.to_string().starts_with("nat:")), "{path:#?}");
    assert!(!want(NoReply).packet(1).any(f), "{f:#?}");
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
    want(UnexpectedReply).packet(1).find(f);
    want(PathLast)
        .packet(1)
        .request()
        .netns("node")
        .missing("eb:filter:INPUT")
        .unexpected("nat:POSTROUTING:rule:2")
        .find(f);
    want(Seen).packet(1).request().at("node/ens3").observed("192.168.122.197 > 192.168.122.1").find(f);
    // The kernel dropped nothing: the [[probe.drop]] entry (IP_INADDRERRORS in node) breaks.
    want(NotDropped).packet(1).request().netns("node").expected("IP_INADDRERRORS in node at ip_error").find(f);
}

/// handmade-docker-no-forward with forwarding on and node's FORWARD policy DROP instead: the
/// request still dies in node, and the kernel says why differently: NETFILTER_DROP at the
/// FORWARD hook, not IP_INADDRERRORS at ip_error.
#[rstest]
fn handmade_docker_no_forward_dropped_by_forward_policy_is_another_drop(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("handmade-docker-no-forward");
    set_forward(&mut sc, "node", true);
    edit_iptables(&mut sc, "node", |r| {
        format!("{r}*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
    });
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[1].failures;
    let d = want(DroppedOtherwise).packet(1).request().netns("node").find(f);
    let observed = d.observed.as_deref().unwrap_or_default();
    assert!(observed.starts_with("dropped in node on mydocker at "), "{observed}");
    assert!(observed.contains("(NETFILTER_DROP: a netfilter rule or chain policy dropped it)"), "{observed}");
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
    want_any(&[NoReply, UnexpectedReply]).assert_none(f);
    want(Header)
        .packet(1)
        .request()
        .at("node1/ens3")
        .observed("192.168.122.183 > 10.10.14.2 ttl 63 mac 52:54:00:1e:45:e1 > 52:54:00:1e:45:ef")
        .find(f);
    want(Header)
        .packet(1)
        .request()
        .at("container2/eth0")
        .observed("192.168.122.183 > 10.10.14.2 ttl 62 mac fe:54:ef:48:ea:6d > 42:4e:00:a4:76:e3")
        .find(f);
    // MASQUERADE is rule 1 now: the RETURN's fall to the policy is what is missing.
    want(PathExact).packet(1).request().netns("node1").missing("nat:POSTROUTING:policy:3").find(f);
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
    want(NoReply).packet(1).find(f);
    want(Header)
        .packet(1)
        .request()
        .at("node1/ens3")
        .observed("10.10.15.2 > 10.10.14.2 ttl 63 mac 52:54:00:1e:45:e1 > fe:54:00:1e:45:e1")
        .find(f);
    want(PathExact)
        .packet(1)
        .request()
        .netns("switch")
        .missing("eb:filter:FORWARD")
        .unexpected("eb:filter:INPUT")
        .find(f);
    want(NotSeen).packet(1).request().at("container2/eth0").find(f);
    // The internet probe does not use that route.
    assert!(o.probes[1].failures.is_empty(), "{:#?}", o.probes[1].failures);
}
