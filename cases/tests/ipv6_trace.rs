//! IPv6 through ip6tables, traced by every source: an ICMPv6 echo forwarded by a router that
//! masquerades it (NAT66) and lets the reply back by conntrack, beside the same probe over IPv4
//! through an iptables ruleset of the same shape in the same netns. The legacy backend reports
//! both families' TRACE on one NFLOG group (each record naming its family), nft as nf_tables
//! trace events of families ip and ip6, the kernel log as `TRACE:` lines of both shapes; the
//! paths are the same whichever source reads them, and without the conntrack rule the reply is
//! dropped at the FORWARD policy (the negative twin).

use std::path::Path;

use netpath::observe::TraceChoice;
use netpath::scenario::Direction;
use netpath::{Backend, Outcome, RunOptions, Scenario};
use serial_test::serial;

// `#[serial(kernel_log)]`: kernel-log runs take turns anyway (the kernel-log lock); these also
// share `nf_log_all_netns` with trace_sources.rs's checks only through that lock, so one at a
// time here is enough.

/// The router's ruleset of one family: `{icmp}` is the family's echo-request match.
const RULES: &str = "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
-A FORWARD -i r0 -o r1 {icmp} -j ACCEPT
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s {inside} -o r1 -j MASQUERADE
COMMIT
";

fn scenario(edit: impl Fn(&str) -> String) -> Scenario {
    let v4 = edit(&RULES.replace("{icmp}", "-p icmp --icmp-type echo-request").replace("{inside}", "10.1.0.0/24"));
    let v6 =
        edit(&RULES.replace("{icmp}", "-p ipv6-icmp --icmpv6-type echo-request").replace("{inside}", "fd00:1::/64"));
    let text = format!(
        r#"name = "ipv6-trace"
backends = ["legacy", "nft"]

[[netns]]
name = "a"

[[netns]]
name = "r"
sysctls = {{ "net.ipv4.ip_forward" = "1", "net.ipv6.conf.all.forwarding" = "1" }}
iptables = """
{v4}"""
ip6tables = """
{v6}"""

[[netns]]
name = "b"

[[veth]]
a = {{ netns = "a", name = "eth0", addresses = ["10.1.0.2/24", "fd00:1::2/64"] }}
b = {{ netns = "r", name = "r0", addresses = ["10.1.0.1/24", "fd00:1::1/64"] }}

[[veth]]
a = {{ netns = "r", name = "r1", addresses = ["10.2.0.1/24", "fd00:2::1/64"] }}
b = {{ netns = "b", name = "eth0", addresses = ["10.2.0.2/24", "fd00:2::2/64"] }}

[[route]]
netns = "a"
to = "default"
via = "10.1.0.1"

[[route]]
netns = "a"
to = "::/0"
via = "fd00:1::1"

[[probe]]
name = "ping6"
from = "a"
to = "fd00:2::2"

[[probe.addr]]
at = "b/eth0"
src = "fd00:2::1"
dst = "fd00:2::2"

[[probe.addr]]
direction = "reply"
at = "a/eth0"
src = "fd00:2::2"
dst = "fd00:1::2"

[[probe]]
name = "ping4"
from = "a"
to = "10.2.0.2"

[[probe.addr]]
at = "b/eth0"
src = "10.2.0.1"
dst = "10.2.0.2"
"#
    );
    Scenario::from_toml(&text, Path::new("ipv6-trace.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn run(sc: &Scenario, backend: Backend, trace: Option<TraceChoice>) -> Outcome {
    netpath_cases::require_root();
    netpath::run(sc, backend, &RunOptions { trace, ..RunOptions::default() })
        .unwrap_or_else(|e| panic!("[{}, {trace:?}] did not run: {e}", backend.name()))
}

/// The router's hooks for `probe`'s first packet in `direction`.
fn path(o: &Outcome, probe: &str, direction: Direction) -> Vec<String> {
    let p = o.probes.iter().find(|p| p.name == probe).unwrap_or_else(|| panic!("no probe {probe}"));
    let hooks = p.exchanges[0].of(direction).path.get("r").cloned().unwrap_or_default();
    hooks.iter().map(|e| e.hook.to_string()).collect()
}

/// What TRACE shows in the router, per backend (the nft backend reports netpath's own TRACE
/// rule as `raw:PREROUTING:rule:1`, legacy only the policy after it).
fn expected(backend: Backend, direction: Direction, forwarded_by: &str) -> Vec<String> {
    let mut hooks = match backend {
        Backend::Legacy => vec!["raw:PREROUTING:policy:2"],
        Backend::Nft => vec!["raw:PREROUTING:rule:1", "raw:PREROUTING:policy:2"],
    };
    match direction {
        Direction::Request => hooks.extend(["nat:PREROUTING:policy:1", forwarded_by, "nat:POSTROUTING:rule:1"]),
        Direction::Reply => hooks.push(forwarded_by),
    }
    hooks.into_iter().map(str::to_string).collect()
}

fn sources(backend: Backend) -> Vec<Option<TraceChoice>> {
    match backend {
        Backend::Legacy => vec![None, Some(TraceChoice::Kmsg)],
        Backend::Nft => vec![None],
    }
}

#[rstest::rstest]
#[serial(kernel_log)]
fn an_icmpv6_echo_is_traced_through_ip6tables_by_every_source(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let sc = scenario(str::to_string);
    for trace in sources(backend) {
        let o = run(&sc, backend, trace);
        assert!(o.passed(), "[{trace:?}]\n{}", netpath::output::report::outcome(&o, true));
        for probe in ["ping6", "ping4"] {
            assert_eq!(
                path(&o, probe, Direction::Request),
                expected(backend, Direction::Request, "filter:FORWARD:rule:1"),
                "{probe} [{trace:?}]"
            );
            assert_eq!(
                path(&o, probe, Direction::Reply),
                expected(backend, Direction::Reply, "filter:FORWARD:rule:2"),
                "{probe} [{trace:?}]"
            );
        }
        // Each probe's path holds only its own family's packets.
        let ping6 = &o.probes[0].exchanges[0].request.path["r"];
        assert!(ping6.iter().all(|e| e.packet.src.is_some_and(|a| a.is_ipv6())), "{ping6:?}");
    }
}

/// The negative twin: without the conntrack rule, the IPv6 reply meets the FORWARD policy DROP
/// and never reaches `a`, under every source; the IPv4 twin keeps its rule and passes.
#[rstest::rstest]
#[serial(kernel_log)]
fn without_the_conntrack_rule_the_ipv6_reply_is_dropped_at_the_forward_policy(
    #[values(Backend::Legacy, Backend::Nft)] backend: Backend,
) {
    let sc = scenario(|rules| {
        if rules.contains("ipv6-icmp") { netpath_cases::without_lines(rules, "--ctstate") } else { rules.to_string() }
    });
    for trace in sources(backend) {
        let o = run(&sc, backend, trace);
        let ping6 = &o.probes[0];
        assert!(!ping6.failures.is_empty(), "[{trace:?}] passed:\n{}", netpath::output::report::outcome(&o, true));
        assert!(!ping6.exchanges[0].replied, "[{trace:?}]");
        assert_eq!(
            path(&o, "ping6", Direction::Reply),
            expected(backend, Direction::Reply, "filter:FORWARD:policy:2"),
            "[{trace:?}]"
        );
        assert!(
            ping6
                .failures
                .iter()
                .all(|f| f.kind == netpath::FailureKind::NoReply || f.direction == Some(Direction::Reply)),
            "[{trace:?}] only the reply fails: {:?}",
            ping6.failures
        );
        assert!(o.probes[1].failures.is_empty(), "[{trace:?}] {:?}", o.probes[1].failures);
    }
}
