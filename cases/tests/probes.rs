//! Probe kinds on a two-netns link, each with a twin where the datapath refuses it.

use netpath::scenario::{ProbeKind, ProbeSpec, ServerSpec};
use netpath::verdict::expect::FailureKind::*;
use netpath::{Backend, Scenario};

use std::path::Path;

const LINK: &str = r#"
name = "link"
[[netns]]
name = "a"
[[netns]]
name = "b"
iptables = """
*filter
:INPUT ACCEPT [0:0]
COMMIT
"""
[[veth]]
a = { netns = "a", name = "eth0", addresses = ["10.9.0.1/24"] }
b = { netns = "b", name = "eth0", addresses = ["10.9.0.2/24"] }
"#;

/// The link, without probes: each test adds its own (a file must have one to load, so the text
/// has a ping that is dropped here).
fn link() -> Scenario {
    let text = format!("{LINK}[[probe]]\nname = \"ping\"\nfrom = \"a\"\nto = \"10.9.0.2\"\n");
    let mut sc = Scenario::from_toml(&text, Path::new("link.toml")).unwrap();
    sc.probe.clear();
    sc
}

#[test]
fn udp_datagrams_are_answered_by_the_server_and_followed_everywhere() {
    let mut sc = link();
    sc.server.push(ServerSpec { netns: "b".into(), kind: ProbeKind::Udp, port: 5353 });
    let mut p = ProbeSpec::new("udp", ProbeKind::Udp, "a", "10.9.0.2".parse().unwrap());
    p.port = Some(5353);
    p.count = 3;
    p.answered_by.insert("b".into(), 3);
    sc.probe.push(p);
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    for ex in &o.probes[0].exchanges {
        let at_b = &ex.request.seen[&"b/eth0".parse().unwrap()];
        assert_eq!(at_b.ports(), (at_b.ports().0, Some(5353)));
        assert!(ex.reply.seen.contains_key(&"a/eth0".parse().unwrap()));
        // b's INPUT chain saw each datagram: the trace joins UDP by nonce.
        assert!(ex.request.path["b"].iter().any(|e| e.hook.to_string() == "filter:INPUT:policy:1"));
    }

    // Twin: the rule drops the datagrams, so nobody answers and the count fails.
    let mut dropped = sc.clone();
    dropped.netns_mut("b").unwrap().iptables =
        Some("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -j DROP\nCOMMIT\n".into());
    let o = netpath_cases::run_or_return!(&dropped, Backend::Legacy);
    let f = &o.probes[0].failures;
    netpath_cases::want(Answers).answered_by("b").observed("0").find(f);
}

#[test]
fn tcp_connections_are_followed_by_sequence_numbers() {
    let mut sc = link();
    sc.server.push(ServerSpec { netns: "b".into(), kind: ProbeKind::Tcp, port: 8000 });
    let mut p = ProbeSpec::new("tcp", ProbeKind::Tcp, "a", "10.9.0.2".parse().unwrap());
    p.port = Some(8000);
    p.count = 2;
    p.answered_by.insert("b".into(), 2);
    sc.probe.push(p);
    for backend in [Backend::Legacy, Backend::Nft] {
        let o = netpath_cases::run_or_return!(&sc, backend);
        assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
        for ex in &o.probes[0].exchanges {
            // Request = SYN, reply = SYN-ACK, at both ends and in b's trace.
            let syn = &ex.request.seen[&"b/eth0".parse().unwrap()];
            assert!(matches!(&syn.l4, netpath::evidence::packet::L4::Tcp { flags, .. } if flags == "S"), "{syn:?}");
            let synack = &ex.reply.seen[&"a/eth0".parse().unwrap()];
            assert!(
                matches!(&synack.l4, netpath::evidence::packet::L4::Tcp { flags, .. } if flags == "S."),
                "{synack:?}"
            );
            assert!(!ex.request.path["b"].is_empty(), "{backend:?}: the SYN is in b's trace");
        }
    }

    // Twin: a REJECT with RST: no handshake, no answer, no SYN-ACK anywhere.
    let mut refused = sc.clone();
    refused.netns_mut("b").unwrap().iptables = Some(
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp --dport 8000 -j REJECT --reject-with tcp-reset\nCOMMIT\n".into(),
    );
    let o = netpath_cases::run_or_return!(&refused, Backend::Legacy);
    let f = &o.probes[0].failures;
    netpath_cases::want(NoReply).packet(1).find(f);
    assert!(o.probes[0].exchanges[0].reply.seen.is_empty());
    assert_eq!(
        o.probes[0].exchanges[0].request.path["b"].last().map(|e| e.hook.to_string()).as_deref(),
        Some("filter:INPUT:rule:1")
    );
}
