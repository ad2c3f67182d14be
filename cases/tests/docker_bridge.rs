//! Seed 000 §3 and §4: container to container across docker0, and the host's own pings to a
//! container and to an external host. The scenario files hold the expectations; these tests
//! break one thing each and check that the expectation it matters to fails, naming the hop.

use netpath::Backend;
use netpath_cases::{edit_iptables, load, named, named_saying};
use rstest::rstest;

fn without_line(rules: &str, line: &str) -> String {
    rules.lines().filter(|l| *l != line).map(|l| format!("{l}\n")).collect()
}

/// Without FORWARD rule 6 (`-i docker0 -o docker0 -j ACCEPT`) the bridged request meets the
/// FORWARD policy DROP: br_netfilter really puts filter FORWARD on the bridged path, and the
/// exact path names where it ended.
#[rstest]
fn c2c_without_forward_rule_6_the_bridged_request_is_dropped(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("docker-container-to-container");
    edit_iptables(&mut sc, "host", |r| without_line(r, "-A FORWARD -i docker0 -o docker0 -j ACCEPT"));
    let o = netpath_cases::run_or_return!(&sc, backend);
    let f = &o.probes[0].failures;
    named_saying(
        f,
        "path of packet 1 request in netns host (exact)",
        &["  - filter:FORWARD:rule:6", "  + filter:FORWARD:policy:6", "  - eb:nat:POSTROUTING"],
    );
    let c2 = named(f, "addresses of packet 1 request at c2/eth0");
    assert!(c2.detail.ends_with("observed not seen"), "{}", c2.detail);
    named(f, "packet 1: a reply");
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
    assert!(!f.iter().any(|f| f.what.contains("a reply")), "{f:#?}");
    let path = named(f, "path of packet 1 request in netns host (exact)");
    for gone in
        ["raw:PREROUTING:policy:2", "nat:PREROUTING:policy:2", "filter:FORWARD:rule:6", "nat:POSTROUTING:policy:2"]
    {
        assert!(path.detail.contains(&format!("  - {gone}")), "{gone}: {}", path.detail);
    }
    for kept in ["eb:nat:PREROUTING", "eb:filter:FORWARD", "eb:nat:POSTROUTING"] {
        assert!(path.detail.contains(&format!("    {kept}")), "{kept}: {}", path.detail);
    }
    // Packets 2 and 3 no longer reach FORWARD rule 3 either.
    named_saying(
        f,
        "path of packet 2 request in netns host (includes, in order)",
        &["`filter:FORWARD:rule:3` not found in order"],
    );
    // Addresses and MACs are unchanged whatever the iptables chains do.
    assert!(!f.iter().any(|f| f.what.starts_with("addresses")), "{f:#?}");
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
    named_saying(
        &to_c1.failures,
        "path of packet 1 request in netns host (exact)",
        &["    eb:filter:OUTPUT", "  - eb:nat:OUTPUT", "  - eb:nat:POSTROUTING"],
    );
    let c1 = named(&to_c1.failures, "addresses of packet 1 request at c1/eth0");
    assert!(c1.detail.ends_with("observed not seen"), "{}", c1.detail);
    named(&to_c1.failures, "packet 1: a reply");
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
    named_saying(
        f,
        "path of packet 1 request in netns host (exact)",
        &["  - nat:POSTROUTING:policy:2", "  + nat:POSTROUTING:rule:1"],
    );
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
    let never = named(f, "path of packet 1 request in netns host (never eb)");
    assert!(
        never.detail.starts_with("visited eb:filter:OUTPUT, eb:nat:OUTPUT, eb:nat:POSTROUTING"),
        "{}",
        never.detail
    );
}
