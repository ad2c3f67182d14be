//! A kube-proxy-style ruleset whose `-m nfacct` and `-m set` matches need objects a before-rules
//! step creates: with the steps it loads and routes, without them the error names the rule and
//! its line in the scenario file, under both backends.

use netpath::{Backend, RunOptions};
use netpath_cases::{check, line_of, load, named_saying, run_or_return, scenario_path, step_mut, without_step};
use rstest::rstest;

const SCENARIO: &str = "kube-proxy-nfacct-ipset";
const NFACCT_RULE: &str =
    "-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP";
const SET_RULE: &str = "-A KUBE-FORWARD -m set --match-set KUBE-ENDPOINTS dst -j ACCEPT";

/// The error of running `sc`, which must not run.
fn error_of(sc: &netpath::Scenario, backend: Backend) -> Option<String> {
    check(sc, backend).ok()?;
    match netpath::run(sc, backend, &RunOptions::default()) {
        Ok(o) => panic!("ran:\n{}", netpath::report::outcome(&o, true)),
        Err(e) => Some(e.to_string()),
    }
}

#[rstest]
fn without_the_counter_the_error_names_the_nfacct_rule_and_its_line(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    netpath_cases::require_root();
    let mut sc = load(SCENARIO);
    without_step(&mut sc, "nfacct-counter");
    let Some(e) = error_of(&sc, backend) else { return };
    let at = format!(
        "{}:{}: netns node: ",
        scenario_path(SCENARIO).display(),
        line_of(&scenario_path(SCENARIO), NFACCT_RULE)
    );
    assert!(e.starts_with(&at), "want `{at}...`, got:\n{e}");
    assert!(e.contains(&format!("`{NFACCT_RULE}`")), "{e}");
    assert!(e.contains("`nfacct add ct_state_invalid_dropped_pkts`"), "{e}");
    let tool = if backend == Backend::Legacy { "iptables-legacy-restore" } else { "iptables-nft-restore" };
    assert!(e.contains(&format!("{tool} rejected")), "{e}");
}

#[rstest]
fn without_the_set_the_error_names_the_set_rule_and_its_line(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    netpath_cases::require_root();
    let mut sc = load(SCENARIO);
    without_step(&mut sc, "endpoints-set-member");
    without_step(&mut sc, "endpoints-set");
    let Some(e) = error_of(&sc, backend) else { return };
    let at =
        format!("{}:{}: netns node: ", scenario_path(SCENARIO).display(), line_of(&scenario_path(SCENARIO), SET_RULE));
    assert!(e.starts_with(&at), "want `{at}...`, got:\n{e}");
    assert!(e.contains("Set KUBE-ENDPOINTS doesn't exist"), "{e}");
    assert!(e.contains("`ipset create KUBE-ENDPOINTS TYPE`"), "{e}");
}

/// The set's content decides: with another endpoint in it, the SYN falls to FORWARD's DROP.
#[rstest]
fn an_endpoint_missing_from_the_set_is_dropped(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load(SCENARIO);
    let member = step_mut(&mut sc, "endpoints-set-member");
    member.args[2] = "192.168.5.9".into();
    let o = run_or_return!(&sc, backend);
    let failures = &o.probes[0].failures;
    named_saying(failures, "answers from ep", &["got 0"]);
    named_saying(
        failures,
        "path of packet 1 request in netns node (includes, in order)",
        &["`filter:KUBE-FORWARD:rule:2` not found"],
    );
}
