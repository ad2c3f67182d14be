//! Seed 002 §7, a Kubernetes Service in nat chains: per-connection checks the scenario file
//! cannot state (which endpoint a random split picked), and twins that break the Service.

use netpath::scenario::{CapturePoint, Direction};
use netpath::{Backend, Outcome, Scenario};
use netpath_cases::load;
use rstest::rstest;

fn point(s: &str) -> CapturePoint {
    s.parse().unwrap()
}

fn hooks(o: &Outcome, probe: usize, packet: usize, d: Direction, netns: &str) -> Vec<String> {
    let ex = &o.probes[probe].exchanges[packet];
    ex.of(d).path.get(netns).map(|evs| evs.iter().map(|e| e.hook.to_string()).collect()).unwrap_or_default()
}

#[rstest]
fn every_connection_reaches_the_endpoint_the_split_chose(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let sc = load("k8s-service");
    let o = netpath_cases::run_or_return!(&sc, backend);
    assert!(o.passed(), "{}", netpath::report::outcome(&o, false));
    let cluster_ip = &o.probes[0];
    for (i, ex) in cluster_ip.exchanges.iter().enumerate() {
        let (at, addr, sep) = match ex.answer.as_deref() {
            Some("ep1") => ("ep1/eth0", "10.10.63.2", "nat:Test-SEP-1:rule:2"),
            Some("ep2") => ("ep2/eth0", "10.10.14.2", "nat:Test-SEP-2:rule:2"),
            other => panic!("connection {} answered by {other:?}", i + 1),
        };
        let syn = ex.request.seen.get(&point(at)).unwrap_or_else(|| {
            panic!(
                "connection {} ({at}): SYN not seen there; seen at {:?}",
                i + 1,
                ex.request.seen.keys().collect::<Vec<_>>()
            )
        });
        assert_eq!(syn.dst.unwrap().to_string(), addr, "connection {}", i + 1);
        assert_eq!(syn.ports().1, Some(12345));
        // The DNAT that chose it is in node1's trace of that very SYN.
        assert!(hooks(&o, 0, i, Direction::Request, "node1").contains(&sep.to_string()), "connection {}", i + 1);
    }
    // Hairpin: when ep1 lands on itself, its server answers the node's bridge address, because
    // Test-SEP-1 marked the connection and Test-PostRouting masqueraded it.
    let hairpin = &o.probes[2];
    let mut landed_home = 0;
    for (i, ex) in hairpin.exchanges.iter().enumerate() {
        if ex.answer.as_deref() != Some("ep1") {
            continue;
        }
        landed_home += 1;
        let synack = &ex.reply.seen[&point("ep1/eth0")];
        assert_eq!(synack.dst.unwrap().to_string(), "10.10.63.1", "hairpin connection {}", i + 1);
        let path = hooks(&o, 2, i, Direction::Request, "node1");
        for h in ["nat:Test-SEP-1:rule:1", "nat:Test-PostRouting:rule:1"] {
            assert!(path.contains(&h.to_string()), "hairpin connection {}: {h} missing from {path:?}", i + 1);
        }
    }
    assert!(landed_home > 0);
}

#[rstest]
fn a_split_that_always_picks_ep1_fails_the_balance(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("k8s-service");
    let node1 = sc.netns_mut("node1").unwrap();
    node1.iptables = Some(node1.iptables.take().unwrap().replace("--probability 0.5", "--probability 1.0"));
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    assert!(f.iter().any(|f| f.what == "answers from ep2" && f.detail.contains("got 0")), "{f:#?}");
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
    assert!(f.iter().any(|f| f.what == "answers from ep1" && f.detail.contains("got 0")), "{f:#?}");
    assert!(!f.iter().any(|f| f.what == "answers from ep2"), "the short timeout cut working connections: {f:#?}");
}

#[rstest]
fn hairpin_needs_the_masquerade_and_the_hairpin_port(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    // Without the MASQUERADE of marked traffic, ep1 answers itself directly and the connection
    // it made to the VIP never completes.
    let mut sc = quick_hairpin();
    let node1 = sc.netns_mut("node1").unwrap();
    let rules = node1.iptables.take().unwrap();
    node1.iptables =
        Some(rules.lines().filter(|l| !l.contains("-A Test-PostRouting")).map(|l| format!("{l}\n")).collect());
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
