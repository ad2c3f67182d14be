//! Verdicts in the path: a hook in `exact`/`includes`/`last` may say what was decided there
//! (`filter:INPUT:policy:1 drop`), and a datapath that decides otherwise fails it. Legacy TRACE
//! (NFLOG) takes the verdict from the live x_tables ruleset, nf_tables trace events from the
//! kernel's own verdict attribute; both backends and a native nft ruleset are run.

use std::path::Path;

use netpath::verdict::expect::FailureKind::PathLast;
use netpath::{Backend, Scenario};
use netpath_cases::{assert_passes, run, want};
use rstest::rstest;

/// A client pinging a router whose ruleset is `rules` (`iptables` or native `nft`), the ping
/// answered by `answer` (`none`, or `refused` under a REJECT), and the router's path expected
/// to end at `last`.
fn router_answering(field: &str, rules: &str, last: &str, answer: &str) -> Scenario {
    let text = router_text(field, rules, last, answer);
    Scenario::from_toml(&text, Path::new("router.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn router_text(field: &str, rules: &str, last: &str, answer: &str) -> String {
    let backends = if field == "nft" { r#"["nft"]"# } else { r#"["legacy", "nft"]"# };
    format!(
        r#"backends = {backends}
name = "router-input"
[[netns]]
name = "client"
[[netns]]
name = "router"
{field} = """
{rules}"""
[[veth]]
a = {{ netns = "client", name = "eth0", addresses = ["10.9.0.1/24"] }}
b = {{ netns = "router", name = "eth0", addresses = ["10.9.0.2/24"] }}
[[probe]]
name = "ping-router"
from = "client"
to = "10.9.0.2"
answer = "{answer}"
[[probe.path]]
netns = "router"
last = "{last}"
"#
    )
}

/// What a router's ruleset is written in, and the backend that runs it: the same rule in
/// iptables-restore text (under either iptables backend) and in a native nft table.
#[derive(Clone, Copy, Debug)]
enum Rules {
    Iptables(Backend),
    Nft,
}

/// One rule of INPUT: the protocol it matches, its verdict (lower case, as the path writes it)
/// and its comment.
struct Rule<'a>(&'a str, &'a str, Option<&'a str>);

impl Rules {
    fn backend(self) -> Backend {
        match self {
            Rules::Iptables(b) => b,
            Rules::Nft => Backend::Nft,
        }
    }

    /// The input chain as a path names it.
    fn chain(self) -> &'static str {
        match self {
            Rules::Iptables(_) => "filter:INPUT",
            Rules::Nft => "fw:input",
        }
    }

    /// A router whose INPUT has `policy` and `rules`, its path expected to end at `last` (a
    /// hook of [`Rules::chain`], as `policy:1 drop`), the ping answered by `answer`.
    fn router(self, policy: &str, rules: &[Rule], last: &str, answer: &str) -> Scenario {
        let last = format!("{}:{last}", self.chain());
        match self {
            Rules::Iptables(_) => {
                let mut input = format!(":INPUT {} [0:0]\n", policy.to_uppercase());
                for Rule(proto, verdict, comment) in rules {
                    let comment = comment.map(|c| format!("-m comment --comment {c} ")).unwrap_or_default();
                    input += &format!("-A INPUT -p {proto} {comment}-j {}\n", verdict.to_uppercase());
                }
                let text = format!(
                    "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p icmp -j TRACE\nCOMMIT\n*filter\n{input}COMMIT\n"
                );
                router_answering("iptables", &text, &last, answer)
            }
            Rules::Nft => {
                let mut input = format!("    policy {policy};\n");
                for Rule(proto, verdict, comment) in rules {
                    let comment = comment.map(|c| format!(" comment \"{c}\"")).unwrap_or_default();
                    input += &format!("    meta l4proto {proto} {verdict}{comment}\n");
                }
                let text = format!(
                    "table inet fw {{\n  chain input {{\n    type filter hook input priority 0;\n{input}  }}\n}}\n"
                );
                router_answering("nft", &text, &last, answer)
            }
        }
    }
}

/// The expectation and the datapath that breaks it, on one backend.
fn passes_and_twin_fails(sc: &Scenario, twin: &Scenario, backend: Backend, want_last: &str, seen_last: &str) {
    assert_passes(sc, backend);
    let o = run(twin, backend);
    want(PathLast)
        .packet(1)
        .request()
        .netns("router")
        .expected(want_last)
        .observed(seen_last)
        .find(&o.probes[0].failures);
}

#[rstest]
#[case::legacy(Rules::Iptables(Backend::Legacy))]
#[case::iptables_nft(Rules::Iptables(Backend::Nft))]
#[case::native_nft(Rules::Nft)]
fn an_input_policy_drop_is_told_from_accept(#[case] rules: Rules) {
    let chain = rules.chain();
    let sc = rules.router("drop", &[], "policy:1 drop", "none");
    let twin = rules.router("accept", &[], "policy:1 drop", "none");
    passes_and_twin_fails(
        &sc,
        &twin,
        rules.backend(),
        &format!("{chain}:policy:1 drop"),
        &format!("{chain}:policy:1 accept"),
    );
}

/// The kernel reports a reject as a drop; the rule's target tells them apart.
#[rstest]
#[case::legacy(Rules::Iptables(Backend::Legacy))]
#[case::iptables_nft(Rules::Iptables(Backend::Nft))]
#[case::native_nft(Rules::Nft)]
fn a_reject_rule_is_told_from_a_drop_rule(#[case] rules: Rules) {
    let chain = rules.chain();
    let sc = rules.router("accept", &[Rule("icmp", "reject", None)], "rule:1 reject", "refused");
    let twin = rules.router("accept", &[Rule("icmp", "drop", None)], "rule:1 reject", "refused");
    passes_and_twin_fails(
        &sc,
        &twin,
        rules.backend(),
        &format!("{chain}:rule:1 reject"),
        &format!("{chain}:rule:1 drop"),
    );
}

/// The chapter with the examples of verdicts and patterns.
const CHAPTER: &str = "docs/expectations.md";

/// The docs' example of verdicts and patterns, as written there, under both backends; and
/// with INPUT's policy accept (the twin) its `last` fails.
#[rstest]
fn the_doc_example_runs(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let text = &netpath_cases::docs::example(CHAPTER, "# example: verdicts and patterns").text;
    let sc = Scenario::from_toml(text, Path::new(CHAPTER)).unwrap_or_else(|e| panic!("{e}"));
    assert_passes(&sc, backend);
    let twin = Scenario::from_toml(&text.replace(":INPUT DROP", ":INPUT ACCEPT"), Path::new(CHAPTER)).unwrap();
    let o = run(&twin, backend);
    want(PathLast)
        .packet(1)
        .request()
        .netns("router")
        .expected("filter:INPUT:policy:2 drop")
        .observed("filter:INPUT:policy:2 accept")
        .find(&o.probes[0].failures);
}

/// A rule named by its comment is found wherever it sits: a rule added above it breaks the
/// position reference, not the comment reference; a rule with another comment fails it.
#[rstest]
#[case::legacy(Rules::Iptables(Backend::Legacy))]
#[case::iptables_nft(Rules::Iptables(Backend::Nft))]
#[case::native_nft(Rules::Nft)]
fn a_rule_is_named_by_its_comment(#[case] rules: Rules) {
    let (chain, backend) = (rules.chain(), rules.backend());
    let by_comment = r#"rule:\"deny-ping\" drop"#;
    let deny = Rule("icmp", "drop", Some("deny-ping"));
    let first = [Rule("icmp", "drop", Some("deny-ping"))];
    let moved = [Rule("tcp", "accept", None), deny];
    assert_passes(&rules.router("accept", &first, by_comment, "none"), backend);
    assert_passes(&rules.router("accept", &moved, by_comment, "none"), backend);
    passes_and_twin_fails(
        &rules.router("accept", &first, "rule:1 drop", "none"),
        &rules.router("accept", &moved, "rule:1 drop", "none"),
        backend,
        &format!("{chain}:rule:1 drop"),
        &format!("{chain}:rule:2 drop"),
    );
    // The comment on a rule the ping does not meet: the ping's drop is another rule's.
    let other = [Rule("tcp", "drop", Some("deny-ping")), Rule("icmp", "drop", Some("deny-all"))];
    let o = run(&rules.router("accept", &other, by_comment, "none"), backend);
    want(PathLast)
        .packet(1)
        .netns("router")
        .expected(&format!(r#"{chain}:rule:"deny-ping" drop"#))
        .observed(&format!("{chain}:rule:2 drop"))
        .find(&o.probes[0].failures);
    // No rule with that comment at all: the entry cannot match, and the failure says why.
    let none = [Rule("icmp", "drop", Some("deny-all"))];
    let o = run(&rules.router("accept", &none, by_comment, "none"), backend);
    let f =
        want(PathLast).packet(1).netns("router").observed(&format!("{chain}:rule:1 drop")).find(&o.probes[0].failures);
    let why = format!("no rule of {chain} in netns router has that comment (comments there: \"deny-all\")");
    assert!(f.detail.contains(&why), "{f:#?}");
}

/// The docs' example of a rule named by its comment, as written there: it passes, still
/// passes with a rule added above the named one, and fails when the dropping rule has another
/// comment.
#[rstest]
fn the_doc_comment_example_runs(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let text = &netpath_cases::docs::example(CHAPTER, "# example: a rule named by its comment").text;
    let load = |text: &str| Scenario::from_toml(text, Path::new(CHAPTER)).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_passes(&load(text), backend);
    let deny = "-A INPUT -p icmp -m comment --comment \"deny-ping\" -j DROP\n";
    assert!(text.contains(deny));
    assert_passes(&load(&text.replace(deny, &format!("-A INPUT -p tcp -j ACCEPT\n{deny}"))), backend);
    let other = format!(
        "-A INPUT -p tcp -m comment --comment \"deny-ping\" -j DROP\n{}",
        deny.replace("deny-ping", "deny-all")
    );
    let o = run(&load(&text.replace(deny, &other)), backend);
    want(PathLast).packet(1).netns("router").observed("filter:INPUT:rule:2 drop").find(&o.probes[0].failures);
    let o = run(&load(&text.replace("\"deny-ping\" -j DROP", "\"deny-all\" -j DROP")), backend);
    want(PathLast).packet(1).netns("router").observed("filter:INPUT:rule:1 drop").find(&o.probes[0].failures);
}
