//! `docker run -p 8080:80` (seed 000 + catalogue 5e): the expectations of the scenario file must
//! fail when the DNAT rule is gone, and the crafted SYN's path must differ when it misses the
//! published port.

use netpath::Backend;
use netpath_cases::load;
use rstest::rstest;

#[rstest]
fn without_the_dnat_rule_nothing_reaches_the_container(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("docker-port-mapping");
    netpath_cases::edit_iptables(&mut sc, "host", |r| netpath_cases::without_lines(r, "-j DNAT"));
    let o = netpath_cases::run_or_return!(&sc, backend);
    let tcp = &o.probes[0].failures;
    let whats: Vec<&str> = tcp.iter().map(|f| f.what.as_str()).collect();
    assert!(whats.contains(&"addresses of packet 1 request at host/veth0594f4b"), "{whats:#?}");
    assert!(whats.contains(&"answers from c1"), "{whats:#?}");
    assert!(whats.contains(&"conntrack entry in netns host"), "{whats:#?}");
    let veth = tcp.iter().find(|f| f.what == "addresses of packet 1 request at host/veth0594f4b").unwrap();
    assert!(veth.detail.ends_with("observed not seen"), "{}", veth.detail);
}

#[rstest]
fn a_crafted_syn_to_another_port_takes_another_path(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load("docker-port-mapping");
    sc.probe_mut("crafted-syn").unwrap().port = Some(8081);
    let o = netpath_cases::run_or_return!(&sc, backend);
    assert!(o.probes[0].failures.is_empty(), "the kernel-sent SYN is unchanged: {:#?}", o.probes[0].failures);
    let f = &o.probes[1].failures;
    let path = f
        .iter()
        .find(|f| f.what.starts_with("path of packet 1 request in netns host (exact)"))
        .unwrap_or_else(|| panic!("{f:#?}"));
    assert!(path.detail.contains("- nat:DOCKER:rule:2"), "{}", path.detail);
}
