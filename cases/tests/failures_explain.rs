//! Failures that explain themselves (issue 25), on the real kernel: a failed expectation cites
//! the FILE:LINE of its entry and shows expected against observed as a diff; a lost reply's
//! failure starts where the reply was last seen and the hook it met last; a sysctl typo names
//! the scenario's netns and line and suggests the key that exists. And the artifacts a person
//! debugs such a failure from: one pcapng of every interface, the trace tagged with probe
//! packets, rulesets as text, IPv4 and IPv6 routes, a folder named with scenario, backend, time
//! and test.
//!
//! The scenario: a -- router -- b, the router forwarding but dropping echo replies, so a ping
//! from a reaches b and b's reply dies in the router's FORWARD chain.

use std::path::PathBuf;

use netpath::output::report;
use netpath::testing::want;
use netpath::{Backend, FailureKind, RunOptions, Scenario};
use netpath_cases::{require_root, run_or_return};

const SCENARIO: &str = r#"name = "reply-dropped"
backends = ["legacy", "nft"]

[[netns]]
name = "a"

[[netns]]
name = "router"
sysctls = { "net.ipv4.ip_forward" = "1" }
iptables = """
*filter
:FORWARD ACCEPT [0:0]
-A FORWARD -p icmp --icmp-type echo-reply -j DROP
COMMIT
"""

[[netns]]
name = "b"

[[veth]]
a = { netns = "a", name = "eth0", addresses = ["10.0.1.2/24"] }
b = { netns = "router", name = "to-a", addresses = ["10.0.1.1/24"] }

[[veth]]
a = { netns = "b", name = "eth0", addresses = ["10.0.2.2/24"] }
b = { netns = "router", name = "to-b", addresses = ["10.0.2.1/24"] }

[[route]]
netns = "a"
to = "default"
via = "10.0.1.1"

[[route]]
netns = "b"
to = "default"
via = "10.0.2.1"

[[probe]]
name = "ping-b"
from = "a"
to = "10.0.2.2"
timeout_ms = 500

[[probe.path]]
netns = "router"
last = "filter:FORWARD:policy:2"

[[probe.path]]
netns = "router"
last = "filter:FORWARD:rule:1"

[[probe.addr]]
at = "b/eth0"
src = "10.0.1.99"
dst = "10.0.2.2"
"#;

/// The scenario's text written to a file of its own (named after the test), loaded from it.
fn scenario_file(test: &str, text: &str) -> (PathBuf, Scenario) {
    let dir = std::env::temp_dir().join(format!("netpath-failures-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{test}.toml"));
    std::fs::write(&path, text).unwrap();
    let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    (path, sc)
}

/// The 1-based line of the `nth` (1-based) line of `text` that is `line`.
fn line_no(text: &str, line: &str, nth: usize) -> usize {
    text.lines().enumerate().filter(|(_, l)| *l == line).nth(nth - 1).map(|(i, _)| i + 1).expect(line)
}

#[test]
fn a_failed_entry_cites_its_line_and_a_lost_reply_where_it_died() {
    let (path, sc) = scenario_file("lost-reply", SCENARIO);
    let o = run_or_return!(&sc, Backend::Legacy);
    let f = &o.probes[0].failures;
    let text = report::outcome(&o, false);

    // The headline names the reply's last capture point and its last hook, not "no reply".
    let lost = want(FailureKind::NoReply).packet(1).find(f);
    assert!(
        lost.detail
            .starts_with("the reply was last seen at router/to-b, its last hook in netns router filter:FORWARD:rule:1"),
        "{}\n{text}",
        lost.detail
    );
    assert!(lost.detail.contains("no reply reached the sender in netns a within 500 ms"), "{}", lost.detail);
    assert!(lost.detail.contains("the request was seen at a/eth0, router/to-a, router/to-b, b/eth0 (in that order)"));
    let at = |line: usize| Some(format!("{}:{line}", path.display()));
    // No `answer` or `replies`: the probe's own line stands for the reply it expects.
    assert_eq!(lost.location, at(line_no(SCENARIO, r#"name = "ping-b""#, 1)));

    // The second [[probe.path]] entry failed, not the first: its line is cited.
    let last = want(FailureKind::PathLast).packet(1).request().netns("router").find(f);
    assert_eq!(last.location, at(line_no(SCENARIO, r#"netns = "router""#, 2)));
    let header = want(FailureKind::Header).packet(1).request().at("b/eth0").find(f);
    assert_eq!(header.location, at(line_no(SCENARIO, r#"at = "b/eth0""#, 1)));
    assert_eq!(f.len(), 3, "{text}");

    // The report: each failure at its line, the header as a diff naming the field that differs.
    for failure in f {
        assert!(text.contains(&format!("\n        at {}\n", failure.location.as_deref().unwrap())), "{text}");
    }
    assert!(text.contains("        - expected at b/eth0: 10.0.1.99 > 10.0.2.2\n"), "{text}");
    assert!(text.contains("        + observed at b/eth0: 10.0.1.2 > 10.0.2.2\n"), "{text}");
    assert!(text.contains("          (differs in src)\n"), "{text}");

    // docs/reports.md shows this very failure, as the report prints it.
    let explained = netpath_cases::docs::after("docs/reports.md", "**Reading a failure.**");
    let block = explained.split("```\n").nth(1).expect("with an example");
    let shown = block.replace("at reply-dropped.toml:", &format!("at {}:", path.display()));
    assert!(text.contains(&shown), "the example of docs/reports.md is not what the report says:\n{shown}\n---\n{text}");
}

/// The twin of the test above: the router lets replies through, and nothing fails (so the
/// failures above come from the dropped reply and the wrong entries, not from the scenario).
#[test]
fn with_the_reply_let_through_only_the_wrong_entries_fail() {
    let fixed = SCENARIO.replace("-A FORWARD -p icmp --icmp-type echo-reply -j DROP\n", "");
    let (_, sc) = scenario_file("reply-let-through", &fixed);
    let o = run_or_return!(&sc, Backend::Legacy);
    let kinds: Vec<FailureKind> = o.probes[0].failures.iter().map(|f| f.kind).collect();
    // Without the rule the policy is the FORWARD chain's first entry: both `last` entries miss.
    assert!(!kinds.contains(&FailureKind::NoReply), "{}", report::outcome(&o, false));
    assert!(kinds.contains(&FailureKind::Header), "{}", report::outcome(&o, false));
}

/// A scenario built in Rust has no file: its failures say which entry they are and that.
#[test]
fn a_scenario_built_in_rust_says_it_has_no_file() {
    let (_, mut sc) = scenario_file("built-in-rust", SCENARIO);
    sc.source = Default::default();
    let o = run_or_return!(&sc, Backend::Legacy);
    let f = &o.probes[0].failures;
    let last = want(FailureKind::PathLast).packet(1).find(f);
    assert_eq!(
        last.location.as_deref(),
        Some("probe ping-b, [[probe.path]] number 2 (a scenario built in Rust: no file)")
    );
}

/// A misspelt sysctl fails the run at its line, naming the scenario's netns (not netpath's
/// `netpath-RUN-router`) and the key it has nearest.
#[test]
fn a_sysctl_typo_names_its_line_the_netns_and_the_key_meant() {
    require_root();
    let typo = SCENARIO.replace("\"net.ipv4.ip_forward\"", "\"net.ipv4.conf.all.fowarding\"");
    let (path, sc) = scenario_file("sysctl-typo", &typo);
    let e = netpath::run(&sc, Backend::Legacy, &RunOptions::default()).expect_err("no such sysctl").to_string();
    let line = line_no(&typo, r#"sysctls = { "net.ipv4.conf.all.fowarding" = "1" }"#, 1);
    assert!(
        e.starts_with(&format!("{}:{line}: netns router: sysctl net.ipv4.conf.all.fowarding: ", path.display())),
        "{e}"
    );
    assert!(
        e.ends_with("did you mean `net.ipv4.conf.all.forwarding` (/proc/sys/net/ipv4/conf/all/forwarding)?"),
        "{e}"
    );
    // Not netpath's own name of the netns (`netpath-PIDxHEX-router`).
    assert!(!e.contains(&format!("netpath-{}x", std::process::id())), "{e}");
}

/// The artifacts of the failing run: a folder named after scenario, backend, time and this test;
/// `all.pcapng` with every capture point as `netns/iface` and every frame, which tcpdump reads;
/// the trace tagged with its probe packets; the ruleset as the tool lists it; both families'
/// routes.
#[test]
fn the_artifacts_hold_one_capture_of_every_interface_and_a_tagged_trace() {
    let (_, sc) = scenario_file("artifacts", SCENARIO);
    let o = run_or_return!(&sc, Backend::Nft);
    let dir = o.artifacts.clone().expect("a failed run writes artifacts");
    let folder = dir.file_name().unwrap().to_str().unwrap();
    assert!(folder.starts_with("reply-dropped-nft-20"), "{folder}");
    assert!(folder.contains("Z-the_artifacts_hold_one_capture_of_every_interface_and_a_tagged_trace-"), "{folder}");

    let bytes = std::fs::read(dir.join("all.pcapng")).unwrap();
    let interfaces = netpath::output::pcapng::interfaces(&bytes).unwrap();
    let mut names: Vec<&str> = interfaces.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["a/eth0", "b/eth0", "router/to-a", "router/to-b"]);
    assert_eq!(interfaces.iter().map(|(_, n)| n).sum::<usize>(), o.frames.len());
    let out = std::process::Command::new("tcpdump").arg("-nn").arg("-r").arg(dir.join("all.pcapng")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), o.frames.len(), "{text}");
    assert!(text.contains("10.0.1.2 > 10.0.2.2: ICMP echo request"), "{text}");

    let trace = std::fs::read_to_string(dir.join("trace.txt")).unwrap();
    assert!(trace.lines().any(|l| l.starts_with("[ping-b packet 1 request] router: ")), "{trace}");
    assert!(trace.lines().any(|l| l.starts_with("[ping-b packet 1 reply] router: ")), "{trace}");
    let ruleset = std::fs::read_to_string(dir.join("router.nft")).unwrap();
    assert!(ruleset.contains("table ip filter"), "{ruleset}");
    let routes = std::fs::read_to_string(dir.join("a.routes.txt")).unwrap();
    assert!(routes.contains("default via 10.0.1.1 dev eth0"), "{routes}");
    assert!(routes.contains("# ip -6 route show table all\n"), "{routes}");
}
