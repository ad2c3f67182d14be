//! The real CNI plugins (bridge + portmap, chained as a runtime chains them) against lab
//! namespaces: masquerade out, the published port in, and DEL removing what ADD wrote.

use netpath::Backend;
use netpath_cases::{
    assert_step_output, assert_unanswered_without, edit_step_stdin, load, named_saying, run_or_return, starting,
    step_mut, without_step,
};

const SCENARIO: &str = "cni-bridge-portmap";
/// The bridge plugin's ipMasq chain and portmap's per-container DNAT chain: their names hash
/// the network name and container id the scenario gives.
const MASQ_CHAIN: &str = "CNI-386b7ec1f98ec02644acbf15";
const DNAT_CHAIN: &str = "CNI-DN-386b7ec1f98ec02644acb";

#[test]
fn cni_plugins_masquerade_publish_and_del_removes_their_rules() {
    let sc = load(SCENARIO);
    let o = run_or_return!(&sc, Backend::Nft);
    assert!(o.passed(), "\n{}", netpath::output::report::outcome(&o, true));
    // The handle named the plugin's random host veth.
    let real = o.setup.handles.iter().find(|(_, h)| *h == "host/peer:c1/eth0").map(|(r, _)| r.clone());
    assert!(real.as_deref().is_some_and(|r| r.starts_with("host/veth")), "{:?}", o.setup.handles);
    // The plugins' rules were in nf_tables, and traced there.
    assert!(o.setup.backends["host"].nft > 0 && o.setup.backends["host"].legacy == 0, "{:?}", o.setup.backends);
    assert_step_output(&o, "nat-after-del", &["*nat", "CNI-HOSTPORT-DNAT"], false);
    assert_step_output(&o, "nat-after-del", &[MASQ_CHAIN, DNAT_CHAIN, "id: \\\"netpath-c1\\\"", "10.88.0.2"], true);
}

/// The twin of the DEL check: without DEL the plugins' chains are still there when the check
/// step runs, so the check above can fail.
#[test]
fn without_del_the_plugins_chains_stay() {
    let mut sc = load(SCENARIO);
    without_step(&mut sc, "cni-del");
    let o = run_or_return!(&sc, Backend::Nft);
    assert_step_output(&o, "nat-after-del", &[MASQ_CHAIN, DNAT_CHAIN], false);
}

#[test]
fn without_ip_masq_the_uplink_hop_shows_the_container_address() {
    let mut sc = load(SCENARIO);
    for step in ["cni-add", "cni-del"] {
        edit_step_stdin(&mut sc, step, |conf| conf.replace(r#""ipMasq": true"#, r#""ipMasq": false"#));
    }
    let o = run_or_return!(&sc, Backend::Nft);
    assert!(!o.passed());
    let failures = &o.probes[0].failures;
    named_saying(
        failures,
        "addresses of packet 1 request at host/eth0",
        &["expected 10.171.77.2 > 10.171.77.30, observed 10.88.0.2 > 10.171.77.30"],
    );
    // The jump to the plugin's chain is not there: POSTROUTING ends at its policy.
    let path = named_saying(
        failures,
        "path of packet 1 request in netns host (includes, in order)",
        &["`nat:POSTROUTING:rule:2` not found", "nat:POSTROUTING:policy:2"],
    );
    assert!(!path.detail.contains(MASQ_CHAIN), "{}", path.detail);
    // The published port does not depend on ipMasq.
    assert!(o.probes[1].failures.is_empty(), "{:#?}", o.probes[1].failures);
}

#[test]
fn without_portmap_the_host_port_leads_nowhere() {
    let mut sc = load(SCENARIO);
    let add = step_mut(&mut sc, "cni-add");
    let script = add.args[1].clone();
    let (bridge_only, _) = script.split_once("printf").expect("the ADD script chains portmap after bridge");
    add.args[1] = format!("{bridge_only}printf '%s' \"$result\"\n");
    let o = run_or_return!(&sc, Backend::Nft);
    // c1 is still masqueraded; only portmap's CNI-HOSTPORT-MASQ hop of its path is missing.
    let out = &o.probes[0].failures;
    assert_eq!(out.len(), 1, "{out:#?}");
    named_saying(
        out,
        "path of packet 1 request in netns host (includes, in order)",
        &["`nat:CNI-HOSTPORT-MASQ:return:2` not found"],
    );
    let failures = &o.probes[1].failures;
    assert_unanswered_without(failures, "c1", "host", "nat:PREROUTING:rule:1");
    // No nat chain at all: the SYN is for the host itself, which has no listener. Reports name
    // the handle beside the plugin's name for the interface.
    let at_handle = starting(failures, "addresses of packet 1 request at host/peer:c1/eth0 (veth");
    assert!(at_handle.detail.contains("observed not seen"), "{}", at_handle.detail);
}
