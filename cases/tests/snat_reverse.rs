//! Seed 004: what translates the reply of a masqueraded container back, and what lets it
//! through. Each scenario file holds one experiment's expectations; these tests flip the one
//! setting it is about and check the expectations fail for that reason.

use netpath::Backend;
use netpath::scenario::{RouteDst, RouteSpec};
use netpath_cases::{edit_iptables, load, named, named_saying};
use rstest::rstest;

/// snat-reverse-forward-drop with the policy set to ACCEPT: the reply gets through, and every
/// expectation that says it dies at the FORWARD policy fails.
#[rstest]
fn forward_drop_with_policy_accept_lets_the_reply_through(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("snat-reverse-forward-drop");
    edit_iptables(&mut sc, "host", |r| r.replace(":FORWARD DROP [0:0]", ":FORWARD ACCEPT [0:0]"));
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    named(f, "packet 1: no reply (the request is dropped)");
    let last = named(f, "path of packet 1 reply in netns host (last hook)");
    assert!(
        last.detail
            .starts_with("expected the packet's last hook to be filter:FORWARD:policy:6, it was eb:nat:POSTROUTING"),
        "{}",
        last.detail
    );
    named_saying(f, "path of packet 1 reply in netns host (exact)", &["  + eb:nat:POSTROUTING"]);
    for at in ["host/veth0594f4b", "c1/eth0"] {
        named_saying(
            f,
            &format!("addresses of packet 1 reply at {at}"),
            &["expected not seen, observed 10.171.77.30 > 192.168.0.2"],
        );
    }
    // The request is the same either way.
    assert!(!f.iter().any(|f| f.what.starts_with("path of packet 1 request")), "{f:#?}");
    assert!(!f.iter().any(|f| f.what.starts_with("addresses of packet 1 request")), "{f:#?}");
}

/// snat-reverse-forward-accept with the policy back to DROP (and still no ctstate rule): the
/// reply dies in FORWARD, never reaching c1.
#[rstest]
fn forward_accept_with_policy_drop_loses_the_reply(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("snat-reverse-forward-accept");
    edit_iptables(&mut sc, "host", |r| r.replace(":FORWARD ACCEPT [0:0]", ":FORWARD DROP [0:0]"));
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    named(f, "packet 1: a reply");
    named_saying(
        f,
        "path of packet 1 reply in netns host (exact)",
        &["    filter:FORWARD:policy:6", "  - eb:filter:OUTPUT"],
    );
    let c1 = named(f, "addresses of packet 1 reply at c1/eth0");
    assert!(c1.detail.ends_with("observed not seen"), "{}", c1.detail);
    // It had already been translated back when it died: the uplink side still holds.
    assert!(!f.iter().any(|f| f.what == "addresses of packet 1 reply at host/eth0"), "{f:#?}");
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
    edit_iptables(&mut sc, "host", |r| {
        r.lines().filter(|l| !l.contains("-j MASQUERADE")).map(|l| format!("{l}\n")).collect()
    });
    sc.route.push(RouteSpec {
        netns: "ext".into(),
        to: RouteDst::Prefix("192.168.0.0/20".parse().unwrap()),
        via: Some("10.171.77.2".parse().unwrap()),
        dev: None,
    });
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    assert!(!f.iter().any(|f| f.what.contains("a reply")), "{f:#?}");
    named_saying(
        f,
        "addresses of packet 1 reply at host/eth0",
        &["expected 10.171.77.30 > 10.171.77.2, observed 10.171.77.30 > 192.168.0.2"],
    );
    named_saying(f, "addresses of packet 1 request at host/eth0", &["observed 192.168.0.2 > 10.171.77.30"]);
    assert!(!f.iter().any(|f| f.what.starts_with("addresses of packet 1 reply at host/veth")), "{f:#?}");
    assert!(!f.iter().any(|f| f.what.starts_with("addresses of packet 1 reply at c1/")), "{f:#?}");
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
    let hit = named(f, "path of packet 1 request in netns host (never nat:PREROUTING:rule:2)");
    assert!(hit.detail.starts_with("visited nat:PREROUTING:rule:2"), "{}", hit.detail);
}

/// Without the DNAT rule c1 -> c2 is plain bridging again, and c1 -> external is unchanged: the
/// reply's delivery never depended on the rule.
#[rstest]
fn dnat_prerouting_without_the_rule_only_c1_to_c2_changes(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("snat-reverse-dnat-prerouting");
    edit_iptables(&mut sc, "host", |r| {
        r.lines().filter(|l| !l.contains("-j DNAT")).map(|l| format!("{l}\n")).collect()
    });
    let o = netpath_cases::run_or_return!(&sc, backend);
    let ext = &o.probes[0].failures;
    // Only the request's nat PREROUTING policy number moves (rule 2 is gone: policy:2).
    assert_eq!(ext.len(), 1, "{ext:#?}");
    assert!(ext[0].detail.contains("`nat:PREROUTING:policy:3` not found in order"), "{ext:#?}");
    let f = &o.probes[1].failures;
    named_saying(
        f,
        "path of packet 1 request in netns host (includes, in order)",
        &["`nat:PREROUTING:rule:2` not found in order"],
    );
    let c2 = named(f, "addresses of packet 1 request at c2/eth0");
    assert!(
        c2.detail.starts_with("at c2/eth0: expected not seen, observed 192.168.0.2 > 192.168.0.3"),
        "{}",
        c2.detail
    );
    let docker0 = named(f, "addresses of packet 1 request at host/docker0");
    assert!(docker0.detail.ends_with("observed not seen"), "{}", docker0.detail);
}
