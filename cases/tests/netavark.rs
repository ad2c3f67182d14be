//! Podman's netavark against lab namespaces: `netavark setup` of a bridge network with a port
//! mapping, masquerade out and the published port in, `netavark teardown` removing its rules.

use netpath::Backend;
use netpath_cases::{assert_step_output, edit_step_stdin, load, named_saying, run_or_return, starting, without_step};

const SCENARIO: &str = "netavark-bridge-portmap";
const MASQ_CHAIN: &str = "NETAVARK-3AD4160B8F9EA";
const DNAT_CHAIN: &str = "NETAVARK-DN-3AD4160B8F9EA";

#[test]
fn netavark_masquerades_publishes_and_teardown_removes_its_rules() {
    let sc = load(SCENARIO);
    let o = run_or_return!(&sc, Backend::Nft);
    assert!(o.passed(), "\n{}", netpath::output::report::outcome(&o, true));
    assert!(o.setup.handles.values().any(|h| h == "host/peer:c1/eth0"), "{:?}", o.setup.handles);
    assert_step_output(&o, "rules-after-teardown", &["*nat", "*filter", "NETAVARK-HOSTPORT-DNAT"], false);
    assert_step_output(&o, "rules-after-teardown", &[MASQ_CHAIN, DNAT_CHAIN, "10.89.0.0/24", "10.89.0.2"], true);
}

/// The twin of the teardown check: without `netavark teardown` its chains are still there.
#[test]
fn without_teardown_netavark_chains_stay() {
    let mut sc = load(SCENARIO);
    without_step(&mut sc, "netavark-teardown");
    let o = run_or_return!(&sc, Backend::Nft);
    assert_step_output(&o, "rules-after-teardown", &[MASQ_CHAIN, DNAT_CHAIN], false);
}

/// A port mapping to the wrong container port: the DNAT still happens, and the hop into c1's
/// veth shows the port it went to.
#[test]
fn a_wrong_container_port_is_seen_at_the_containers_veth() {
    let mut sc = load(SCENARIO);
    for step in ["netavark-setup", "netavark-teardown"] {
        edit_step_stdin(&mut sc, step, |json| json.replace(r#""container_port": 80"#, r#""container_port": 81"#));
    }
    let o = run_or_return!(&sc, Backend::Nft);
    let failures = &o.probes[1].failures;
    named_saying(failures, "answers from c1", &["got 0"]);
    let hop = starting(failures, "addresses of packet 1 request at host/peer:c1/eth0 (");
    assert!(
        hop.detail.ends_with("expected 10.171.77.30 > 10.89.0.2:80, observed 10.171.77.30 > 10.89.0.2:81"),
        "{}",
        hop.detail
    );
}
