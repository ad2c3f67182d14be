//! `netpath mutate` on real rulesets: a router that forwards a LAN's pings and their replies.
//! Without an expectation on the request's path, removing the conntrack match or swapping the
//! two rules changes nothing the probe checks: both mutants survive, named with the probe that
//! met them. With the path expectation those two ask for, both are killed. A mutant whose ruleset
//! the kernel refuses is an error, not a kill; a rule no packet met is unexercised, not run.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::Path;

use netpath::mutate::{ScenarioScore, Settings, Status, mutate_scenario};
use netpath::{Backend, RunOptions, Scenario};
use netpath_cases::require_root;
use rstest::rstest;

fn router(rules: &str, path: &str) -> Scenario {
    let text = format!(
        r#"name = "lan-router"
backends = ["legacy", "nft"]
[[netns]]
name = "lan"
[[netns]]
name = "router"
sysctls = {{ "net.ipv4.ip_forward" = "1" }}
iptables = """
*filter
:FORWARD {rules}COMMIT
"""
[[netns]]
name = "wan"
[[veth]]
a = {{ netns = "lan", name = "eth0", addresses = ["10.1.0.2/24"] }}
b = {{ netns = "router", name = "lan", addresses = ["10.1.0.1/24"] }}
[[veth]]
a = {{ netns = "router", name = "wan", addresses = ["10.2.0.1/24"] }}
b = {{ netns = "wan", name = "eth0", addresses = ["10.2.0.2/24"] }}
[[route]]
netns = "lan"
to = "default"
via = "10.1.0.1"
[[route]]
netns = "wan"
to = "default"
via = "10.2.0.1"
[[probe]]
name = "lan-to-wan"
from = "lan"
to = "10.2.0.2"
{path}"#
    );
    Scenario::from_toml(&text, Path::new("lan-router.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const FORWARDING: &str = "DROP [0:0]\n\
                          -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                          -A FORWARD -i lan -j ACCEPT\n";

/// Where the request must leave FORWARD: the `-i lan` rule, number 2.
const REQUEST_PATH: &str =
    "[[probe.path]]\nnetns = \"router\"\ndirection = \"request\"\nlast = \"filter:FORWARD:rule:2 accept\"\n";

fn settings() -> Settings {
    Settings { opts: RunOptions::default(), jobs: NonZeroUsize::new(2).unwrap(), shard: None }
}

/// Each mutant's id (without the netns and field) and its status's name.
fn statuses(score: &ScenarioScore) -> BTreeMap<String, &'static str> {
    score
        .mutants
        .iter()
        .map(|m| {
            let id = m.mutant.id.split_once(':').map_or(m.mutant.id.clone(), |(_, rest)| rest.to_string());
            let status = match &m.status {
                Status::Killed { .. } => "killed",
                Status::Survived { .. } => "survived",
                Status::Unexercised => "unexercised",
                Status::Equivalent { .. } => "equivalent",
                Status::Error { .. } => "error",
            };
            (id, status)
        })
        .collect()
}

#[rstest]
fn a_survivor_is_killed_once_the_expectation_it_asks_for_is_added(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    require_root();
    let score = mutate_scenario(&router(FORWARDING, ""), &[backend], &settings());
    let want: BTreeMap<String, &str> = [
        // The policy: every packet leaves FORWARD by a rule.
        ("2:flip-policy", "unexercised"),
        ("3:delete-rule", "killed"),
        ("3:flip-verdict", "killed"),
        ("3:negate-match(--ctstate)", "killed"),
        // `-A FORWARD -j ACCEPT` forwards both ways as well.
        ("3:drop-match(--ctstate)", "survived"),
        // The request now leaves by rule 1, the reply by rule 2: both still pass.
        ("3:swap-rules", "survived"),
        ("4:delete-rule", "killed"),
        ("4:flip-verdict", "killed"),
        ("4:negate-match(-i)", "killed"),
        ("net.ipv4.ip_forward", "killed"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(statuses(&score), want, "{score:#?}");
    for m in score.survivors() {
        let Status::Survived { met_by } = &m.status else { unreachable!() };
        assert_eq!(met_by, &["lan-to-wan (packet 1)"], "{m:#?}");
        assert!(m.mutant.place.starts_with("lan-router.toml:"), "{}", m.mutant.place);
    }
    assert_eq!(score.tally(Some(backend)).score(), Some(100.0 * 7.0 / 9.0));

    // The expectation the survivors ask for.
    let score = mutate_scenario(&router(FORWARDING, REQUEST_PATH), &[backend], &settings());
    let got = statuses(&score);
    assert_eq!(got["3:drop-match(--ctstate)"], "killed");
    assert_eq!(got["3:swap-rules"], "killed");
    assert_eq!(score.survivors().count(), 0, "{score:#?}");
    let killer = score.mutants.iter().find(|m| m.mutant.id.ends_with("3:swap-rules")).unwrap();
    let Status::Killed { by } = &killer.status else { unreachable!() };
    assert_eq!(by, &["probe lan-to-wan: path of packet 1 request in netns router (last hook) at lan-router.toml:36"]);
}

/// `! -p tcp --dport 9`: the kernel's tcp match refuses a negated protocol, so that mutant does
/// not load. It is an error, left out of the score; the other mutants of the rule no packet met
/// are unexercised, and the one the comment above it marks is equivalent.
#[test]
fn a_mutant_that_does_not_load_is_an_error_not_a_kill() {
    require_root();
    let rules = "ACCEPT [0:0]\n# mutate: equivalent(negate-match(--dport)) — the probe sends no TCP\n\
                 -A FORWARD -p tcp --dport 9 -j DROP\n";
    let score = mutate_scenario(&router(rules, ""), &[Backend::Legacy], &settings());
    let got = statuses(&score);
    assert_eq!(got["4:negate-match(-p)"], "error", "{score:#?}");
    assert_eq!(got["4:negate-match(--dport)"], "equivalent");
    assert_eq!(got["4:delete-rule"], "unexercised");
    assert_eq!(got["4:flip-verdict"], "unexercised");
    assert_eq!(got["2:flip-policy"], "killed");
    let error = score.mutants.iter().find(|m| m.mutant.id.ends_with("negate-match(-p)")).unwrap();
    let Status::Error { message } = &error.status else { unreachable!() };
    assert!(message.contains("rejected `-A FORWARD ! -p tcp --dport 9 -j DROP`"), "{message}");
    let t = score.tally(Some(Backend::Legacy));
    assert_eq!((t.error, t.equivalent), (1, 1));
    assert_eq!(t.score(), Some(100.0 * t.killed as f64 / (t.killed + t.survived) as f64));
}

/// Two shards of the router's mutants, joined, score what one run scores: every mutant in
/// exactly one shard. Joined without one of them, the join refuses (its mutants would silently
/// leave the score); the gate fails on the survivors and passes at the score they leave.
#[test]
fn shards_join_into_the_whole_run_and_a_missing_shard_is_refused() {
    require_root();
    let sc = router(FORWARDING, "");
    let file = vec![(std::path::PathBuf::from("lan-router.toml"), Ok(sc))];
    let run = |shard| {
        let report = netpath::mutate::run_all(&file, |_| vec![Backend::Legacy], &Settings { shard, ..settings() });
        serde_json::to_value(&report).unwrap()
    };
    let (one, two) = (run(Some((1, 2))), run(Some((2, 2))));
    let ids = |r: &serde_json::Value| -> Vec<String> {
        r["scenarios"][0]["mutants"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_string()).collect()
    };
    let (a, b) = (ids(&one), ids(&two));
    assert!(!a.is_empty() && !b.is_empty(), "both shards have mutants: {a:?} {b:?}");
    assert!(a.iter().all(|id| !b.contains(id)), "a mutant in both shards: {a:?} {b:?}");
    assert_eq!(a.len() + b.len(), 10, "the router has 10 mutants: {a:?} {b:?}");

    let joined = netpath::mutate::join(&[two.clone(), one.clone()]).unwrap_or_else(|e| panic!("{e}"));
    let text = joined.text();
    let row = text.lines().find(|l| l.starts_with("lan-router ")).unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    // killed survived unexercised equivalent error score, as the unsharded run counts them.
    assert_eq!(cells[2..8], ["7", "2", "1", "0", "0", "78"], "{text}");
    assert_eq!(text.matches("SURVIVED lan-router [legacy]").count(), 2, "{text}");
    assert_eq!(joined.below(95.0), ["lan-router [legacy]: 77.8 % < 95 %"]);
    assert!(joined.below(77.0).is_empty());

    let err = netpath::mutate::join(std::slice::from_ref(&one)).unwrap_err();
    assert_eq!(err, "shard 2/2 missing: its runner died before writing its report, or its file was not given");
    let err = netpath::mutate::join(&[one.clone(), one]).unwrap_err();
    assert_eq!(err, "reports 1 and 2 are both shard 1/2");
}
