//! Verdicts in the path: a hook in `exact`/`includes`/`last` may say what was decided there
//! (`filter:INPUT:policy:1 drop`), and a datapath that decides otherwise fails it. Legacy TRACE
//! (NFLOG) takes the verdict from the live x_tables ruleset, nf_tables trace events from the
//! kernel's own verdict attribute; both backends and a native nft ruleset are run.

use std::path::Path;

use netpath::verdict::expect::FailureKind::PathLast;
use netpath::{Backend, Scenario};
use netpath_cases::{assert_passes, run, want};
use rstest::rstest;

/// A client pinging a router whose ruleset is `rules` (`iptables` or native `nft`), no answer
/// of any kind expected, and the router's path expected to end at `last`.
fn router(field: &str, rules: &str, last: &str) -> Scenario {
    router_answering(field, rules, last, "none")
}

/// The same, with the answer the ping must get (`refused` under a REJECT).
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

fn iptables(input: &str) -> String {
    format!("*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p icmp -j TRACE\nCOMMIT\n*filter\n{input}COMMIT\n")
}

fn nft(input: &str) -> String {
    format!("table inet fw {{\n  chain input {{\n    type filter hook input priority 0;\n{input}  }}\n}}\n")
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
fn an_input_policy_drop_is_told_from_accept(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let last = "filter:INPUT:policy:1 drop";
    let sc = router("iptables", &iptables(":INPUT DROP [0:0]\n"), last);
    let twin = router("iptables", &iptables(":INPUT ACCEPT [0:0]\n"), last);
    passes_and_twin_fails(&sc, &twin, backend, last, "filter:INPUT:policy:1 accept");
}

#[test]
fn a_native_nft_input_policy_drop_is_told_from_accept() {
    let last = "fw:input:policy:1 drop";
    let sc = router("nft", &nft("    policy drop;\n"), last);
    let twin = router("nft", &nft("    policy accept;\n"), last);
    passes_and_twin_fails(&sc, &twin, Backend::Nft, last, "fw:input:policy:1 accept");
}

/// The kernel reports a reject as a drop; the rule's target tells them apart.
#[rstest]
fn a_reject_rule_is_told_from_a_drop_rule(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let last = "filter:INPUT:rule:1 reject";
    let sc =
        router_answering("iptables", &iptables(":INPUT ACCEPT [0:0]\n-A INPUT -p icmp -j REJECT\n"), last, "refused");
    let twin =
        router_answering("iptables", &iptables(":INPUT ACCEPT [0:0]\n-A INPUT -p icmp -j DROP\n"), last, "refused");
    passes_and_twin_fails(&sc, &twin, backend, last, "filter:INPUT:rule:1 drop");
}

#[test]
fn a_native_nft_reject_is_told_from_a_drop() {
    let last = "fw:input:rule:1 reject";
    let sc = router_answering("nft", &nft("    policy accept;\n    ip protocol icmp reject\n"), last, "refused");
    let twin = router_answering("nft", &nft("    policy accept;\n    ip protocol icmp drop\n"), last, "refused");
    passes_and_twin_fails(&sc, &twin, Backend::Nft, last, "fw:input:rule:1 drop");
}

/// The README's example of verdicts and patterns, as written there, under both backends; and
/// with INPUT's policy accept (the twin) its `last` fails.
#[rstest]
fn the_readme_example_runs(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let marker = "# README example: verdicts and patterns";
    let start = readme.find(marker).expect("the README has the example");
    let text = &readme[start..start + readme[start..].find("```").expect("the example's block ends")];
    let sc = Scenario::from_toml(text, Path::new("README.md")).unwrap_or_else(|e| panic!("{e}"));
    assert_passes(&sc, backend);
    let twin = Scenario::from_toml(&text.replace(":INPUT DROP", ":INPUT ACCEPT"), Path::new("README.md")).unwrap();
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
fn a_rule_is_named_by_its_comment(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let by_comment = r#"filter:INPUT:rule:\"deny-ping\" drop"#;
    let deny = "-A INPUT -p icmp -m comment --comment deny-ping -j DROP\n";
    let first = iptables(&format!(":INPUT ACCEPT [0:0]\n{deny}"));
    let moved = iptables(&format!(":INPUT ACCEPT [0:0]\n-A INPUT -p tcp -j ACCEPT\n{deny}"));
    assert_passes(&router("iptables", &first, by_comment), backend);
    assert_passes(&router("iptables", &moved, by_comment), backend);
    let by_position = "filter:INPUT:rule:1 drop";
    passes_and_twin_fails(
        &router("iptables", &first, by_position),
        &router("iptables", &moved, by_position),
        backend,
        by_position,
        "filter:INPUT:rule:2 drop",
    );
    // The comment on a rule the ping does not meet: the ping's drop is another rule's.
    let other = iptables(
        ":INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m comment --comment deny-ping -j DROP\n\
         -A INPUT -p icmp -m comment --comment deny-all -j DROP\n",
    );
    let o = run(&router("iptables", &other, by_comment), backend);
    want(PathLast)
        .packet(1)
        .netns("router")
        .expected(r#"filter:INPUT:rule:"deny-ping" drop"#)
        .observed("filter:INPUT:rule:2 drop")
        .find(&o.probes[0].failures);
    // No rule with that comment at all: the entry cannot match, and the failure says why.
    let none = iptables(":INPUT ACCEPT [0:0]\n-A INPUT -p icmp -m comment --comment deny-all -j DROP\n");
    let o = run(&router("iptables", &none, by_comment), backend);
    let f = want(PathLast).packet(1).netns("router").observed("filter:INPUT:rule:1 drop").find(&o.probes[0].failures);
    assert!(
        f.detail.contains("no rule of filter:INPUT in netns router has that comment (comments there: \"deny-all\")"),
        "{f:#?}"
    );
}

#[test]
fn a_native_nft_rule_is_named_by_its_comment() {
    let by_comment = r#"fw:input:rule:\"deny-ping\" drop"#;
    let deny = "    meta l4proto icmp drop comment \"deny-ping\"\n";
    let moved = nft(&format!("    tcp dport 22 accept\n{deny}"));
    assert_passes(&router("nft", &nft(deny), by_comment), Backend::Nft);
    assert_passes(&router("nft", &moved, by_comment), Backend::Nft);
    let other = nft("    tcp dport 22 drop comment \"deny-ping\"\n    meta l4proto icmp drop comment \"deny-all\"\n");
    let o = run(&router("nft", &other, by_comment), Backend::Nft);
    want(PathLast)
        .packet(1)
        .netns("router")
        .expected(r#"fw:input:rule:"deny-ping" drop"#)
        .observed("fw:input:rule:2 drop")
        .find(&o.probes[0].failures);
    let none = nft("    meta l4proto icmp drop comment \"deny-all\"\n");
    let o = run(&router("nft", &none, by_comment), Backend::Nft);
    let f = want(PathLast).packet(1).netns("router").observed("fw:input:rule:1 drop").find(&o.probes[0].failures);
    assert!(
        f.detail.contains("no rule of fw:input in netns router has that comment (comments there: \"deny-all\")"),
        "{f:#?}"
    );
}

/// The README's example of a rule named by its comment, as written there: it passes, still
/// passes with a rule added above the named one, and fails when the dropping rule has another
/// comment.
#[rstest]
fn the_readme_comment_example_runs(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let start = readme.find("# README example: a rule named by its comment").expect("the README example");
    let text = &readme[start..start + readme[start..].find("```").unwrap()];
    let load = |text: &str| Scenario::from_toml(text, Path::new("README.md")).unwrap_or_else(|e| panic!("{e}\n{text}"));
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
