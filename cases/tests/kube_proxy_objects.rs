//! A kube-proxy-style ruleset whose `-m nfacct` and `-m set` matches need objects a before-rules
//! step creates: with the steps it loads and routes, without them the error names the rule and
//! its line in the scenario file, under both backends.

use netpath::{Backend, RunOptions};
use netpath_cases::{
    assert_unanswered_without, check, line_of, load, run_or_return, scenario_path, step_mut, without_step,
};
use rstest::rstest;

const SCENARIO: &str = "kube-proxy-nfacct-ipset";
const NFACCT_RULE: &str =
    "-A KUBE-FORWARD -m conntrack --ctstate INVALID -m nfacct --nfacct-name ct_state_invalid_dropped_pkts -j DROP";
const SET_RULE: &str = "-A KUBE-FORWARD -m set --match-set KUBE-ENDPOINTS dst -j ACCEPT";

/// The error of running `sc`, which must not run.
fn error_of(sc: &netpath::Scenario, backend: Backend) -> Option<String> {
    check(sc, backend).ok()?;
    match netpath::run(sc, backend, &RunOptions::default()) {
        Ok(o) => panic!("ran:\n{}", netpath::output::report::outcome(&o, true)),
        Err(e) => Some(e.to_string()),
    }
}

/// The error of `sc` without `steps`: at the file line of `rule`, naming it and saying `says`.
fn assert_rejected_at(backend: Backend, steps: &[&str], rule: &str, says: &[&str]) {
    netpath_cases::require_root();
    let mut sc = load(SCENARIO);
    for step in steps {
        without_step(&mut sc, step);
    }
    let Some(e) = error_of(&sc, backend) else { return };
    let path = scenario_path(SCENARIO);
    let at = format!("{}:{}: netns node: ", path.display(), line_of(&path, rule));
    assert!(e.starts_with(&at), "want `{at}...`, got:\n{e}");
    let tool = if backend == Backend::Legacy { "iptables-legacy-restore" } else { "iptables-nft-restore" };
    assert!(e.contains(&format!("{tool} rejected `{rule}`")), "{e}");
    for s in says {
        assert!(e.contains(s), "no `{s}` in:\n{e}");
    }
}

#[rstest]
fn without_the_counter_the_error_names_the_nfacct_rule_and_its_line(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    assert_rejected_at(backend, &["nfacct-counter"], NFACCT_RULE, &["`nfacct add ct_state_invalid_dropped_pkts`"]);
}

#[rstest]
fn without_the_set_the_error_names_the_set_rule_and_its_line(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let says = ["Set KUBE-ENDPOINTS doesn't exist", "`ipset create KUBE-ENDPOINTS TYPE`"];
    assert_rejected_at(backend, &["endpoints-set-member", "endpoints-set"], SET_RULE, &says);
}

/// The set's content decides: with another endpoint in it, the SYN falls to FORWARD's DROP.
#[rstest]
fn an_endpoint_missing_from_the_set_is_dropped(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = load(SCENARIO);
    let member = step_mut(&mut sc, "endpoints-set-member");
    member.args[2] = "192.168.5.9".into();
    let o = run_or_return!(&sc, backend);
    assert_unanswered_without(&o.probes[0].failures, "ep", "node", "filter:KUBE-FORWARD:rule:2");
}
