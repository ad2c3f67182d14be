//! Issue 12 scenarios 1 and 2: Docker's dual-stack bridge (IPv6 through Docker's ip6tables chains
//! and MASQUERADE for the ULA prefix, the reply translated back; the same probe over IPv4) and a
//! port published over IPv6. The scenario files hold the expectations; these tests run them and
//! prove they can fail.

use netpath::Backend;
use netpath::FailureKind;
use netpath::Scenario;
use netpath::scenario::ConntrackProto;
use netpath::testing::{hook, want};
use netpath_cases::load;
use rstest::rstest;

/// The bundled scenario `stem` without the lines of its host's ip6tables ruleset that contain
/// `needle` (checked to remove something: a twin whose edit missed would pass for nothing).
fn without_ip6tables_lines(stem: &str, needle: &str) -> Scenario {
    let mut sc = load(stem);
    let host = sc.netns_mut("host").expect("netns host");
    let rules = host.ip6tables.take().expect("an ip6tables ruleset");
    let without = netpath_cases::without_lines(&rules, needle);
    assert_ne!(rules, without, "the edit changed nothing");
    host.ip6tables = Some(without);
    sc
}

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
    let sc = without_ip6tables_lines("ipv6-docker-dual-stack", "-j MASQUERADE");

    let o = netpath_cases::run_or_return!(&sc, backend);
    let (v6, v4) = (&o.probes[0], &o.probes[1]);
    let uplink = want(FailureKind::Header).packet(1).request().at("host/eth0").find(&v6.failures);
    assert_eq!(uplink.observed.as_deref(), Some("fd00:dead:beef::2 > 2001:db8::30"), "{uplink:#?}");
    let last = want(FailureKind::PathLast).packet(1).request().netns("host").find(&v6.failures);
    assert_eq!(last.unexpected, [hook("nat:POSTROUTING:policy:1")], "{last:#?}");
    want(FailureKind::NoReply).packet(1).find(&v6.failures);
    assert!(v4.failures.is_empty(), "{:#?}", v4.failures);
}

/// Issue 12 scenario 2: external → [host]:8080 DNATed to [container]:80 by Docker's ip6tables
/// chains, the SYN-ACK back from [host]:8080, the conntrack entry with both tuples.
#[rstest]
fn a_published_port_is_reached_over_ipv6(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    netpath_cases::assert_passes(&load("ipv6-port-mapping"), backend);
}

/// Without the ip6tables DNAT rule nothing listens on [host]:8080: the SYN meets no DOCKER
/// rule, the container never sees it, and there is no conntrack entry with the container's tuple.
#[rstest]
fn without_the_ipv6_dnat_rule_the_container_is_never_reached(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let sc = without_ip6tables_lines("ipv6-port-mapping", "-j DNAT");

    let o = netpath_cases::run_or_return!(&sc, backend);
    let failures = &o.probes[0].failures;
    want(FailureKind::NotSeen).packet(1).request().at("c1/eth0").find(failures);
    let path = want(FailureKind::PathIncludes).packet(1).request().netns("host").find(failures);
    assert_eq!(path.missing, [hook("nat:DOCKER:rule:2")], "{path:#?}");
    want(FailureKind::Conntrack).netns("host").find(failures);
}

/// The IPv6 ping's `[[probe.conntrack]] proto = "icmpv6"` entry: it loads, holds against the
/// host's real ICMPv6 entry, and fails by kind when its original tuple names another source or
/// when it asks for another protocol with the same tuple.
#[test]
fn an_icmpv6_conntrack_entry_holds_and_a_wrong_tuple_or_protocol_fails() {
    let sc = load("ipv6-docker-dual-stack");
    let entry = &sc.probe[0].conntrack[0];
    assert_eq!(entry.proto, Some(ConntrackProto::Icmpv6), "{entry:?}");
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    assert!(o.probes[0].failures.is_empty(), "{:#?}", o.probes[0].failures);

    let mut twin = sc.clone();
    let right = twin.probe[0].conntrack[0].clone();
    let mut wrong_source = right.clone();
    wrong_source.orig.src = Some("fd00:dead:beef::99".parse().unwrap());
    let wrong_proto = netpath::scenario::ConntrackExpect { proto: Some(ConntrackProto::Tcp), ..right };
    twin.probe[0].conntrack = vec![wrong_source, wrong_proto];
    let o = netpath_cases::run_or_return!(&twin, Backend::Legacy);
    let failures = &o.probes[0].failures;
    assert_eq!(failures.len(), 2, "only the two conntrack entries fail: {failures:#?}");
    let source = want(FailureKind::Conntrack).netns("host").find(failures);
    assert!(source.expected.as_deref().is_some_and(|e| e.starts_with("proto = \"icmpv6\", orig = ")), "{source:#?}");
    // The real entry was there, with the container's own address: only the tuple was wrong.
    let observed = source.observed.as_deref().unwrap_or_default();
    assert!(observed.contains("icmpv6") && observed.contains("src=fd00:dead:beef::2 "), "{source:#?}");
    assert!(
        failures[1].expected.as_deref().is_some_and(|e| e.starts_with("proto = \"tcp\", orig = ")),
        "{failures:#?}"
    );
    assert_eq!(failures[1].kind, FailureKind::Conntrack);
}
