//! A ruleset a firewall tool rejects is an error at the scenario file's line of the failing
//! rule, with the rule and the tool's message, under both backends (iptables-legacy-restore
//! and iptables-nft-restore name different lines for the same rule: netpath's is the rule's).

use std::path::Path;

use netpath::{Backend, RunOptions, Scenario};
use rstest::rstest;

/// A scenario whose netns `b` has `field = """ruleset"""`: the ruleset's first line is line 8
/// of the file, so its line 4 is line 11.
fn with_ruleset(field: &str, ruleset: &str) -> Scenario {
    let backends = if field == "nft" { r#"["nft"]"# } else { r#"["legacy", "nft"]"# };
    let text = format!(
        r#"backends = {backends}
name = "rulesets"
[[netns]]
name = "a"
[[netns]]
name = "b"
{field} = """
{ruleset}"""
[[veth]]
a = {{ netns = "a", name = "eth0", addresses = ["10.9.0.1/24"] }}
b = {{ netns = "b", name = "eth0", addresses = ["10.9.0.2/24"] }}
[[probe]]
name = "ping"
from = "a"
to = "10.9.0.2"
"#
    );
    assert_eq!(text.lines().nth(7), ruleset.lines().next(), "{text}");
    Scenario::from_toml(&text, Path::new("rules.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn error_of(sc: &Scenario, backend: Backend) -> String {
    netpath_cases::require_root();
    match netpath::run(sc, backend, &RunOptions::default()) {
        Ok(o) => panic!("ran:\n{}", netpath::output::report::outcome(&o, true)),
        Err(e) => e.to_string(),
    }
}

/// An unknown jump target: legacy names the rule's line, nft the COMMIT's; both are reported
/// at the rule (file line 8 + 3 = 11).
#[rstest]
fn an_unknown_target_is_reported_at_its_rule(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let rules = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 1 -j ACCEPT\n-A INPUT -j NO-SUCH-CHAIN\n-A INPUT -p udp -j ACCEPT\nCOMMIT\n";
    let e = error_of(&with_ruleset("iptables", rules), backend);
    let tool = if backend == Backend::Legacy { "iptables-legacy-restore" } else { "iptables-nft-restore" };
    let want = format!("rules.toml:11: netns b: {tool} rejected `-A INPUT -j NO-SUCH-CHAIN` (line 4 of the ruleset): ");
    assert!(e.starts_with(&want), "want `{want}...`, got:\n{e}");
    assert!(e.contains("NO-SUCH-CHAIN"), "{e}");
}

/// A failure only the kernel sees, at commit: legacy says `line 7 failed` (the COMMIT).
#[rstest]
fn a_commit_failure_is_traced_back_to_its_rule(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let rules = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 1 -j ACCEPT\n-A INPUT -m nfacct --nfacct-name no-such-counter -j ACCEPT\n-A INPUT -p udp -j ACCEPT\n-A INPUT -p icmp -j ACCEPT\nCOMMIT\n";
    let e = error_of(&with_ruleset("iptables", rules), backend);
    assert!(e.starts_with("rules.toml:11: netns b: "), "{e}");
    assert!(
        e.contains("rejected `-A INPUT -m nfacct --nfacct-name no-such-counter -j ACCEPT` (line 4 of the ruleset)"),
        "{e}"
    );
    if backend == Backend::Legacy {
        assert!(e.contains("iptables-restore: line 7 failed"), "the tool's own message is kept: {e}");
    }
}

#[test]
fn an_ebtables_rule_is_reported_at_its_line() {
    let rules = "*filter\n:FORWARD ACCEPT\n-A FORWARD -p IPv4 -j ACCEPT\n-A FORWARD -p IPv4 --bogus 1 -j ACCEPT\n";
    let e = error_of(&with_ruleset("ebtables", rules), Backend::Legacy);
    assert!(e.starts_with("rules.toml:11: netns b: ebtables-nft-restore rejected `-A FORWARD -p IPv4 --bogus 1 -j ACCEPT` (line 4 of the ruleset): "), "{e}");
}

#[test]
fn a_native_nft_rule_is_reported_at_its_line() {
    let rules =
        "table ip t {\n  chain c {\n    type filter hook input priority 0;\n    ip saddr 1.2.3.4 jump nosuch\n  }\n}\n";
    let mut sc = with_ruleset("nft", rules);
    sc.backends = vec![Backend::Nft];
    let e = error_of(&sc, Backend::Nft);
    assert!(
        e.starts_with("rules.toml:11: netns b: nft rejected `ip saddr 1.2.3.4 jump nosuch` (line 4 of the ruleset): "),
        "{e}"
    );
    assert!(e.contains("Could not process rule"), "{e}");
}

/// The same for an `ip6tables` ruleset: each backend's ip6tables-restore, the rule's line.
#[rstest]
fn an_ip6tables_rule_is_reported_at_its_line(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let rules =
        "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -p ipv6-icmp -j ACCEPT\n-A FORWARD -j NO-SUCH-CHAIN\nCOMMIT\n";
    let e = error_of(&with_ruleset("ip6tables", rules), backend);
    let tool = if backend == Backend::Legacy { "ip6tables-legacy-restore" } else { "ip6tables-nft-restore" };
    let want =
        format!("rules.toml:11: netns b: {tool} rejected `-A FORWARD -j NO-SUCH-CHAIN` (line 4 of the ruleset): ");
    assert!(e.starts_with(&want), "want `{want}...`, got:\n{e}");
}

/// An IPv4 rule pasted into the IPv6 ruleset (ICMP's `--icmp-type` is ip6tables' `--icmpv6-type`)
/// is rejected at its line; an IPv6 ruleset that loads leaves the IPv4 probe's verdict alone.
#[rstest]
fn an_ipv4_rule_in_the_ip6tables_ruleset_is_reported_at_its_line(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let rules = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p ipv6-icmp --icmpv6-type echo-request -j ACCEPT\n-A INPUT -p icmp --icmp-type echo-request -j ACCEPT\nCOMMIT\n";
    let e = error_of(&with_ruleset("ip6tables", rules), backend);
    assert!(e.starts_with("rules.toml:11: netns b: "), "{e}");
    assert!(
        e.contains("rejected `-A INPUT -p icmp --icmp-type echo-request -j ACCEPT` (line 4 of the ruleset)"),
        "{e}"
    );
    let fixed = rules.replace("-A INPUT -p icmp --icmp-type echo-request", "-A INPUT -p ipv6-icmp --icmpv6-type 129");
    let sc = with_ruleset("ip6tables", &fixed);
    let o = netpath::run(&sc, backend, &RunOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
}

/// ebtables rules may match IPv6 frames (`-p IPv6 --ip6-proto`); `--ip6-proto` without `-p IPv6`
/// is rejected at its line.
#[test]
fn ebtables_ip6_proto_rules_load_and_a_wrong_one_is_reported_at_its_line() {
    let good = "*filter\n:FORWARD ACCEPT\n-A FORWARD -p IPv6 --ip6-proto ipv6-icmp -j ACCEPT\n-A FORWARD -p IPv6 --ip6-proto tcp --ip6-dport 80 -j ACCEPT\n";
    let o = netpath::run(&with_ruleset("ebtables", good), Backend::Legacy, &RunOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    let bad = "*filter\n:FORWARD ACCEPT\n-A FORWARD -p IPv6 --ip6-proto ipv6-icmp -j ACCEPT\n-A FORWARD -p IPv4 --ip6-proto tcp -j ACCEPT\n";
    let e = error_of(&with_ruleset("ebtables", bad), Backend::Legacy);
    assert!(
        e.starts_with("rules.toml:11: netns b: ebtables-nft-restore rejected `-A FORWARD -p IPv4 --ip6-proto tcp -j ACCEPT` (line 4 of the ruleset): "),
        "{e}"
    );
}
