//! IPv6 and dual stack: ipv6-dual-stack-router's probes of both families through a router
//! netns, with twins where the router does not forward IPv6 or a host has no route back.

use std::collections::BTreeSet;

use netpath::evidence::packet::{L4, PacketInfo};
use netpath::scenario::{RouteDst, RouteSpec};
use netpath::{Backend, Outcome, Scenario};
use netpath_cases::{load, named_saying, run_or_return};

const V6_PROBES: [&str; 4] = ["ping6", "udp6", "tcp6", "frame6"];

fn scenario() -> Scenario {
    load("ipv6-dual-stack-router")
}

fn is_v6(info: &PacketInfo) -> bool {
    info.src.is_some_and(|a| a.is_ipv6())
}

/// ICMPv6 messages that are not echoes: neighbour and router discovery, MLD, errors.
fn icmpv6_control(info: &PacketInfo) -> Option<u8> {
    match info.l4 {
        L4::Icmp { kind, .. } if is_v6(info) && !matches!(kind, 128 | 129) => Some(kind),
        _ => None,
    }
}

/// Every packet summary some probe took as its own, at any capture point.
fn evidence(o: &Outcome) -> Vec<&PacketInfo> {
    o.probes
        .iter()
        .flat_map(|p| &p.exchanges)
        .flat_map(|ex| ex.request.seen.values().chain(ex.reply.seen.values()))
        .collect()
}

#[test]
fn probes_of_both_families_cross_the_router_and_ndp_is_never_their_evidence() {
    let sc = scenario();
    for backend in [Backend::Legacy, Backend::Nft] {
        let o = run_or_return!(&sc, backend);
        assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
        // Each probe's packets are of its target's family, everywhere they were seen.
        for (spec, p) in sc.probe.iter().zip(&o.probes) {
            let want_v6 = spec.to.addr().unwrap().is_ipv6();
            for ex in &p.exchanges {
                assert!(!ex.request.seen.is_empty() && !ex.reply.seen.is_empty(), "{}: {ex:#?}", spec.name);
                for info in ex.request.seen.values().chain(ex.reply.seen.values()) {
                    assert_eq!(is_v6(info), want_v6, "{}: {info}", spec.name);
                }
            }
        }
        // Neighbour discovery crossed both links (the router resolved b, a its link-local
        // gateway): captured, and never taken for a probe's packet.
        let control: BTreeSet<(String, u8)> =
            o.frames.iter().filter_map(|f| Some((f.point.to_string(), icmpv6_control(&f.info()?)?))).collect();
        for point in ["a/eth0", "b/eth0"] {
            assert!(
                control.iter().any(|(p, kind)| p == point && matches!(kind, 135 | 136)),
                "{backend:?}: no neighbour solicitation or advertisement captured at {point}: {control:?}"
            );
        }
        assert!(
            evidence(&o).iter().all(|info| icmpv6_control(info).is_none()),
            "{backend:?}: an NDP/RS/MLD packet was taken as a probe's evidence"
        );
    }
}

#[test]
fn without_ipv6_forwarding_the_ipv6_probes_stop_at_the_router_and_ipv4_still_passes() {
    let mut sc = scenario();
    sc.netns_mut("router").unwrap().sysctls.insert("net.ipv6.conf.all.forwarding".into(), "0".into());
    let o = run_or_return!(&sc, Backend::Legacy);
    assert!(o.probes[0].failures.is_empty(), "ping4 needs no IPv6 forwarding: {:#?}", o.probes[0].failures);
    for name in V6_PROBES {
        let p = o.probes.iter().find(|p| p.name == name).unwrap();
        named_saying(
            &p.failures,
            "packet 1: a reply",
            &["no reply reached a", "the request was seen at a/eth0, router/to-a;"],
        );
        named_saying(&p.failures, "addresses of packet 1 request at b/eth0", &["observed not seen"]);
    }
    // Whatever the router answers instead (an ICMPv6 error quoting the request and its nonce)
    // is no reply.
    assert!(evidence(&o).iter().all(|info| icmpv6_control(info).is_none()));
}

#[test]
fn without_a_route_back_the_requests_arrive_and_no_reply_leaves_b() {
    let mut sc = scenario();
    let back = sc.route.iter().position(|r| r.netns == "b" && r.is_ipv6()).expect("b's IPv6 default route");
    // A route to somewhere else: b has no way back to fd00:a::/64.
    sc.route[back] = RouteSpec {
        netns: "b".into(),
        to: RouteDst::Prefix("fd00:c::/64".parse().unwrap()),
        via: Some("fd00:b::1".parse().unwrap()),
        dev: None,
    };
    let o = run_or_return!(&sc, Backend::Nft);
    assert!(o.probes[0].failures.is_empty(), "ping4 has its own route: {:#?}", o.probes[0].failures);
    for name in ["ping6", "tcp6"] {
        let p = o.probes.iter().find(|p| p.name == name).unwrap();
        named_saying(
            &p.failures,
            "packet 1: a reply",
            &["the request was seen at a/eth0, b/eth0, router/to-a, router/to-b;"],
        );
        assert!(p.exchanges[0].reply.seen.is_empty(), "{name}: {:#?}", p.exchanges[0].reply);
    }
}

#[test]
fn a_link_local_gateway_without_its_link_is_refused_at_its_line() {
    let path = netpath_cases::scenario_path("ipv6-dual-stack-router");
    let text = std::fs::read_to_string(&path).unwrap().replacen("dev = \"eth0\"\n", "", 1);
    let err = Scenario::from_toml(&text, &path).unwrap_err().to_string();
    let line = text.lines().position(|l| l == "via = \"fe80::1\"").unwrap() + 1;
    assert!(
        err.contains(&format!("ipv6-dual-stack-router.toml:{line}:7: route[0].via: gateway fe80::1 is link-local")),
        "{err}"
    );
}

/// The neighbour solicitations and advertisements captured at `point`.
fn ndp_at(o: &Outcome, point: &str) -> usize {
    o.frames
        .iter()
        .filter(|f| f.point.to_string() == point)
        .filter(|f| f.info().as_ref().and_then(icmpv6_control).is_some_and(|k| matches!(k, 135 | 136)))
        .count()
}

fn edit_ip6tables(sc: &mut Scenario, netns: &str, from: &str, to: &str) {
    let rules = sc.netns_mut(netns).unwrap().ip6tables.as_mut().expect("an ip6tables ruleset");
    assert!(rules.contains(from), "the twin's edit must change the ruleset: no `{from}` in\n{rules}");
    *rules = rules.replace(from, to);
}

#[rstest::rstest]
fn the_forward_policy_drops_tcp_and_icmpv6_and_ndp_still_work(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let sc = load("ipv6-forward-drop");
    let o = run_or_return!(&sc, backend);
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    for point in ["a/eth0", "router/to-b", "b/eth0"] {
        assert!(ndp_at(&o, point) > 0, "{backend:?}: no NDP captured at {point}");
    }
    assert!(evidence(&o).iter().all(|info| icmpv6_control(info).is_none()));
}

/// Twin: with the FORWARD policy ACCEPT the connection gets through, and the probe that must be
/// dropped fails at its reply and at b/eth0, where the SYN now is.
#[rstest::rstest]
fn with_an_accepting_forward_policy_the_connection_is_not_dropped(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("ipv6-forward-drop");
    edit_ip6tables(&mut sc, "router", ":FORWARD DROP", ":FORWARD ACCEPT");
    let o = run_or_return!(&sc, backend);
    let tcp = o.probes.iter().find(|p| p.name == "tcp-dropped").unwrap();
    named_saying(&tcp.failures, "packet 1: no reply (the request is dropped)", &["a reply reached a"]);
    named_saying(&tcp.failures, "addresses of packet 1 request at b/eth0", &[]);
    assert!(o.probes.iter().filter(|p| p.name != "tcp-dropped").all(|p| p.failures.is_empty()));
}

/// Twin: without the rule that lets ICMPv6 in, the router's INPUT policy drops neighbour
/// discovery too: a solicits its gateway and no advertisement comes back, so not even the echo
/// to the router leaves a.
#[rstest::rstest]
fn without_icmpv6_input_neighbour_discovery_fails_at_the_input_policy(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("ipv6-forward-drop");
    edit_ip6tables(&mut sc, "router", "-A INPUT -p ipv6-icmp -j ACCEPT\n", "");
    let o = run_or_return!(&sc, backend);
    let ping = o.probes.iter().find(|p| p.name == "ping-router").unwrap();
    named_saying(&ping.failures, "packet 1: a reply", &["no reply reached a", "the request was captured nowhere"]);
    let kinds_at_a: Vec<u8> = o
        .frames
        .iter()
        .filter(|f| f.point.to_string() == "a/eth0")
        .filter_map(|f| icmpv6_control(&f.info()?))
        .collect();
    assert!(kinds_at_a.contains(&135), "{backend:?}: a never solicited its gateway: {kinds_at_a:?}");
    assert!(!kinds_at_a.contains(&136), "{backend:?}: the router advertised through a dropping INPUT: {kinds_at_a:?}");
}
