//! Negative twins of the bundled scenarios whose point is a kernel drop (router-no-route,
//! rp-filter-asymmetric, udp-closed-port, neighbour-unanswered; `scenario_files` runs them as
//! they are): the same file with the datapath repaired, or broken another way, must fail with
//! `NotDropped` or `DroppedOtherwise`, naming the packet, the netns and what the kernel did.
//! The drop source does not depend on the iptables backend: each twin runs under legacy.

use std::path::Path;

use netpath::verdict::expect::FailureKind::*;
use netpath::{Backend, Outcome, Scenario};
use netpath_cases::want;

/// The bundled file `stem` with each `(from, to)` replaced (each must be there).
fn edited(stem: &str, edits: &[(&str, &str)]) -> Scenario {
    let path = netpath_cases::scenario_path(stem);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in edits {
        assert!(text.contains(from), "{stem}: no `{from}` to edit");
        text = text.replacen(from, to, 1);
    }
    Scenario::from_toml(&text, Path::new(&format!("{stem}-twin.toml"))).unwrap_or_else(|e| panic!("{e}"))
}

fn report(o: &Outcome) -> String {
    netpath::output::report::outcome(o, true)
}

/// The probe named `name`'s failures.
fn failures<'a>(o: &'a Outcome, name: &str) -> &'a [netpath::verdict::Failure] {
    &o.probes.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no probe {name}")).failures
}

/// Twin: b owns 10.9.3.1 and fd00:3::1 and the router routes them to b: both echoes are
/// answered, and the router dropped nothing.
#[test]
fn router_no_route_twin_with_the_route_is_not_dropped() {
    let sc = edited(
        "router-no-route",
        &[
            (
                "addresses = [\"10.9.2.1/24\", \"fd00:2::1/64\"]",
                "addresses = [\"10.9.2.1/24\", \"fd00:2::1/64\", \"10.9.3.1/24\", \"fd00:3::1/64\"]",
            ),
            (
                "# Nothing routes 10.9.3.0/24",
                "[[route]]\nnetns = \"router\"\nto = \"10.9.3.0/24\"\nvia = \"10.9.2.1\"\n\n\
                 [[route]]\nnetns = \"router\"\nto = \"fd00:3::/64\"\nvia = \"fd00:2::1\"\n\n# Nothing routes 10.9.3.0/24",
            ),
        ],
    );
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    for (probe, wanted) in
        [("v4-no-route", "IP_INNOROUTES in router at ip_error"), ("v6-no-route", "IP_INNOROUTES in router")]
    {
        want(NotDropped).packet(1).request().netns("router").expected(wanted).find(failures(&o, probe));
        want(UnexpectedReply).packet(1).find(failures(&o, probe));
    }
    assert!(o.probes.iter().all(|p| p.exchanges[0].request.drops.is_empty()), "{}", report(&o));
}

/// Twin: forwarding off on the router: the IPv4 echo dies at the same function for another
/// reason (IP_INADDRERRORS), silently.
#[test]
fn router_no_route_twin_without_forwarding_is_dropped_otherwise() {
    let sc = edited("router-no-route", &[("\"net.ipv4.ip_forward\" = \"1\"", "\"net.ipv4.ip_forward\" = \"0\"")]);
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    let f = want(DroppedOtherwise)
        .packet(1)
        .request()
        .netns("router")
        .expected("IP_INNOROUTES in router at ip_error")
        .find(failures(&o, "v4-no-route"));
    let observed = f.observed.as_deref().unwrap_or_default();
    assert!(observed.contains("at ip_error") && observed.contains("(IP_INADDRERRORS"), "{observed}");
    // Nothing comes back: no ICMP error with forwarding off.
    want(WrongAnswer).packet(1).find(failures(&o, "v4-no-route"));
    assert!(failures(&o, "v6-no-route").is_empty(), "IPv6 forwarding is its own: {}", report(&o));
}

/// Twin: loose reverse-path filtering (rp_filter = 2) accepts a source reachable by any route:
/// the echo is forwarded, the router dropped nothing.
#[test]
fn rp_filter_twin_in_loose_mode_is_not_dropped() {
    let sc = edited(
        "rp-filter-asymmetric",
        &[(
            "\"net.ipv4.conf.all.rp_filter\" = \"0\", \"net.ipv4.conf.to-gw.rp_filter\" = \"1\"",
            "\"net.ipv4.conf.all.rp_filter\" = \"0\", \"net.ipv4.conf.to-gw.rp_filter\" = \"2\"",
        )],
    );
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    want(NotDropped)
        .packet(1)
        .request()
        .netns("router")
        .expected("IP_RPFILTER in router at ip_rcv_finish_core")
        .find(failures(&o, "client-to-b"));
}

/// Twin: a server listens on the port: both datagrams are answered, nothing dropped.
#[test]
fn udp_closed_port_twin_with_a_server_is_not_dropped() {
    let sc =
        edited("udp-closed-port", &[("[[probe]]", "[[server]]\nnetns = \"b\"\nkind = \"udp\"\nport = 9\n\n[[probe]]")]);
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    for (probe, wanted) in
        [("v4-closed-port", "NO_SOCKET in b at __udp4_lib_rcv"), ("v6-closed-port", "NO_SOCKET in b at __udp6_lib_rcv")]
    {
        want(NotDropped).packet(1).request().netns("b").expected(wanted).find(failures(&o, probe));
    }
}

/// Twin: b's INPUT drops the port: the datagrams die in b all the same, but by a netfilter
/// verdict, before any socket lookup, and nothing comes back.
#[test]
fn udp_closed_port_twin_with_an_input_drop_is_dropped_otherwise() {
    let rules = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp --dport 9 -j DROP\nCOMMIT\n";
    let ns_b = format!("name = \"b\"\niptables = \"\"\"\n{rules}\"\"\"\nip6tables = \"\"\"\n{rules}\"\"\"\n");
    let sc = edited("udp-closed-port", &[("name = \"b\"\n", &ns_b)]);
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    for probe in ["v4-closed-port", "v6-closed-port"] {
        let f = want(DroppedOtherwise).packet(1).request().netns("b").find(failures(&o, probe));
        let observed = f.observed.as_deref().unwrap_or_default();
        assert!(observed.contains("(NETFILTER_DROP"), "{probe}: {observed}");
        want(WrongAnswer).packet(1).find(failures(&o, probe));
    }
}

/// Twin: b has the address the router looks for: resolved, forwarded, answered, not dropped.
#[test]
fn neighbour_twin_that_answers_is_not_dropped() {
    let sc = edited(
        "neighbour-unanswered",
        &[(
            "addresses = [\"10.9.2.1/24\", \"fd00:2::1/64\"]",
            "addresses = [\"10.9.2.1/24\", \"fd00:2::1/64\", \"10.9.2.99/24\", \"fd00:2::99/64\"]",
        )],
    );
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    for (probe, wanted) in [
        ("v4-no-neighbour", "NEIGH_FAILED in router at neigh_invalidate"),
        ("v6-no-neighbour", "NOT_SPECIFIED in router at neigh_invalidate"),
    ] {
        want(NotDropped).packet(1).request().netns("router").expected(wanted).find(failures(&o, probe));
    }
}

/// ipv6-forward-drop's TCP probe with `timeout_ms` raised to `ms`.
fn tcp_dropped_waiting(ms: u64) -> Scenario {
    let mut sc = netpath_cases::load("ipv6-forward-drop");
    sc.probe.retain(|p| p.name == "tcp-dropped");
    sc.probe[0].timeout_ms = ms;
    sc
}

/// A TCP probe whose SYN the kernel proved dropped (NETFILTER_DROP at the router's FORWARD
/// policy) stops waiting when no retransmission could come before its timeout (TCP resends a
/// SYN 1 s after the first at the earliest): 950 ms are not waited out. What it heard is
/// `none`, the drop is in the evidence.
#[test]
fn a_tcp_probe_stops_at_its_dropped_syn_when_no_retransmission_fits() {
    let sc = tcp_dropped_waiting(950);
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    assert!(o.passed(), "{}", report(&o));
    let took = o.timings.get("probe tcp-dropped").unwrap();
    assert!(took < std::time::Duration::from_millis(700), "waited {took:?} of 950 ms");
    let x = &o.probes[0].exchanges[0];
    assert_eq!(x.response.kind, netpath::scenario::Answer::None);
    assert_eq!(x.request.drops[0].reason.as_deref(), Some("NETFILTER_DROP"), "{}", report(&o));
}

/// Twin: with 1600 ms, the retransmitted SYN falls inside the timeout and could be answered
/// (a `statistic` rule lets some through): the probe waits for it, and stops only once the
/// kernel dropped it too, before the timeout. The retransmission is evidence of its own.
#[test]
fn a_tcp_probe_waits_for_the_retransmission_that_fits_and_its_drop() {
    let sc = tcp_dropped_waiting(1600);
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    assert!(o.passed(), "{}", report(&o));
    let took = o.timings.get("probe tcp-dropped").unwrap();
    assert!(took >= std::time::Duration::from_secs(1), "stopped before the retransmission: {took:?}");
    assert!(took < std::time::Duration::from_millis(1500), "waited {took:?} of 1600 ms");
    let x = &o.probes[0].exchanges[0];
    assert!(!x.retransmissions.is_empty(), "{}", report(&o));
    assert!(x.request.drops.len() >= 2, "both SYNs' drops: {:#?}", x.request.drops);
}

/// The probes of `sc` that must get no answer (`answer = "none"`) without saying where their
/// packets die: no `[[probe.drop]]` (a kernel reason) and no path whose `last` hook carries a
/// `drop` verdict.
fn drops_unnamed(sc: &Scenario) -> Vec<String> {
    sc.probe
        .iter()
        .filter(|p| p.expected_answer() == netpath::scenario::Answer::None)
        .filter(|p| {
            p.drop.is_empty()
                && !p.path.iter().any(|x| x.last.as_ref().is_some_and(|l| l.to_string().ends_with(" drop")))
        })
        .map(|p| format!("{}: {}", sc.name, p.name))
        .collect()
}

/// Every bundled probe that must not be answered names its drop: the kernel's reason where it
/// dies outside a rule, the rule or policy and its `drop` verdict where netfilter drops it.
#[test]
fn every_bundled_probe_that_must_not_be_answered_names_its_drop() {
    let mut unnamed = vec![];
    let mut checked = 0;
    for entry in std::fs::read_dir(netpath_cases::scenarios_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            checked += sc.probe.iter().filter(|p| p.expected_answer() == netpath::scenario::Answer::None).count();
            unnamed.extend(drops_unnamed(&sc));
        }
    }
    assert!(checked >= 10, "only {checked} probes must not be answered: the check reads nothing");
    assert!(unnamed.is_empty(), "probes that must not be answered and do not name their drop: {unnamed:#?}");

    // Twin: rp-filter-asymmetric without its [[probe.drop]] is named.
    let mut sc = netpath_cases::load("rp-filter-asymmetric");
    for p in &mut sc.probe {
        p.drop.clear();
    }
    assert_eq!(drops_unnamed(&sc), ["rp-filter-asymmetric: client-to-b"]);
}
