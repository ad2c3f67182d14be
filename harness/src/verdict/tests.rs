//! Judging whole probes: conditions, ports held against the probe's own connection, the
//! failures of every kind with their fields, texts and order; and the registry of kinds.

use std::collections::BTreeMap;

use super::*;
use crate::evidence::packet::PacketInfo;
use crate::observe::trace::Hook;
use crate::scenario::{AddrExpect, Direction, PathExpect, PortExpect};

fn path_hooks(s: &[&str]) -> Vec<crate::scenario::PathHook> {
    s.iter().map(|h| h.parse().unwrap()).collect()
}

fn hooks(s: &[&str]) -> Vec<Hook> {
    s.iter().map(|h| h.parse().unwrap()).collect()
}

/// Every kind's verdict on `probe`, with no conntrack table read.
fn check(probe: &ProbeSpec, backend: Backend, exchanges: &[Exchange]) -> Vec<Failure> {
    let none = BTreeMap::new();
    judge(probe, &ProbeEvidence { backend, kernel: crate::kernel::running(), exchanges, conntrack: &none })
}

/// The conntrack kind's verdict on `probe` against `entries`.
fn check_conntrack(probe: &ProbeSpec, entries: &BTreeMap<String, Vec<Entry>>) -> Vec<Failure> {
    let evidence = ProbeEvidence { backend: Backend::Legacy, kernel: None, exchanges: &[], conntrack: entries };
    conntrack::ConntrackKind.judge(probe, &evidence)
}

/// A TCP exchange whose request left `client/eth0` with sport 40312 and was seen at
/// `host/eth0` with `uplink_sport`; its reply came back to 40312 at client/eth0.
fn connection(packet: u16, uplink_sport: u16, answer: Option<&str>) -> Exchange {
    use crate::evidence::PacketEvidence;
    let tcp = |sport, dport| crate::evidence::packet::L4::Tcp { sport, dport, flags: "S".into(), seq: None, ack: None };
    let info = |src: &str, l4| PacketInfo { src: Some(src.parse().unwrap()), l4, ..Default::default() };
    let mut request = PacketEvidence::default();
    request.seen.insert("client/eth0".parse().unwrap(), info("10.0.0.2", tcp(40312, 80)));
    request.seen.insert("host/eth0".parse().unwrap(), info("10.9.0.1", tcp(uplink_sport, 80)));
    let mut reply = PacketEvidence::default();
    reply.seen.insert("client/eth0".parse().unwrap(), info("10.9.0.30", tcp(80, 40312)));
    Exchange {
        packet,
        nonce: vec![],
        request,
        reply,
        retransmissions: vec![],
        reply_retransmissions: vec![],
        replied: true,
        response: crate::evidence::Response::of_kind(crate::scenario::Answer::Reply),
        answer: answer.map(Into::into),
    }
}

fn probe_with(addr: Vec<AddrExpect>, path: Vec<PathExpect>) -> ProbeSpec {
    let mut p = ProbeSpec::new("p", crate::scenario::ProbeKind::Tcp, "client", "10.9.0.30".parse().unwrap());
    p.port = Some(80);
    p.addr = addr;
    p.path = path;
    p
}

#[test]
fn kept_and_changed_hold_against_the_probes_own_port() {
    let uplink = |sport: PortExpect| AddrExpect {
        sport: Some(sport),
        dport: Some(PortExpect::Kept),
        ..AddrExpect::new(Direction::Request, "host/eth0".parse().unwrap())
    };
    let kept = probe_with(vec![uplink(PortExpect::Kept)], vec![]);
    let changed = probe_with(vec![uplink(PortExpect::Changed)], vec![]);
    let untranslated = [connection(1, 40312, None)];
    let translated = [connection(1, 1024, None)];
    assert_eq!(check(&kept, Backend::Legacy, &untranslated), vec![]);
    assert_eq!(check(&changed, Backend::Legacy, &translated), vec![]);
    // A translation that is missing, and one that appears where none should be.
    let f = check(&changed, Backend::Legacy, &untranslated);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].what, "addresses of packet 1 request at host/eth0");
    assert!(
        f[0].detail.ends_with("expected any:changed > any:kept, observed 10.9.0.1:40312 (kept) > ?:80 (kept)"),
        "{}",
        f[0].detail
    );
    let f = check(&kept, Backend::Legacy, &translated);
    assert!(f[0].detail.contains(":1024 (changed from 40312)"), "{f:#?}");
    // The reply's dport is held against the client's port too.
    let reply = AddrExpect {
        dport: Some(PortExpect::Kept),
        ..AddrExpect::new(Direction::Reply, "client/eth0".parse().unwrap())
    };
    assert_eq!(check(&probe_with(vec![reply.clone()], vec![]), Backend::Legacy, &translated), vec![]);
    let changed_reply = AddrExpect { dport: Some(PortExpect::Changed), ..reply };
    assert_eq!(check(&probe_with(vec![changed_reply], vec![]), Backend::Legacy, &translated).len(), 1);
    // Without the probe's own port captured in its netns, a relation cannot hold.
    let mut blind = connection(1, 40312, None);
    blind.request.seen.remove(&"client/eth0".parse().unwrap());
    assert_eq!(check(&kept, Backend::Legacy, &[blind]).len(), 1);
}

#[test]
fn entries_apply_to_every_packet_or_to_those_their_conditions_select() {
    let at_uplink = |packet: Option<Packets>, answered_by: Option<&str>| AddrExpect {
        packet,
        answered_by: answered_by.map(Into::into),
        src: Some("10.9.0.99".parse().unwrap()),
        ..AddrExpect::new(Direction::Request, "host/eth0".parse().unwrap())
    };
    let flow =
        [connection(1, 40312, Some("ep1")), connection(2, 40312, Some("ep2")), connection(3, 40312, Some("ep1"))];
    let failing = |e: AddrExpect| -> Vec<Option<u16>> {
        check(&probe_with(vec![e], vec![]), Backend::Nft, &flow).iter().map(|f| f.packet).collect()
    };
    assert_eq!(failing(at_uplink(None, None)), [Some(1), Some(2), Some(3)]);
    assert_eq!(failing(at_uplink(Some(Packets::One(2)), None)), [Some(2)]);
    assert_eq!(failing(at_uplink(Some(Packets::From(2)), None)), [Some(2), Some(3)]);
    assert_eq!(failing(at_uplink(None, Some("ep1"))), [Some(1), Some(3)]);
    // With answered_by, packets count among those that endpoint answered.
    assert_eq!(failing(at_uplink(Some(Packets::From(2)), Some("ep1"))), [Some(3)]);
    assert_eq!(failing(at_uplink(Some(Packets::One(1)), Some("ep1"))), [Some(1)]);
    assert_eq!(failing(at_uplink(Some(Packets::One(1)), Some("ep2"))), [Some(2)]);
    assert_eq!(failing(at_uplink(Some(Packets::One(2)), Some("ep2"))), Vec::<Option<u16>>::new());
    assert_eq!(failing(at_uplink(None, Some("ep9"))), Vec::<Option<u16>>::new());
    let f = check(&probe_with(vec![at_uplink(None, Some("ep2"))], vec![]), Backend::Nft, &flow);
    assert_eq!(f[0].what, "addresses of packet 2 request at host/eth0, answered by ep2");
    // A backend variant applies under its backend only.
    let mut path = PathExpect::new(Direction::Request, "host");
    path.exact = Some(path_hooks(&["nat:POSTROUTING:rule:1"]));
    path.backend = Some(Backend::Legacy);
    assert_eq!(check(&probe_with(vec![], vec![path.clone()]), Backend::Nft, &flow), vec![]);
    let f = check(&probe_with(vec![], vec![path]), Backend::Legacy, &flow);
    assert_eq!(f.len(), 3);
    assert_eq!(f[0].what, "path of packet 1 request in netns host (exact)");
}

/// An exchange whose request met `hooks` in netns `host` and got no reply.
fn traced(hooks_seen: &[&str]) -> Exchange {
    use crate::observe::trace::event::{Ifaces, TraceEvent};
    let mut ex = connection(1, 40312, None);
    ex.replied = false;
    ex.response = crate::evidence::Response::of_kind(crate::scenario::Answer::None);
    let event = |h: &Hook| TraceEvent {
        netns: "host".into(),
        hook: h.clone(),
        ifaces: Ifaces::default(),
        packet: PacketInfo::default(),
        payload: None,
        nonce: None,
        source: None,
        verdict: None,
        rule: None,
        chain: None,
    };
    ex.request.path.insert("host".into(), hooks(hooks_seen).iter().map(event).collect());
    ex
}

/// A reply that came part of the way: the failure starts where it was last captured (by the
/// captures' times, not the points' names) and the last hook it met in that netns.
#[test]
fn a_lost_reply_is_said_first_where_it_was_last_seen() {
    let mut ex = traced(&["raw:PREROUTING:policy:2", "filter:FORWARD:policy:1"]);
    let ms = std::time::Duration::from_millis;
    ex.request.first_seen.insert("client/eth0".parse().unwrap(), ms(1));
    ex.request.first_seen.insert("host/eth0".parse().unwrap(), ms(2));
    ex.reply.seen.clear();
    for (point, t) in [("server/eth0", 3), ("host/eth1", 4)] {
        ex.reply.seen.insert(point.parse().unwrap(), PacketInfo::default());
        ex.reply.first_seen.insert(point.parse().unwrap(), ms(t));
    }
    let mut drop = traced(&["filter:FORWARD:rule:3"]).request.path.remove("host").unwrap();
    drop[0].verdict = Some("drop".parse().unwrap());
    ex.reply.path.insert("host".into(), drop);
    let f = check(&probe_with(vec![], vec![]), Backend::Legacy, &[ex]);
    assert_eq!(
        f[0].detail,
        "the reply was last seen at host/eth1, its last hook in netns host filter:FORWARD:rule:3 drop: no reply \
         reached the sender in netns client within 1000 ms; the request was seen at client/eth0, host/eth0 (in that order); last hooks \
         filter:FORWARD:policy:1 in netns host"
    );
}

/// The texts people read, pinned: tests match on kinds and fields, so only these notice a
/// rewording.
#[test]
fn failure_texts_are_pinned() {
    let mut path = PathExpect::new(Direction::Request, "host");
    path.exact = Some(path_hooks(&["raw:PREROUTING:policy:2", "nat:POSTROUTING:rule:1"]));
    path.includes = Some(path_hooks(&["nat:POSTROUTING:rule:1"]));
    path.last = Some("nat:POSTROUTING:rule:1".parse().unwrap());
    path.never = vec!["filter".parse().unwrap()];
    let ex = traced(&["raw:PREROUTING:policy:2", "filter:FORWARD:policy:1"]);
    let f = check(&probe_with(vec![], vec![path]), Backend::Legacy, &[ex]);
    let texts: Vec<(FailureKind, &str, &str)> =
        f.iter().map(|f| (f.kind, f.what.as_str(), f.detail.as_str())).collect();
    let observed = "observed:\n    raw:PREROUTING:policy:2\n    filter:FORWARD:policy:1";
    assert_eq!(
        texts,
        [
            (
                FailureKind::NoReply,
                "packet 1: a reply",
                "the reply was last seen at client/eth0: no reply reached the sender in netns client within 1000 ms; the request was seen at client/eth0, host/eth0; last hooks filter:FORWARD:policy:1 in netns host"
            ),
            (
                FailureKind::PathExact,
                "path of packet 1 request in netns host (exact)",
                "expected (-) vs observed (+):\n    raw:PREROUTING:policy:2\n  + filter:FORWARD:policy:1\n  - nat:POSTROUTING:rule:1"
            ),
            (
                FailureKind::PathIncludes,
                "path of packet 1 request in netns host (includes, in order)",
                &format!("`nat:POSTROUTING:rule:1` not found in order; {observed}") as &str
            ),
            (
                FailureKind::PathLast,
                "path of packet 1 request in netns host (last hook)",
                &format!(
                    "expected the packet's last hook to be nat:POSTROUTING:rule:1, it was filter:FORWARD:policy:1; {observed}"
                ) as &str
            ),
            (
                FailureKind::PathNever,
                "path of packet 1 request in netns host (never filter)",
                &format!("visited filter:FORWARD:policy:1; {observed}") as &str
            ),
        ]
    );
}

#[test]
fn failures_carry_their_kind_and_fields() {
    let mut path = PathExpect::new(Direction::Request, "host");
    path.exact = Some(path_hooks(&["raw:PREROUTING:policy:2", "nat:POSTROUTING:rule:1"]));
    path.last = Some("nat:POSTROUTING:rule:1".parse().unwrap());
    let uplink = AddrExpect {
        src: Some("10.9.0.2".parse().unwrap()),
        sport: Some(PortExpect::Changed),
        ..AddrExpect::new(Direction::Request, "host/eth0".parse().unwrap())
    };
    let gone = AddrExpect::new(Direction::Reply, "host/eth0".parse().unwrap());
    let ex = traced(&["raw:PREROUTING:policy:2", "filter:FORWARD:policy:1"]);
    let f = check(&probe_with(vec![uplink, gone], vec![path]), Backend::Legacy, &[ex]);
    let of = |kind| f.iter().find(|f| f.kind == kind).unwrap_or_else(|| panic!("no {kind:?} in {f:#?}"));
    let lost = of(FailureKind::NoReply);
    assert_eq!(lost.netns.as_deref(), Some("client"));
    assert_eq!(lost.last_hooks["host"], "filter:FORWARD:policy:1".parse().unwrap());
    assert_eq!(lost.seen_at.len(), 2);
    let exact = of(FailureKind::PathExact);
    assert_eq!(
        (exact.packet, exact.direction, exact.netns.as_deref()),
        (Some(1), Some(Direction::Request), Some("host"))
    );
    assert_eq!(exact.missing, hooks(&["nat:POSTROUTING:rule:1"]));
    assert_eq!(exact.unexpected, hooks(&["filter:FORWARD:policy:1"]));
    assert_eq!(exact.hooks, hooks(&["raw:PREROUTING:policy:2", "filter:FORWARD:policy:1"]));
    let last = of(FailureKind::PathLast);
    assert_eq!(last.observed.as_deref(), Some("filter:FORWARD:policy:1"));
    let header = of(FailureKind::Header);
    assert_eq!(header.mismatched, [HeaderField::Src, HeaderField::Sport]);
    assert_eq!(header.at, Some("host/eth0".parse().unwrap()));
    assert_eq!(header.observed.as_deref(), Some("10.9.0.1:40312 (kept) > ?"));
    let not_seen = of(FailureKind::NotSeen);
    assert_eq!((not_seen.direction, not_seen.observed.as_deref()), (Some(Direction::Reply), None));
}

#[test]
fn reply_answer_address_and_conntrack_texts_are_pinned() {
    let mut p = probe_with(
        vec![
            AddrExpect::new(Direction::Reply, "host/eth9".parse().unwrap()),
            AddrExpect { absent: true, ..AddrExpect::new(Direction::Request, "client/eth0".parse().unwrap()) },
        ],
        vec![],
    );
    p.replies = Some(false);
    p.answered_by.insert("ep9".into(), 1);
    let f = check(&p, Backend::Legacy, &[connection(1, 40312, Some("ep1"))]);
    let texts: Vec<(FailureKind, &str, &str)> =
        f.iter().map(|f| (f.kind, f.what.as_str(), f.detail.as_str())).collect();
    assert_eq!(
        texts,
        [
            (
                FailureKind::UnexpectedReply,
                "packet 1: no answer of any kind (the request is dropped on its way)",
                "a reply reached client"
            ),
            (
                FailureKind::NotSeen,
                "addresses of packet 1 reply at host/eth9",
                "at host/eth9: expected any > any, observed not seen"
            ),
            (
                FailureKind::Seen,
                "addresses of packet 1 request at client/eth0",
                "at client/eth0: expected not seen, observed 10.0.0.2 > ?"
            ),
            (FailureKind::Answers, "answers from ep9", "expected at least 1 of 1, got 0 (ep1: 1)"),
        ]
    );
    p.conntrack.push(crate::scenario::ConntrackExpect {
        netns: "host".into(),
        proto: None,
        orig: Default::default(),
        reply: Default::default(),
    });
    let f = check_conntrack(&p, &BTreeMap::new());
    assert_eq!((f[0].kind, f[0].netns.as_deref()), (FailureKind::Conntrack, Some("host")));
    assert_eq!(f[0].what, "conntrack entry in netns host");
    assert_eq!(f[0].detail, "expected proto = \"tcp\", orig = {}, reply = {}\nno entry in netns host's table");
}

/// A conntrack failure writes the expected entry as a scenario file does and lists the entries
/// closest to it first, at most five, counting the rest.
#[test]
fn a_conntrack_failure_shows_the_closest_entries_in_scenario_syntax() {
    let mut p = probe_with(vec![], vec![]);
    let orig =
        crate::scenario::Tuple { dst: Some("10.0.0.9".parse().unwrap()), dport: Some(8080), ..Default::default() };
    let reply = crate::scenario::Tuple { src: Some("192.168.0.2".parse().unwrap()), ..Default::default() };
    p.conntrack.push(crate::scenario::ConntrackExpect { netns: "host".into(), proto: None, orig, reply });
    let mut table = String::new();
    for i in 0..20 {
        table.push_str(&format!(
            "udp 17 29 src=10.0.1.{i} dst=10.0.2.{i} sport=5{i:03} dport=53 src=10.0.2.{i} dst=10.0.1.{i} sport=53 dport=5{i:03} mark=0 use=1\n"
        ));
    }
    // The closest: the service's DNAT to another pod (3 of 4 things named); then a TCP entry to
    // the service's port on another address (2).
    table.push_str("tcp 6 117 TIME_WAIT src=10.0.0.2 dst=10.0.0.7 sport=40000 dport=8080 src=10.0.0.7 dst=10.0.0.2 sport=8080 dport=40000 mark=0 use=1\n");
    table.push_str("tcp 6 117 TIME_WAIT src=10.0.0.2 dst=10.0.0.9 sport=40001 dport=8080 src=192.168.0.3 dst=10.0.0.2 sport=80 dport=40001 mark=0 use=1\n");
    let entries = BTreeMap::from([("host".to_string(), crate::evidence::conntrack::parse(&table))]);
    let f = check_conntrack(&p, &entries);
    let lines: Vec<&str> = f[0].detail.lines().collect();
    assert_eq!(
        lines[0],
        "expected proto = \"tcp\", orig = { dst = \"10.0.0.9\", dport = 8080 }, reply = { src = \"192.168.0.2\" }"
    );
    assert_eq!(lines[1], "closest of the 22 entries in netns host:");
    assert!(lines[2].contains("src=192.168.0.3"), "{}", f[0].detail);
    assert!(lines[3].contains("dst=10.0.0.7"), "{}", f[0].detail);
    assert_eq!(lines.len(), 2 + 5 + 1, "{}", f[0].detail);
    assert_eq!(lines[7], "17 more entries in the artifacts (host.conntrack)");
    assert!(!f[0].detail.contains("Tuple {"), "no Rust debug syntax: {}", f[0].detail);
}

/// A probe that breaks an expectation of every kind but `replies = false`, judged on a request
/// that got no reply; and one that breaks that one. Between them, every kind of failure.
fn broken_probes() -> Vec<(ProbeSpec, Vec<Exchange>)> {
    let mut path = PathExpect::new(Direction::Request, "host");
    path.exact = Some(path_hooks(&["raw:PREROUTING:policy:2", "nat:POSTROUTING:rule:1"]));
    path.includes = Some(path_hooks(&["nat:POSTROUTING:rule:1"]));
    path.last = Some("nat:POSTROUTING:rule:1".parse().unwrap());
    path.never = vec!["filter".parse().unwrap()];
    let at = |point: &str| AddrExpect::new(Direction::Request, point.parse().unwrap());
    let header = AddrExpect { src: Some("10.9.0.99".parse().unwrap()), ..at("host/eth0") };
    let absent = AddrExpect { absent: true, ..at("client/eth0") };
    let mut lost = probe_with(vec![header, at("host/eth9"), absent], vec![path]);
    lost.answered_by.insert("ep9".into(), 1);
    lost.conntrack.push(crate::scenario::ConntrackExpect {
        netns: "host".into(),
        proto: None,
        orig: Default::default(),
        reply: Default::default(),
    });
    let drop_in_host = crate::scenario::DropExpect {
        netns: "host".into(),
        reason: Some("IP_INADDRERRORS".into()),
        function: None,
        direction: Direction::Request,
        packet: None,
        backend: None,
        kernel: None,
    };
    let mut dropped = probe_with(vec![], vec![]);
    dropped.replies = Some(false);
    dropped.drop.push(drop_in_host.clone());
    let mut rejected = probe_with(vec![], vec![]);
    rejected.answer = Some(crate::scenario::Answer::Refused);
    rejected.drop.push(drop_in_host);
    let mut no_socket = traced(&["raw:PREROUTING:policy:2"]);
    no_socket.request.drops.push(kernel_drop("server", "NO_SOCKET", "__udp4_lib_rcv+0x2c4"));
    vec![
        (lost, vec![traced(&["raw:PREROUTING:policy:2", "filter:FORWARD:policy:1"])]),
        (dropped, vec![connection(1, 40312, None)]),
        (rejected, vec![no_socket]),
    ]
}

#[test]
fn every_failure_kind_is_claimed_by_one_kind_of_expectation_which_reports_it() {
    use FailureKind::*;
    let all = [
        NoReply,
        UnexpectedReply,
        WrongAnswer,
        PathExact,
        PathIncludes,
        PathLast,
        PathNever,
        Header,
        NotSeen,
        Seen,
        Answers,
        Conntrack,
        NotDropped,
        DroppedOtherwise,
    ];
    for k in all {
        // An exhaustive match: a new FailureKind fails to compile here until it is listed.
        match k {
            NoReply | UnexpectedReply | WrongAnswer | PathExact | PathIncludes | PathLast | PathNever | Header
            | NotSeen | Seen | Answers | Conntrack | NotDropped | DroppedOtherwise => {}
        }
        let claims: Vec<&str> = KINDS.iter().filter(|e| e.failures().contains(&k)).map(|e| e.name()).collect();
        assert_eq!(claims.len(), 1, "{k:?} is claimed by {claims:?}: list it in the failures() of one kind in KINDS");
    }
    let none = BTreeMap::new();
    let mut reported = vec![];
    for (probe, exchanges) in broken_probes() {
        let evidence =
            ProbeEvidence { backend: Backend::Legacy, kernel: None, exchanges: &exchanges, conntrack: &none };
        for kind in KINDS {
            for f in kind.judge(&probe, &evidence) {
                assert!(
                    kind.failures().contains(&f.kind),
                    "{} reports {:?} and does not claim it",
                    kind.name(),
                    f.kind
                );
                reported.push(f.kind);
            }
        }
    }
    for k in all {
        assert!(reported.contains(&k), "no kind reported {k:?} on broken_probes(): break its expectation there");
    }
}

#[test]
fn every_expectation_key_of_a_probe_is_read_by_one_named_kind() {
    // What a probe sends; every other key of a [[probe]] table states an expectation.
    const SENDS: [&str; 8] = ["name", "kind", "from", "to", "count", "timeout_ms", "port", "frame"];
    // The keys a [[probe]] table takes, as serde lists them for one it does not.
    let e = toml::from_str::<ProbeSpec>("no-such-key = 1").unwrap_err().to_string();
    let listed = e.split("expected one of ").nth(1).and_then(|s| s.lines().next()).unwrap_or_else(|| panic!("{e}"));
    let keys: Vec<&str> = listed.split(", ").map(|k| k.trim_matches('`')).collect();
    assert!(SENDS.iter().all(|k| keys.contains(k)), "{keys:?}");
    for key in keys.iter().filter(|k| !SENDS.contains(k)) {
        let readers: Vec<&str> = KINDS.iter().filter(|e| e.keys().contains(key)).map(|e| e.name()).collect();
        assert_eq!(readers.len(), 1, "`{key}` of [[probe]] is read by {readers:?}: one kind in KINDS must read it");
    }
    let mut names = vec![];
    for kind in KINDS {
        assert!(
            kind.keys().iter().all(|k| keys.contains(k)),
            "{} reads a key [[probe]] lacks: {:?}",
            kind.name(),
            kind.keys()
        );
        assert!(!kind.failures().is_empty(), "{} reports no kind of failure", kind.name());
        assert!(!kind.name().is_empty() && !names.contains(&kind.name()), "{:?} is not a name of its own", kind.name());
        names.push(kind.name());
    }
}

/// The answer to each packet first (a packet that got none explains what else it lacks), then
/// each packet's own failures in packet order, then those about the probe as a whole.
#[test]
fn failures_are_reported_answers_first_then_packet_by_packet_then_the_probes() {
    use FailureKind::*;
    let mut path = PathExpect::new(Direction::Request, "host");
    path.last = Some("nat:POSTROUTING:rule:1".parse().unwrap());
    let header = AddrExpect {
        src: Some("10.9.0.99".parse().unwrap()),
        ..AddrExpect::new(Direction::Request, "host/eth0".parse().unwrap())
    };
    let (mut lost, _) = broken_probes().remove(0);
    (lost.path, lost.addr) = (vec![path], vec![header]);
    let hooks = ["raw:PREROUTING:policy:2", "filter:FORWARD:policy:1"];
    let mut second = traced(&hooks);
    second.packet = 2;
    let f = check(&lost, Backend::Legacy, &[traced(&hooks), second]);
    let order: Vec<(FailureKind, Option<u16>)> = f.iter().map(|f| (f.kind, f.packet)).collect();
    assert_eq!(
        order,
        [
            (NoReply, Some(1)),
            (NoReply, Some(2)),
            (PathLast, Some(1)),
            (Header, Some(1)),
            (PathLast, Some(2)),
            (Header, Some(2)),
            (Answers, None),
            (Conntrack, None),
        ]
    );
}

fn kernel_drop(netns: &str, reason: &str, location: &str) -> crate::observe::kfree_skb::KernelDrop {
    crate::observe::kfree_skb::KernelDrop {
        netns: netns.into(),
        reason: Some(reason.into()),
        location: location.into(),
        device: Some("eth0".into()),
        by: None,
        ktime: std::time::Duration::ZERO,
        packet: None,
        bytes: vec![],
    }
}

#[test]
fn a_drop_entry_holds_on_the_netns_reason_and_function_the_kernel_reported() {
    use crate::verdict::drop::fits;
    let want = |reason: Option<&str>, function: Option<&str>| crate::scenario::DropExpect {
        netns: "router".into(),
        reason: reason.map(String::from),
        function: function.map(String::from),
        direction: Direction::Request,
        packet: None,
        backend: None,
        kernel: None,
    };
    let k = kernel_drop("router", "IP_INADDRERRORS", "ip_error+0x5a");
    assert!(fits(&want(Some("IP_INADDRERRORS"), None), &k));
    assert!(fits(&want(Some("IP_INADDRERRORS"), Some("ip_error")), &k), "the offset is not part of the name");
    assert!(!fits(&want(Some("IP_INNOROUTES"), None), &k));
    assert!(!fits(&want(None, Some("ip_rcv")), &k));
    assert!(!fits(&want(None, Some("ip_error")), &kernel_drop("a", "IP_INADDRERRORS", "ip_error")), "another netns");
    let mut p = probe_with(vec![], vec![]);
    p.replies = Some(false);
    p.drop.push(want(Some("IP_INNOROUTES"), None));
    let mut x = traced(&["raw:PREROUTING:policy:2"]);
    x.request.drops.push(k);
    let f = check(&p, Backend::Legacy, &[x]);
    assert_eq!(
        (f[0].kind, f[0].packet, f[0].netns.as_deref()),
        (FailureKind::DroppedOtherwise, Some(1), Some("router"))
    );
    assert_eq!(f[0].expected.as_deref(), Some("IP_INNOROUTES in router"));
    assert_eq!(
        f[0].observed.as_deref(),
        Some(
            "dropped in router on eth0 at ip_error (IP_INADDRERRORS: the host would have to forward it and forwarding is off (ip_forward = 0), or the destination is invalid)"
        )
    );
    let f = check(&p, Backend::Legacy, &[traced(&["raw:PREROUTING:policy:2"])]);
    assert_eq!((f[0].kind, f[0].observed.as_deref()), (FailureKind::NotDropped, None));
}
