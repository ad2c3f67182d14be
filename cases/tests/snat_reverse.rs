//! Seed 004: what translates the reply of a masqueraded container back, and what lets it
//! through. Each scenario file holds one experiment's expectations; these tests flip the one
//! setting it is about and check the expectations fail for that reason.

use netpath::Backend;
use netpath::scenario::{RouteDst, RouteSpec};
use netpath::verdict::expect::FailureKind::{self, *};
use netpath_cases::{edit_iptables, hook, load, want, want_any, without_lines};
use rstest::rstest;

/// snat-reverse-forward-drop with the policy set to ACCEPT: the reply gets through, and every
/// expectation that says it dies at the FORWARD policy fails.
#[rstest]
fn forward_drop_with_policy_accept_lets_the_reply_through(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("snat-reverse-forward-drop");
    edit_iptables(&mut sc, "host", |r| r.replace(":FORWARD DROP [0:0]", ":FORWARD ACCEPT [0:0]"));
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    want(UnexpectedReply).packet(1).find(f);
    let last = want(PathLast).packet(1).reply().netns("host").find(f);
    assert_eq!(
        (&last.missing, &last.unexpected),
        (&vec![hook("filter:FORWARD:policy:6")], &vec![hook("eb:nat:POSTROUTING")])
    );
    let exact = want(PathExact).packet(1).reply().netns("host").find(f);
    assert!(exact.unexpected.contains(&hook("eb:nat:POSTROUTING")), "{exact:#?}");
    for at in ["host/veth0594f4b", "c1/eth0"] {
        let seen = want(Seen).packet(1).reply().at(at).find(f);
        assert_eq!(seen.observed.as_deref(), Some("10.171.77.30 > 192.168.0.2"), "{seen:#?}");
    }
    // The request is the same either way.
    want_any(&FailureKind::PATH).packet(1).request().assert_none(f);
    want_any(&FailureKind::ADDRESS).packet(1).request().assert_none(f);
}

/// snat-reverse-forward-accept with the policy back to DROP (and still no ctstate rule): the
/// reply dies in FORWARD, never reaching c1.
#[rstest]
fn forward_accept_with_policy_drop_loses_the_reply(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("snat-reverse-forward-accept");
    edit_iptables(&mut sc, "host", |r| r.replace(":FORWARD ACCEPT [0:0]", ":FORWARD DROP [0:0]"));
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    want(NoReply).packet(1).find(f);
    let exact = want(PathExact).packet(1).reply().netns("host").find(f);
    assert!(exact.hooks.contains(&hook("filter:FORWARD:policy:6")), "{exact:#?}");
    assert!(exact.missing.contains(&hook("eb:filter:OUTPUT")), "{exact:#?}");
    want(NotSeen).packet(1).reply().at("c1/eth0").find(f);
    // It had already been translated back when it died: the uplink side still holds.
    want_any(&FailureKind::ADDRESS).packet(1).reply().at("host/eth0").assert_none(f);
}

/// snat-reverse-only-snat without the SNAT (ext routes the container prefix back instead): the
/// reply now arrives on the uplink addressed to 192.168.0.2 itself. Only the uplink expectation
/// fails; the veth one holds either way. So the 10.171.77.2 seen on the uplink is the SNAT's,
/// and its translation back to 192.168.0.2 is conntrack's.
#[rstest]
fn only_snat_without_the_snat_the_uplink_sees_the_container_address(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("snat-reverse-only-snat");
    edit_iptables(&mut sc, "host", |r| without_lines(r, "-j MASQUERADE"));
    sc.route.push(RouteSpec {
        netns: "ext".into(),
        to: RouteDst::Prefix("192.168.0.0/20".parse().unwrap()),
        via: Some("10.171.77.2".parse().unwrap()),
        dev: None,
    });
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    want_any(&[NoReply, UnexpectedReply]).assert_none(f);
    let uplink = want(Header).packet(1).reply().at("host/eth0").find(f);
    assert_eq!(uplink.expected.as_deref(), Some("10.171.77.30 > 10.171.77.2"), "{uplink:#?}");
    assert_eq!(uplink.observed.as_deref(), Some("10.171.77.30 > 192.168.0.2"), "{uplink:#?}");
    let request = want(Header).packet(1).request().at("host/eth0").find(f);
    assert_eq!(request.observed.as_deref(), Some("192.168.0.2 > 10.171.77.30"), "{request:#?}");
    // Nor does any inside the bridge: the host's container veths and c1.
    let reply = want_any(&FailureKind::ADDRESS).packet(1).reply();
    let inside = |at: &netpath::scenario::CapturePoint| at.netns == "c1" || at.iface.starts_with("veth");
    assert!(!f.iter().any(|f| reply.matches(f) && f.at.as_ref().is_some_and(inside)), "{f:#?}");
}

/// The reply's `never = ["nat:PREROUTING:rule:2"]` names the DNAT rule by its real position: put
/// the same expectation on c1 -> c2, a NEW flow into 192.168.0.0/20, and it fails, naming it.
#[rstest]
fn dnat_rule_2_is_live_for_new_flows(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("snat-reverse-dnat-prerouting");
    let never =
        sc.probe_mut("c1-to-external").unwrap().path.iter().find(|p| !p.never.is_empty()).unwrap().never.clone();
    sc.probe_mut("c1-to-c2").unwrap().path[0].never = never;
    let o = netpath_cases::run_or_return!(&sc, backend);
    assert!(o.probes[0].failures.is_empty(), "{:#?}", o.probes[0].failures);
    let f = &o.probes[1].failures;
    let hit = want(PathNever).packet(1).request().netns("host").find(f);
    assert_eq!(
        (hit.expected.as_deref(), &hit.unexpected),
        (Some("nat:PREROUTING:rule:2"), &vec![hook("nat:PREROUTING:rule:2")])
    );
}

/// Without the DNAT rule c1 -> c2 is plain bridging again, and c1 -> external is unchanged: the
/// reply's delivery never depended on the rule.
#[rstest]
fn dnat_prerouting_without_the_rule_only_c1_to_c2_changes(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("snat-reverse-dnat-prerouting");
    edit_iptables(&mut sc, "host", |r| without_lines(r, "-j DNAT"));
    // The replies' `never` the removed rule 2 would match nothing: refused at load, and not
    // what this twin is about (`nat` stays in those entries).
    for e in &mut sc.probe[0].path {
        e.never.retain(|p| p.to_string() != "nat:PREROUTING:rule:2");
    }
    let o = netpath_cases::run_or_return!(&sc, backend);
    let ext = &o.probes[0].failures;
    // Only the request's nat PREROUTING policy number moves (rule 2 is gone: policy:2).
    assert_eq!(ext.len(), 1, "{ext:#?}");
    assert_eq!((ext[0].kind, &ext[0].missing), (PathIncludes, &vec![hook("nat:PREROUTING:policy:3")]), "{ext:#?}");
    let f = &o.probes[1].failures;
    let path = want(PathIncludes).packet(1).request().netns("host").find(f);
    assert_eq!(path.missing, [hook("nat:PREROUTING:rule:2")], "{path:#?}");
    let c2 = want(Seen).packet(1).request().at("c2/eth0").find(f);
    assert!(c2.observed.as_deref().is_some_and(|o| o.starts_with("192.168.0.2 > 192.168.0.3")), "{c2:#?}");
    want(NotSeen).packet(1).request().at("host/docker0").find(f);
}
