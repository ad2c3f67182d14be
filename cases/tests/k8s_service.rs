//! Seed 002 §7, a Kubernetes Service in nat chains: twins that break the Service, and that
//! prove the file's per-connection entries (`answered_by`) fail when a connection goes wrong.

use netpath::verdict::expect::FailureKind::*;
use netpath::{Backend, Outcome, Scenario};
use netpath_cases::{edit_iptables, load, want, without_lines};
use rstest::rstest;

/// k8s-service.toml states per endpoint (`answered_by`) what each connection must show: the
/// DNAT of the SEP chain that chose it, its endpoint's address. Here: that those entries fail
/// when a connection reaches another endpoint than its chain's.
#[rstest]
fn a_sep_chain_that_dnats_to_the_wrong_endpoint_fails_per_connection(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("k8s-service");
    sc.probe.truncate(1);
    edit_iptables(&mut sc, "node1", |r| {
        r.replace("--to-destination 10.10.63.2:12345", "--to-destination 10.10.14.2:12345")
    });
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    want(Answers).answered_by("ep1").observed("0").find(f);
    let wrong = want(PathIncludes).request().netns("node1").answered_by("ep2");
    wrong.missing("nat:Test-SVC-1:rule:2").observing("nat:Test-SEP-1:rule:2").find(f);
}

/// The hairpin entries of the file: a connection ep1 makes to itself is answered to the node's
/// bridge address. SNAT to the node's other address still completes it, and fails that entry.
#[rstest]
fn a_hairpin_masqueraded_to_another_address_fails_per_connection(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = quick_hairpin();
    edit_iptables(&mut sc, "node1", |r| {
        r.replace(
            "-A Test-PostRouting -m mark --mark 0x1/0x1 -j MASQUERADE",
            "-A Test-PostRouting -m mark --mark 0x1/0x1 -j SNAT --to-source 192.168.122.183",
        )
    });
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[2].failures;
    let wrong = want(Header).reply().at("ep1/eth0").answered_by("ep1");
    wrong.expected("any > 10.10.63.1").observed("10.10.63.2 > 192.168.122.183").find(f);
    // The hairpin still completes.
    want(Answers).assert_none(f);
}

#[rstest]
fn a_split_that_always_picks_ep1_fails_the_balance(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("k8s-service");
    let node1 = sc.netns_mut("node1").unwrap();
    node1.iptables = Some(node1.iptables.take().unwrap().replace("--probability 0.5", "--probability 1.0"));
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    want(Answers).answered_by("ep2").observed("0").find(f);
}

/// The hairpin probe with a short timeout: about half its connections land on ep1 and, in the
/// twins, never complete, so each would wait out the full timeout. The control is in the same
/// run: every connection that lands on ep2 must still be answered within it.
fn quick_hairpin() -> Scenario {
    let mut sc = load("k8s-service");
    sc.probe[2].timeout_ms = 300;
    sc
}

fn assert_only_ep1_fails(o: &Outcome) {
    let f = &o.probes[2].failures;
    want(Answers).answered_by("ep1").observed("0").find(f);
    // A short timeout that cut working connections would fail ep2 too.
    want(Answers).answered_by("ep2").assert_none(f);
}

#[rstest]
fn hairpin_needs_the_masquerade_and_the_hairpin_port(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    // Without the MASQUERADE of marked traffic, ep1 answers itself directly and the connection
    // it made to the VIP never completes.
    let mut sc = quick_hairpin();
    edit_iptables(&mut sc, "node1", |r| without_lines(r, "-A Test-PostRouting"));
    let o = netpath_cases::run_or_return!(&sc, backend);
    assert_only_ep1_fails(&o);

    // Without hairpin mode the bridge will not send the DNATed SYN back out of ep1's port.
    let mut sc = quick_hairpin();
    for v in &mut sc.veth {
        v.a.hairpin = false;
    }
    let o = netpath_cases::run_or_return!(&sc, backend);
    assert_only_ep1_fails(&o);
}
