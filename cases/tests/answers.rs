//! Answer kinds on the real kernel (issue 19): a reply, a refusal (TCP RST, ICMP / ICMPv6
//! destination unreachable), a local drop (the send fails with EPERM), or nothing. Each
//! expectation with its twin, where the datapath answers otherwise and the failure names what
//! came, from whom, where and how soon.

use std::net::IpAddr;
use std::path::Path;

use netpath::scenario::{Answer, ProbeKind, ProbeSpec};
use netpath::verdict::expect::FailureKind::*;
use netpath::{Backend, Outcome, Scenario};
use netpath_cases::want;

/// A client and a router on one link, over IPv4 and IPv6; `router` is the router's netns table
/// body (its ruleset keys), `client` the client's.
fn link(router: &str, client: &str) -> Scenario {
    let text = format!(
        r#"
name = "answers"
{backends}
[[netns]]
name = "client"
{client}
[[netns]]
name = "router"
{router}
[[veth]]
a = {{ netns = "client", name = "eth0", addresses = ["10.9.0.1/24", "fd00:9::1/64"] }}
b = {{ netns = "router", name = "eth0", addresses = ["10.9.0.2/24", "fd00:9::2/64"] }}
[[probe]]
name = "placeholder"
from = "client"
to = "10.9.0.2"
"#,
        // A native nft ruleset is traced by nf_tables trace events: the nft backend.
        backends = if router.contains("nft =") { "backends = [\"nft\"]" } else { "" }
    );
    let mut sc = Scenario::from_toml(&text, Path::new("answers.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    sc.probe.clear();
    sc
}

fn iptables(filter: &str) -> String {
    format!("iptables = \"\"\"\n*filter\n{filter}\nCOMMIT\n\"\"\"")
}

/// A probe of `kind` from the client to `to` (port 81, where nothing listens), expecting `answer`.
fn probe(kind: ProbeKind, to: &str, answer: Answer) -> ProbeSpec {
    let mut p = ProbeSpec::new("p", kind, "client", to.parse::<IpAddr>().unwrap());
    if kind != ProbeKind::Icmp {
        p.port = Some(81);
    }
    p.timeout_ms = 500;
    p.answer = Some(answer);
    p
}

fn with(mut sc: Scenario, p: ProbeSpec) -> Scenario {
    sc.probe.push(p);
    sc
}

fn report(o: &Outcome) -> String {
    netpath::output::report::outcome(o, true)
}

/// `replies = false` on a closed port: the INPUT policy drop passes; under policy accept the
/// router's RST comes back, and the failure names it, whichever backend or ruleset language.
#[test]
fn a_rst_from_a_closed_port_is_not_silence() {
    let mut p = probe(ProbeKind::Tcp, "10.9.0.2", Answer::None);
    (p.answer, p.replies) = (None, Some(false));
    let nft = |policy: &str| {
        format!(
            "nft = \"\"\"\ntable inet filter {{\n  chain input {{\n    type filter hook input priority 0; policy {policy};\n  }}\n}}\n\"\"\""
        )
    };
    let cases = [
        (Backend::Legacy, iptables(":INPUT DROP [0:0]"), iptables(":INPUT ACCEPT [0:0]")),
        (Backend::Nft, iptables(":INPUT DROP [0:0]"), iptables(":INPUT ACCEPT [0:0]")),
        (Backend::Nft, nft("drop"), nft("accept")),
    ];
    for (backend, drop, accept) in cases {
        let o = netpath_cases::run_or_return!(&with(link(&drop, ""), p.clone()), backend);
        assert!(o.passed(), "{backend:?} {drop}: {}", report(&o));
        assert_eq!(o.probes[0].exchanges[0].response.kind, Answer::None);

        // Twin: nothing drops the SYN; the router's TCP stack answers with a RST.
        let o = netpath_cases::run_or_return!(&with(link(&accept, ""), p.clone()), backend);
        let f = want(WrongAnswer).packet(1).expected("none").observed("refused").find(&o.probes[0].failures);
        assert_eq!(f.from, Some("10.9.0.2".parse().unwrap()), "{backend:?}: {f:#?}");
        let at = f.at.as_ref().map(ToString::to_string);
        assert!(matches!(at.as_deref(), Some("router/eth0" | "client/eth0")), "{f:#?}");
        assert!(f.latency.is_some_and(|l| l.as_secs() < 1), "{f:#?}");
        assert!(f.detail.starts_with("refused by a TCP RST from 10.9.0.2 seen at "), "{}", f.detail);
        assert!(f.detail.ends_with(" ms after the request"), "{}", f.detail);
    }
}

/// REJECT is told from DROP: `answer = "refused"` holds for both kinds of REJECT and fails on a
/// DROP, and `answer = "none"` the other way round.
#[test]
fn a_reject_is_refused_and_a_drop_is_not() {
    let drop = iptables(":INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 81 -j DROP");
    for reject in ["-j REJECT", "-j REJECT --reject-with tcp-reset"] {
        let rules = iptables(&format!(":INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 81 {reject}"));
        let refused = probe(ProbeKind::Tcp, "10.9.0.2", Answer::Refused);
        let o = netpath_cases::run_or_return!(&with(link(&rules, ""), refused.clone()), Backend::Legacy);
        assert!(o.passed(), "{reject}: {}", report(&o));
        let got = &o.probes[0].exchanges[0].response;
        let how = if reject.contains("tcp-reset") { "TCP RST" } else { "ICMP port unreachable (code 3)" };
        assert_eq!(got.how.as_deref(), Some(how), "{reject}: {got:?}");
        assert_eq!(got.from, Some("10.9.0.2".parse().unwrap()));

        // Twin: `answer = "none"` against the REJECT.
        let none = probe(ProbeKind::Tcp, "10.9.0.2", Answer::None);
        let o = netpath_cases::run_or_return!(&with(link(&rules, ""), none), Backend::Legacy);
        want(WrongAnswer).expected("none").observed("refused").find(&o.probes[0].failures);
    }
    // The DROP: not refused.
    let o = netpath_cases::run_or_return!(
        &with(link(&drop, ""), probe(ProbeKind::Tcp, "10.9.0.2", Answer::Refused)),
        Backend::Legacy
    );
    let f = want(WrongAnswer).expected("refused").observed("none").find(&o.probes[0].failures);
    assert_eq!((f.from, f.at.as_ref()), (None, None));
    let o = netpath_cases::run_or_return!(
        &with(link(&drop, ""), probe(ProbeKind::Tcp, "10.9.0.2", Answer::None)),
        Backend::Legacy
    );
    assert!(o.passed(), "{}", report(&o));
}

/// ICMP and UDP probes are refused too: a ping REJECTed with admin-prohibited, a datagram to a
/// port nobody listens on; over IPv6, a ping REJECTed by ip6tables. Each twin with a DROP.
#[test]
fn pings_and_datagrams_are_refused_over_both_families() {
    let v4 = ":INPUT ACCEPT [0:0]\n-A INPUT -p icmp -j REJECT --reject-with icmp-admin-prohibited";
    let v6 = "ip6tables = \"\"\"\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p ipv6-icmp --icmpv6-type echo-request -j REJECT\nCOMMIT\n\"\"\"";
    let reject = format!("{}\n{v6}", iptables(v4));
    let cases = [
        (ProbeKind::Icmp, "10.9.0.2", "ICMP administratively prohibited (code 13)"),
        (ProbeKind::Icmp, "fd00:9::2", "ICMPv6 port unreachable (code 4)"),
        (ProbeKind::Udp, "10.9.0.2", "ICMP port unreachable (code 3)"),
        (ProbeKind::Udp, "fd00:9::2", "ICMPv6 port unreachable (code 4)"),
    ];
    for (kind, to, how) in cases {
        let o =
            netpath_cases::run_or_return!(&with(link(&reject, ""), probe(kind, to, Answer::Refused)), Backend::Legacy);
        assert!(o.passed(), "{kind:?} to {to}: {}", report(&o));
        let got = &o.probes[0].exchanges[0].response;
        assert_eq!(got.how.as_deref(), Some(how), "{kind:?} to {to}: {got:?}");
        assert_eq!(got.from, Some(to.parse().unwrap()));
        assert!(got.at.is_some(), "{got:?}");
    }
    // Twins: the same probes against a DROP of everything are not refused.
    let drop =
        format!("{}\nip6tables = \"\"\"\n*filter\n:INPUT DROP [0:0]\nCOMMIT\n\"\"\"", iptables(":INPUT DROP [0:0]"));
    for (kind, to, _) in cases {
        let o =
            netpath_cases::run_or_return!(&with(link(&drop, ""), probe(kind, to, Answer::Refused)), Backend::Legacy);
        want(WrongAnswer).expected("refused").observed("none").find(&o.probes[0].failures);
    }
}

/// An OUTPUT rule of the sender's own netns: the send fails with EPERM, which is the `dropped`
/// answer, not a run error; without the rule the closed port refuses instead.
#[test]
fn a_packet_its_sender_drops_is_dropped_evidence() {
    let output = iptables(":OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 10.9.0.2 -j DROP");
    for kind in [ProbeKind::Udp, ProbeKind::Icmp] {
        let o = netpath_cases::run_or_return!(
            &with(link("", &output), probe(kind, "10.9.0.2", Answer::Dropped)),
            Backend::Legacy
        );
        assert!(o.passed(), "{kind:?}: {}", report(&o));
        let how = o.probes[0].exchanges[0].response.how.clone().unwrap_or_default();
        assert!(how.contains("netns client") && how.contains(": EPERM)"), "{how}");

        // Twin: nothing drops it on its way out.
        let o = netpath_cases::run_or_return!(
            &with(link("", ""), probe(kind, "10.9.0.2", Answer::Dropped)),
            Backend::Legacy
        );
        let observed = if kind == ProbeKind::Udp { "refused" } else { "reply" };
        let kinds = [WrongAnswer, UnexpectedReply];
        netpath_cases::want_any(&kinds).expected("dropped").observed(observed).find(&o.probes[0].failures);
    }
}

/// `replies` and `answer` both given must agree, or the file does not load.
#[test]
fn replies_and_answer_that_disagree_are_a_load_error() {
    let text = r#"name = "t"
[[netns]]
name = "a"
[[netns]]
name = "b"
[[veth]]
a = { netns = "a", name = "eth0", addresses = ["10.9.0.1/24"] }
b = { netns = "b", name = "eth0", addresses = ["10.9.0.2/24"] }
[[probe]]
name = "p"
from = "a"
to = "10.9.0.2"
replies = false
answer = "refused"
"#;
    let e = Scenario::from_toml(text, Path::new("t.toml")).unwrap_err().to_string();
    assert!(e.contains("t.toml:14:10"), "{e}");
    assert!(e.contains("answer = \"refused\" contradicts replies = false"), "{e}");
    // Agreeing, they load; an unknown kind is named with the valid ones.
    Scenario::from_toml(&text.replace("refused", "none"), Path::new("t.toml")).unwrap();
    let e = Scenario::from_toml(&text.replace("\"refused\"", "\"rejected\""), Path::new("t.toml")).unwrap_err();
    assert!(e.to_string().contains("unknown variant `rejected`, expected one of"), "{e}");
}

/// The chapter that documents answers and retransmissions, with the examples run here.
const CHAPTER: &str = "docs/expectations.md";

/// The example of [`CHAPTER`] whose first line is `# example: NAME`, loaded.
fn doc_example(name: &str) -> Scenario {
    let block = netpath_cases::docs::example(CHAPTER, &format!("# example: {name}\n"));
    Scenario::from_toml(&block.text, Path::new(CHAPTER)).unwrap_or_else(|e| panic!("{}: {e}", block.place()))
}

/// The answer kinds example of the docs runs and passes, and says what it documents.
#[test]
fn the_doc_example_of_answer_kinds_passes() {
    let sc = doc_example("answer kinds");
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    assert!(o.passed(), "{}", report(&o));
    let kinds: Vec<Answer> = o.probes.iter().map(|p| p.exchanges[0].response.kind).collect();
    assert_eq!(kinds, [Answer::Reply, Answer::None, Answer::Refused, Answer::Refused, Answer::Dropped]);
}

/// An unanswered SYN is sent again after TCP's 1 s retransmission timeout: with a wait long
/// enough for that, the first SYN's exact path still holds (the retransmission is its own
/// traversal, not appended to it), and the retransmission is evidence of its own.
#[test]
fn a_retransmitted_syn_is_its_own_traversal() {
    use netpath::scenario::{Direction, PathExpect};
    let rules = iptables(":INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 81 -j DROP");
    let mut p = probe(ProbeKind::Tcp, "10.9.0.2", Answer::None);
    p.timeout_ms = 1600;
    // The TRACE rule netpath adds in raw PREROUTING shows under iptables-nft as that rule too.
    let legacy: &[&str] = &["raw:PREROUTING:policy:2", "filter:INPUT:rule:1"];
    let nft: &[&str] = &["raw:PREROUTING:rule:1", "raw:PREROUTING:policy:2", "filter:INPUT:rule:1"];
    for (backend, hooks) in [(Backend::Legacy, legacy), (Backend::Nft, nft)] {
        let mut path = PathExpect::new(Direction::Request, "router");
        path.backend = Some(backend);
        path.exact = Some(hooks.iter().map(|h| netpath_cases::hook(h).into()).collect());
        path.last = Some(netpath_cases::hook("filter:INPUT:rule:1").into());
        p.path.push(path);
    }
    let sc = with(link(&rules, ""), p);
    for backend in [Backend::Legacy, Backend::Nft] {
        let o = netpath_cases::run_or_return!(&sc, backend);
        assert!(o.passed(), "{backend:?}: {}", report(&o));
        let ex = &o.probes[0].exchanges[0];
        assert!(!ex.retransmissions.is_empty(), "{backend:?}: the SYN was sent again within 1.6 s: {ex:#?}");
        let again = &ex.retransmissions[0];
        let hooks: Vec<String> = again.path["router"].iter().map(|e| e.hook.to_string()).collect();
        assert_eq!(hooks.last().map(String::as_str), Some("filter:INPUT:rule:1"), "{backend:?}");
        let first: Vec<String> = ex.request.path["router"].iter().map(|e| e.hook.to_string()).collect();
        assert_eq!(hooks, first, "{backend:?}: the same hooks, once each");
        assert!(again.seen.contains_key(&"router/eth0".parse().unwrap()));
        let text = report(&o);
        assert!(text.contains("\n      resent 1 "), "{text}");

        // Twin: the path a merge would make (the first SYN's hooks twice) is not the first's.
        let mut merged = sc.clone();
        for path in &mut merged.probe[0].path {
            let once = path.exact.clone().unwrap();
            path.exact = Some([once.clone(), once].concat());
        }
        let o = netpath_cases::run_or_return!(&merged, backend);
        want(PathExact).request().netns("router").find(&o.probes[0].failures);
    }
}

/// The docs' retransmission example passes, with a retransmission taken apart.
#[test]
fn the_doc_example_of_a_retransmission_passes() {
    let sc = doc_example("retransmission");
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    assert!(o.passed(), "{}", report(&o));
    assert!(!o.probes[0].exchanges[0].retransmissions.is_empty(), "{}", report(&o));
}

/// The docs' sighting example is the entry k8s-service has (which scenario_files runs).
#[test]
fn the_doc_sighting_example_is_in_k8s_service() {
    let file = std::fs::read_to_string(netpath_cases::scenario_path("k8s-service")).unwrap();
    let blocks = netpath_cases::docs::fenced_blocks(CHAPTER, &netpath_cases::doc_text(CHAPTER));
    let example = blocks.iter().find(|b| b.text.contains("sighting = 2")).expect("the docs show sighting = 2");
    let entry = example.text.lines().skip(1).map(|l| format!("{l}\n")).collect::<String>();
    assert!(file.contains(&entry), "k8s-service.toml holds the example of {}:\n{entry}", example.place());
}
