//! Every sighting is evidence (issue 19): a packet seen more than once at one capture point keeps
//! each sighting, and `[[probe.addr]] sighting = N` asserts the Nth. The hairpin of
//! k8s-service: ep1's SYN to the VIP leaves ep1/eth0 and comes back through it, DNATed to ep1
//! and masqueraded to the node's bridge address.

use netpath::scenario::{AddrExpect, Direction};
use netpath::verdict::expect::FailureKind::*;
use netpath::{Backend, Scenario};
use netpath_cases::{edit_iptables, load, want, without_lines};
use rstest::rstest;

/// k8s-service's hairpin probe alone, every connection sent to ep1 (so each is a hairpin), with
/// the second sighting of each SYN asserted for every packet (not only those ep1 answered: the
/// twin's are answered by nobody).
fn hairpin_only() -> Scenario {
    let mut sc = load("k8s-service");
    sc.probe.retain(|p| p.name == "hairpin");
    let p = &mut sc.probe[0];
    p.count = 2;
    p.timeout_ms = 300;
    p.answered_by.clear();
    p.path.clear();
    p.addr.retain(|a| a.sighting.is_none());
    p.addr.push(AddrExpect {
        sighting: Some(2),
        src: Some("10.10.63.1".parse().unwrap()),
        dst: Some("10.10.63.2".parse().unwrap()),
        dport: Some(12345.into()),
        ..AddrExpect::new(Direction::Request, "ep1/eth0".parse().unwrap())
    });
    edit_iptables(&mut sc, "node1", |r| r.replace("--probability 0.5", "--probability 1.0"));
    sc
}

#[rstest]
fn the_second_sighting_of_a_hairpinned_syn_shows_the_masquerade(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let sc = hairpin_only();
    let o = netpath_cases::run_or_return!(&sc, backend);
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    let at = "ep1/eth0".parse().unwrap();
    for ex in &o.probes[0].exchanges {
        let seen: Vec<String> =
            ex.request.sightings(&at).map(|i| format!("{} > {}", i.src.unwrap(), i.dst.unwrap())).collect();
        assert_eq!(seen, ["10.10.63.2 > 2.2.2.2", "10.10.63.1 > 10.10.63.2"], "packet {}", ex.packet);
    }
    // Reports number the sightings of a point that saw the packet more than once.
    let report = netpath::output::report::outcome(&o, true);
    assert!(report.contains("ep1/eth0 #2"), "{report}");

    // Twin: without the masquerade of marked traffic the SYN comes back from ep1's own address.
    let mut twin = sc.clone();
    edit_iptables(&mut twin, "node1", |r| without_lines(r, "-A Test-PostRouting"));
    let o = netpath_cases::run_or_return!(&twin, backend);
    let f = want(Header).packet(1).request().at("ep1/eth0").find(&o.probes[0].failures);
    assert_eq!(f.observed.as_deref(), Some("10.10.63.2 > 10.10.63.2:12345"), "{f:#?}");
    assert!(f.what.contains("(sighting 2)"), "{}", f.what);
}

/// `sighting = 0` is no sighting: a load error at its line and column.
#[test]
fn sightings_count_from_one() {
    let path = netpath_cases::scenario_path("k8s-service");
    let text = std::fs::read_to_string(&path).unwrap().replace("sighting = 2", "sighting = 0");
    let e = Scenario::from_toml(&text, &path).unwrap_err().to_string();
    assert!(e.contains("sighting: sightings count from 1"), "{e}");
    assert!(e.contains("k8s-service.toml:"), "{e}");
}
