//! Seed 000 §5: a container pings an external host through docker0 and MASQUERADE. The scenario
//! file holds the expectations; these tests prove they can fail.

use netpath::Backend;
use netpath::verdict::expect::FailureKind::*;
use netpath_cases::load;
use rstest::rstest;

/// Without the MASQUERADE rule the request leaves the host with the container's address, so the
/// address expectation at the uplink must fail and name that hop. ext routes the container
/// subnet back through the host (external-to-c1 needs it), so the reply still comes: the path
/// says where the MASQUERADE is missing.
#[rstest]
fn without_masquerade_the_uplink_address_assertion_fails(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("docker-masquerade");
    netpath_cases::edit_iptables(&mut sc, "host", |r| netpath_cases::without_lines(r, "-j MASQUERADE"));

    let o = netpath_cases::run_or_return!(&sc, backend);
    netpath_cases::assert_masquerade_missing(&o);
    let failures = &o.probes[0].failures;
    let path = netpath_cases::want(PathExact).packet(1).request().netns("host").find(failures);
    assert!(path.detail.contains("- nat:POSTROUTING:rule:1"), "{path:#?}");
    assert!(!netpath_cases::want(NoReply).packet(1).any(failures), "{failures:#?}");
}

/// The second echo of the flow is established and skips nat: expecting MASQUERADE on it must
/// fail, which proves the packet-2 expectations read the real path of that packet.
#[rstest]
fn established_flow_skips_nat_and_the_check_sees_it(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("docker-masquerade");
    let probe = sc.probe_mut("c1-to-external").expect("probe");
    let second = probe
        .path
        .iter_mut()
        .find(|p| p.packet == Some(netpath::scenario::Packets::One(2)))
        .expect("packet 2 expectation");
    second.includes = Some(vec!["nat:POSTROUTING:rule:1".parse().unwrap()]);
    let o = netpath_cases::run_or_return!(&sc, backend);
    let failures = &o.probes[0].failures;
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0].kind, PathIncludes, "{failures:#?}");
    assert_eq!(failures[0].missing, [netpath_cases::hook("nat:POSTROUTING:rule:1")], "{failures:#?}");
}

/// The native nftables version fails the same way without its masquerade statement.
#[test]
fn native_nft_without_masquerade_fails_at_the_uplink() {
    let mut sc = load("docker-masquerade-native-nft");
    let host = sc.netns_mut("host").unwrap();
    let rules = host.nft.take().unwrap();
    let without = netpath_cases::without_lines(&rules, "masquerade");
    assert_ne!(rules, without);
    host.nft = Some(without);
    let o = netpath_cases::run_or_return!(&sc, Backend::Nft);
    let failures = &o.probes[0].failures;
    let uplink = netpath_cases::want(Header).packet(1).request().at("host/eth0");
    uplink.observed("192.168.0.2 > 10.171.77.30").find(failures);
    let path = netpath_cases::want(PathExact).packet(1).request().netns("host");
    path.missing("nat:postrouting:rule:1").find(failures);
}
