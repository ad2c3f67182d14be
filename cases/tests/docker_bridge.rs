//! Seed 000 §3 and §4: container to container across docker0, and the host's own pings to a
//! container and to an external host. The scenario files hold the expectations; these tests
//! break one thing each and check that the expectation it matters to fails, naming the hop.

use netpath::Backend;
use netpath::verdict::expect::FailureKind::{self, *};
use netpath_cases::{edit_iptables, hook, load, want, want_any, without_lines};
use rstest::rstest;

/// Without FORWARD rule 6 (`-i docker0 -o docker0 -j ACCEPT`) the bridged request meets the
/// FORWARD policy DROP: br_netfilter really puts filter FORWARD on the bridged path, and the
/// exact path names where it ended.
#[rstest]
fn c2c_without_forward_rule_6_the_bridged_request_is_dropped(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("docker-container-to-container");
    edit_iptables(&mut sc, "host", |r| without_lines(r, "-A FORWARD -i docker0 -o docker0 -j ACCEPT"));
    // The entries saying later packets never meet rule 6 name the rule this twin removed: a
    // `never` that matches nothing is refused at load, and they are not what this twin is about.
    for e in &mut sc.probe[0].path {
        e.never.retain(|p| p.to_string() != "filter:FORWARD:rule:6");
    }
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    want(PathExact)
        .packet(1)
        .request()
        .netns("host")
        .missing("filter:FORWARD:rule:6")
        .unexpected("filter:FORWARD:policy:6")
        .missing("eb:nat:POSTROUTING")
        .find(f);
    want(NotSeen).packet(1).request().at("c2/eth0").find(f);
    want(NoReply).packet(1).find(f);
}

/// With bridge-nf-call-iptables=0 the bridged frames meet the ebtables chains only: every
/// iptables hook of the expected path is missing, and the ping still works (nothing filters).
#[rstest]
fn c2c_without_br_netfilter_no_iptables_chain_sees_the_bridged_frames(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("docker-container-to-container");
    let host = sc.netns_mut("host").unwrap();
    host.sysctls.insert("net.bridge.bridge-nf-call-iptables".into(), "0".into());
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    want_any(&[NoReply, UnexpectedReply]).assert_none(f);
    let path = want(PathExact).packet(1).request().netns("host").find(f);
    for gone in
        ["raw:PREROUTING:policy:2", "nat:PREROUTING:policy:2", "filter:FORWARD:rule:6", "nat:POSTROUTING:policy:2"]
    {
        assert!(path.missing.contains(&hook(gone)), "{gone}: {path:#?}");
    }
    for kept in ["eb:nat:PREROUTING", "eb:filter:FORWARD", "eb:nat:POSTROUTING"] {
        assert!(path.hooks.contains(&hook(kept)) && !path.missing.contains(&hook(kept)), "{kept}: {path:#?}");
    }
    // Packets 2 and 3 no longer reach FORWARD rule 3 either.
    want(PathIncludes).packet(2).request().netns("host").missing("filter:FORWARD:rule:3").find(f);
    // Addresses and MACs are unchanged whatever the iptables chains do.
    want_any(&FailureKind::ADDRESS).assert_none(f);
}

/// An ebtables rule dropping ICMP in the filter OUTPUT chain of docker0 stops the host's ping to
/// c1 at eb:filter:OUTPUT, which proves the request goes down through the bridge's chains; the
/// ping to the external host is untouched, which proves it never meets them.
#[rstest]
fn host_pings_die_in_ebtables_output_only_through_docker0(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("docker-host-to-container");
    sc.netns_mut("host").unwrap().ebtables = Some("*filter\n-A OUTPUT -p IPv4 --ip-proto icmp -j DROP\n".into());
    let o = netpath_cases::run_or_return!(&sc, backend);
    let to_c1 = &o.probes[0];
    assert_eq!(to_c1.name, "host-to-c1");
    want(PathExact)
        .packet(1)
        .request()
        .netns("host")
        .observing("eb:filter:OUTPUT")
        .missing("eb:nat:OUTPUT")
        .missing("eb:nat:POSTROUTING")
        .find(&to_c1.failures);
    want(NotSeen).packet(1).request().at("c1/eth0").find(&to_c1.failures);
    want(NoReply).packet(1).find(&to_c1.failures);
    let to_ext = &o.probes[1];
    assert_eq!(to_ext.name, "host-to-external");
    assert!(to_ext.failures.is_empty(), "{:#?}", to_ext.failures);
}

/// A MASQUERADE rule without `-s 192.168.0.0/20` catches the host's own ping too. The source on
/// the wire is 10.171.77.2 either way (MASQUERADE picks eth0's address), so only the path tells
/// the policy from the rule: the exact path fails, the address expectation does not.
#[rstest]
fn host_to_external_masquerade_for_all_shows_in_the_path_not_the_address(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("docker-host-to-container");
    edit_iptables(&mut sc, "host", |r| {
        r.replace(
            "-A POSTROUTING -s 192.168.0.0/20 ! -o docker0 -j MASQUERADE",
            "-A POSTROUTING ! -o docker0 -j MASQUERADE",
        )
    });
    let o = netpath_cases::run_or_return!(&sc, backend);
    assert!(o.probes[0].failures.is_empty(), "host-to-c1 goes out docker0: {:#?}", o.probes[0].failures);
    let f = &o.probes[1].failures;
    assert_eq!(f.len(), 1, "{f:#?}");
    want(PathExact)
        .packet(1)
        .request()
        .netns("host")
        .missing("nat:POSTROUTING:policy:2")
        .unexpected("nat:POSTROUTING:rule:1")
        .find(f);
}

/// The `never = ["eb"]` of host-to-external is not vacuous: the same expectations on a ping
/// that leaves through docker0 fail on it, naming the ebtables chains met.
#[rstest]
fn host_to_external_never_eb_catches_a_packet_through_docker0(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("docker-host-to-container");
    let probe = sc.probe_mut("host-to-external").unwrap();
    probe.to = "192.168.0.3".parse().unwrap();
    probe.addr.clear();
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[1].failures;
    let never = want(PathNever).packet(1).request().netns("host").expected("eb").find(f);
    let met = ["eb:filter:OUTPUT", "eb:nat:OUTPUT", "eb:nat:POSTROUTING"].map(hook);
    assert!(never.unexpected.starts_with(&met), "{never:#?}");
}
