//! Issue 12 scenario 3: a Kubernetes dual-stack Service. The IPv6 ClusterIP fd00:10:96::a (and
//! the IPv4 ClusterIP 10.96.0.10 of the same Service) balanced by kube-proxy's `statistic` DNAT
//! over two endpoints. The scenario file holds the expectations; these tests run it, prove its
//! per-endpoint entries fail when the ip6tables chains break, and record it.

use netpath::Backend;
use netpath::FailureKind;
use netpath::Scenario;
use netpath::testing::{hook, want};
use netpath_cases::{load, record, without_expectations};
use rstest::rstest;

const STEM: &str = "ipv6-k8s-service";

/// The bundled scenario without the lines of node's ip6tables ruleset that contain `needle`
/// (checked to remove exactly one line: a twin whose edit missed would pass for nothing).
fn without_ip6tables_line(needle: &str) -> Scenario {
    let mut sc = load(STEM);
    let node = sc.netns_mut("node").expect("netns node");
    let rules = node.ip6tables.take().expect("an ip6tables ruleset");
    let without = netpath_cases::without_lines(&rules, needle);
    assert_eq!(rules.lines().count(), without.lines().count() + 1, "the edit must remove one line");
    node.ip6tables = Some(without);
    sc
}

/// The IPv6 probe with fewer connections and a short timeout (the connections the twins break
/// would each wait out the full one), each endpoint needed once: 30 connections all miss one
/// endpoint of a working split with probability 2^-29.
fn quick_v6(sc: &mut Scenario, count: u16) {
    let p = &mut sc.probe[0];
    assert_eq!(p.name, "cluster-ip-v6");
    p.count = count;
    p.timeout_ms = 300;
    p.answered_by = [("ep1".to_string(), 1), ("ep2".to_string(), 1)].into();
}

#[rstest]
fn both_endpoints_answer_both_cluster_ips(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    netpath_cases::assert_passes(&load(STEM), backend);
}

/// Without the DNAT of ep2's KUBE-SEP chain, the connections the split sends there leave it
/// untranslated (to the ClusterIP, which nothing routes): ep2 never answers, ep1 still does, and
/// the IPv4 Service, whose iptables chains are whole, is unaffected.
#[rstest]
fn without_the_second_sep_dnat_only_one_endpoint_answers(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = without_ip6tables_line("--to-destination [fd00:10:244:1::3]:8080");
    quick_v6(&mut sc, 30);

    let o = netpath_cases::run_or_return!(&sc, backend);
    let (v6, v4) = (&o.probes[0], &o.probes[1]);
    want(FailureKind::Answers).answered_by("ep2").observed("0").find(&v6.failures);
    want(FailureKind::Answers).answered_by("ep1").assert_none(&v6.failures);
    // The lost connections were never DNATed: none of them reached an endpoint.
    let lost = v6.failures.iter().filter(|f| f.kind == FailureKind::NoReply);
    for f in lost {
        assert!(f.seen_at.iter().all(|p| p.netns != "ep2"), "{f:#?}");
    }
    assert!(v4.failures.is_empty(), "{:#?}", v4.failures);
}

/// Without PREROUTING's jump to KUBE-SERVICES nothing translates the IPv6 ClusterIP: no
/// connection is answered, none is seen at either endpoint, and the trace shows the request
/// meeting only nat PREROUTING's policy.
#[rstest]
fn without_the_kube_services_jump_the_cluster_ip_is_never_translated(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let mut sc = without_ip6tables_line("-A PREROUTING -m comment --comment \"kubernetes service portals\"");
    quick_v6(&mut sc, 4);

    let o = netpath_cases::run_or_return!(&sc, backend);
    let (v6, v4) = (&o.probes[0], &o.probes[1]);
    for ep in ["ep1", "ep2"] {
        want(FailureKind::Answers).answered_by(ep).observed("0").find(&v6.failures);
    }
    for n in 1..=4 {
        let f = want(FailureKind::NoReply).packet(n).find(&v6.failures);
        assert!(f.seen_at.iter().all(|p| p.netns != "ep1" && p.netns != "ep2"), "{f:#?}");
        assert_eq!(f.last_hooks.get("node"), Some(&hook("nat:PREROUTING:policy:1")), "{f:#?}");
        let path = want(FailureKind::PathIncludes).packet(n).request().netns("node").find(&v6.failures);
        assert_eq!(path.missing, [hook("nat:PREROUTING:rule:1")], "{path:#?}");
    }
    want(FailureKind::Conntrack).netns("node").find(&v6.failures);
    assert!(v4.failures.is_empty(), "{:#?}", v4.failures);
}

/// `netpath record` of the Service without its expectations: the recording pins no port the
/// kernel chose and no endpoint per connection, and passes when run again under both backends.
#[test]
fn a_recording_of_the_service_passes_again() {
    let bare = without_expectations(&load(STEM));
    let (recorded, warnings) = record(&bare);
    assert!(warnings.is_empty(), "{warnings:?}");
    let text = recorded.to_toml();
    for line in text.lines().filter(|l| l.contains("port = ")) {
        assert!(
            // 80 and 8080: the service's and the endpoints'; 81: the other-port probes' own.
            line.ends_with("port = 80")
                || line.ends_with("port = 81")
                || line.ends_with("port = 8080")
                || line.ends_with("\"kept\""),
            "a pinned port: {line}\n{text}"
        );
    }
    for b in [Backend::Legacy, Backend::Nft] {
        netpath_cases::assert_passes(&recorded, b);
    }
}
