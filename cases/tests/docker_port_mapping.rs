//! `docker run -p 8080:80` (seed 000 + catalogue 5e): the expectations of the scenario file must
//! fail when the DNAT rule is gone, and the crafted SYN's path must differ when it misses the
//! published port.

use netpath::Backend;
use netpath::verdict::expect::FailureKind::*;
use netpath_cases::{load, want};
use rstest::rstest;

#[rstest]
fn without_the_dnat_rule_nothing_reaches_the_container(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("docker-port-mapping");
    netpath_cases::edit_iptables(&mut sc, "host", |r| netpath_cases::without_lines(r, "-j DNAT"));
    let o = netpath_cases::run_or_return!(&sc, backend);
    let tcp = &o.probes[0].failures;
    want(NotSeen).packet(1).request().at("host/veth0594f4b").find(tcp);
    want(Answers).answered_by("c1").find(tcp);
    want(Conntrack).netns("host").find(tcp);
}

#[rstest]
fn a_crafted_syn_to_another_port_takes_another_path(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("docker-port-mapping");
    sc.probe_mut("crafted-syn").unwrap().port = Some(8081);
    let o = netpath_cases::run_or_return!(&sc, backend);
    assert!(o.probes[0].failures.is_empty(), "the kernel-sent SYN is unchanged: {:#?}", o.probes[0].failures);
    let f = &o.probes[1].failures;
    want(PathExact).packet(1).request().netns("host").missing("nat:DOCKER:rule:2").find(f);
}
