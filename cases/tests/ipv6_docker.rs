//! Issue 12 scenario 1: Docker's dual-stack bridge. The scenario file holds the expectations
//! (IPv6 through Docker's ip6tables chains and MASQUERADE for the ULA prefix, the reply
//! translated back; the same probe over IPv4); these tests run it and prove it can fail.

use netpath::Backend;
use netpath_cases::load;
use rstest::rstest;

#[rstest]
fn the_container_reaches_the_external_host_over_both_families(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    netpath_cases::assert_passes(&load("ipv6-docker-dual-stack"), backend);
}

/// Without the ip6tables MASQUERADE rule the IPv6 request leaves the host with the container's
/// ULA address and no reply comes back; the IPv4 probe, whose iptables rule stays, still passes.
#[rstest]
fn without_the_ipv6_masquerade_only_the_ipv6_probe_fails_at_the_uplink(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = load("ipv6-docker-dual-stack");
    let host = sc.netns_mut("host").expect("netns host");
    let rules = host.ip6tables.take().expect("an ip6tables ruleset");
    let without = netpath_cases::without_lines(&rules, "-j MASQUERADE");
    assert_ne!(rules, without, "the edit changed nothing");
    host.ip6tables = Some(without);

    let o = netpath_cases::run_or_return!(&sc, backend);
    let (v6, v4) = (&o.probes[0], &o.probes[1]);
    let uplink = netpath_cases::named(&v6.failures, "addresses of packet 1 request at host/eth0");
    assert!(uplink.detail.ends_with("observed fd00:dead:beef::2 > 2001:db8::30"), "{}", uplink.detail);
    let last = netpath_cases::named(&v6.failures, "path of packet 1 request in netns host (last hook)");
    assert!(last.detail.contains("it was nat:POSTROUTING:policy:1"), "{}", last.detail);
    assert!(v6.failures.iter().any(|f| f.what == "packet 1: a reply"), "{:#?}", v6.failures);
    assert!(v4.failures.is_empty(), "{:#?}", v4.failures);
}
