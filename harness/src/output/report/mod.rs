//! Human-readable reports of outcomes: the verdict, and each packet's evidence by kind of
//! expectation, in modules named as in `verdict/`: its observed path (`path.rs`) and its
//! addresses per hop (`addr.rs`).

mod addr;
mod path;

pub use addr::address_table;
pub use path::{path_lines, seed_lines};

use std::fmt::Write;

use crate::engine::{Outcome, ProbeOutcome};
use crate::evidence::{Exchange, PacketEvidence};
use crate::scenario::{CapturePoint, Direction};
use crate::verdict::{Failure, FailureKind};
use std::net::IpAddr;

/// How much evidence a report shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Detail {
    /// Show passing probes' evidence too (`--show-path`).
    pub passing: bool,
    /// Every packet in full (`--verbose`), rather than one packet per class of packets that
    /// took the same path. Failing packets are always shown in full.
    pub every_packet: bool,
}

impl Detail {
    /// What `--show-path` and `--verbose` ask for.
    pub fn of(show_path: bool, verbose: bool) -> Detail {
        Detail { passing: show_path, every_packet: verbose }
    }
}

/// One packet's request and reply in full: path, kernel-log lines, addresses.
fn packet_block(out: &mut String, ex: &Exchange, seed: bool) {
    for d in [Direction::Request, Direction::Reply] {
        let pe = ex.of(d);
        if d == Direction::Reply && pe.path.is_empty() && pe.seen.is_empty() && !ex.replied {
            let _ = writeln!(out, "    packet {} reply: none", ex.packet);
            continue;
        }
        let _ = writeln!(out, "    packet {} {d}: path", ex.packet);
        out.push_str(&path_lines(pe));
        if seed && !pe.path.is_empty() {
            let _ = writeln!(out, "      as kernel log lines:");
            out.push_str(&seed_lines(pe));
        }
        let _ = writeln!(out, "      addresses:");
        out.push_str(&address_table(pe));
        // Each time the sender sent it again: its own traversal, apart from the first.
        let again = if d == Direction::Request { &ex.retransmissions } else { &ex.reply_retransmissions };
        for (k, again) in again.iter().enumerate() {
            let _ = writeln!(out, "    packet {} {}, retransmission {}: path", ex.packet, d, k + 1);
            out.push_str(&path_lines(again));
            let _ = writeln!(out, "      addresses:");
            out.push_str(&address_table(again));
        }
    }
}

/// What packets of one class share: the hooks in every netns and where they were seen with
/// which addresses, both ways. Ports are left out: a client's ephemeral port differs for every
/// connection of a class.
type Side<'a> = (Vec<(&'a String, Vec<String>)>, Vec<(&'a CapturePoint, Option<IpAddr>, Option<IpAddr>)>);

fn side(pe: &PacketEvidence) -> Side<'_> {
    let hooks = pe.path.iter().map(|(ns, evs)| (ns, evs.iter().map(|e| e.hook.to_string()).collect())).collect();
    let seen = pe.seen.iter().map(|(point, p)| (point, p.src, p.dst)).collect();
    (hooks, seen)
}

fn class_key(ex: &Exchange) -> (Side<'_>, Side<'_>, bool) {
    (side(&ex.request), side(&ex.reply), ex.replied)
}

/// `1-3, 5, 8-9`.
pub fn ranges(packets: &[u16]) -> String {
    let mut parts: Vec<String> = vec![];
    let mut i = 0;
    while i < packets.len() {
        let mut j = i;
        while j + 1 < packets.len() && packets[j + 1] == packets[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { packets[i].to_string() } else { format!("{}-{}", packets[i], packets[j]) });
        i = j + 1;
    }
    parts.join(", ")
}

/// The packets of `exchanges` grouped by [`class_key`], in the order of their first packet.
fn classes(exchanges: &[&Exchange]) -> Vec<Vec<usize>> {
    let keys: Vec<_> = exchanges.iter().map(|x| class_key(x)).collect();
    let mut out: Vec<Vec<usize>> = vec![];
    for (i, k) in keys.iter().enumerate() {
        match out.iter_mut().find(|c| keys[c[0]] == *k) {
            Some(c) => c.push(i),
            None => out.push(vec![i]),
        }
    }
    out
}

/// `38 connections: ep1 ×19, ep2 ×19`, then each class's path and addresses once, shown by its
/// first packet. A class is named by the endpoint that answered it where that tells it apart,
/// else by its packets.
fn class_blocks(out: &mut String, exchanges: &[&Exchange], total: usize) {
    let groups = classes(exchanges);
    let answer_of = |c: &[usize]| {
        let a = exchanges[c[0]].answer.as_deref();
        c.iter().all(|&i| exchanges[i].answer.as_deref() == a).then_some(a).flatten()
    };
    let answers: Vec<Option<&str>> = groups.iter().map(|c| answer_of(c)).collect();
    let label = |i: usize| -> String {
        let packets: Vec<u16> = groups[i].iter().map(|&j| exchanges[j].packet).collect();
        let n = packets.len();
        let word = if n == 1 { "packet" } else { "packets" };
        let mut list = ranges(&packets);
        // A class of a hundred scattered connections is told apart by its first few.
        if let Some((cut, _)) = list.match_indices(", ").nth(5) {
            list = format!("{} …", &list[..cut]);
        }
        match answers[i] {
            Some(a) if answers.iter().filter(|b| **b == Some(a)).count() == 1 => format!("{a} ×{n}"),
            Some(a) => format!("{a} ×{n} ({word} {list})"),
            None => format!("{word} {list} ×{n}"),
        }
    };
    let tcp = exchanges
        .iter()
        .flat_map(|x| x.request.seen.values())
        .any(|p| matches!(p.l4, crate::evidence::packet::L4::Tcp { .. }));
    let unit = if tcp { "connections" } else { "packets" };
    let others = if exchanges.len() < total { " more" } else { "" };
    let names: Vec<String> = (0..groups.len()).map(label).collect();
    let _ = writeln!(out, "    {}{others} {unit}: {}", exchanges.len(), names.join(", "));
    for (i, c) in groups.iter().enumerate() {
        let first = exchanges[c[0]];
        let _ = writeln!(out, "    {}: as packet {}", names[i], first.packet);
        packet_block(out, first, false);
    }
}

/// A probe's verdict and, on failure or when asked, its evidence: each failing packet in full,
/// the others one per class (or each in full with `every_packet`).
pub fn probe(p: &ProbeOutcome, detail: Detail) -> String {
    let mut out = String::new();
    let verdict = if p.failures.is_empty() { "ok" } else { "FAILED" };
    let _ = writeln!(out, "  probe {}: {verdict}", p.name);
    for f in &p.failures {
        out.push_str(&failure(f));
    }
    if !detail.passing && p.failures.is_empty() {
        return out;
    }
    let failing = |x: &Exchange| p.failures.iter().any(|f| f.packet == Some(x.packet));
    // A failure about no one packet (a floor, a conntrack entry) concerns them all.
    let all_fail = p.failures.iter().any(|f| f.packet.is_none());
    let (full, rest): (Vec<&Exchange>, Vec<&Exchange>) =
        p.exchanges.iter().partition(|x| detail.every_packet || (!all_fail && failing(x)));
    for ex in &full {
        packet_block(&mut out, ex, true);
    }
    if !rest.is_empty() {
        class_blocks(&mut out, &rest, p.exchanges.len());
    }
    out
}

/// One failed expectation: what was expected, where the scenario says so, and expected against
/// observed (a header as a `-`/`+` diff, with the fields that differ).
pub fn failure(f: &Failure) -> String {
    let mut out = format!("    ✗ {}\n", f.what);
    if let Some(at) = &f.location {
        let _ = writeln!(out, "        at {at}");
    }
    let header = FailureKind::ADDRESS.contains(&f.kind);
    match (&f.expected, header) {
        (Some(expected), true) => {
            let _ = writeln!(out, "        - expected at {}: {expected}", point(f));
            let observed = f.observed.as_deref().unwrap_or("not seen");
            let _ = writeln!(out, "        + observed at {}: {observed}", point(f));
            if !f.mismatched.is_empty() {
                let fields: Vec<&str> = f.mismatched.iter().map(|m| field_key(*m)).collect();
                let _ = writeln!(out, "          (differs in {})", fields.join(", "));
            }
        }
        _ => {
            for line in f.detail.lines() {
                let _ = writeln!(out, "        {line}");
            }
        }
    }
    out
}

/// A header field as a `[[probe.addr]]` entry names it.
fn field_key(field: crate::verdict::HeaderField) -> &'static str {
    use crate::verdict::HeaderField::*;
    match field {
        Src => "src",
        Dst => "dst",
        Sport => "sport",
        Dport => "dport",
        Ttl => "ttl",
        MacSrc => "mac_src",
        MacDst => "mac_dst",
    }
}

/// The capture point a header failure is about, as the scenario named it.
fn point(f: &Failure) -> String {
    f.handle.as_ref().or(f.at.as_ref()).map(ToString::to_string).unwrap_or_default()
}

/// A scenario's report: failing probes with their evidence, passing ones too if `show_path`
/// (one path per class of packets; see [`outcome_in`] for every packet in full).
pub fn outcome(o: &Outcome, show_path: bool) -> String {
    outcome_in(o, Detail::of(show_path, false))
}

/// A scenario's report, showing as much as `detail` asks.
pub fn outcome_in(o: &Outcome, detail: Detail) -> String {
    let mut out = String::new();
    let verdict = if o.passed() { "PASS" } else { "FAIL" };
    let _ = writeln!(out, "{verdict} {} [{}]", o.scenario, o.backend.name());
    if let Some(wg) = &o.wireguard {
        let _ = writeln!(out, "  wireguard: {wg}");
    }
    for p in &o.probes {
        out.push_str(&probe(p, detail));
    }
    if let Some(a) = &o.artifacts {
        let _ = writeln!(out, "  artifacts: {}", a.display());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(packet: u16, answer: &str, dst: &str) -> Exchange {
        let mut request = PacketEvidence::default();
        let info = crate::evidence::packet::PacketInfo { dst: Some(dst.parse().unwrap()), ..Default::default() };
        request.seen.insert("node1/eth0".parse().unwrap(), info);
        Exchange {
            packet,
            nonce: vec![],
            request,
            reply: PacketEvidence::default(),
            retransmissions: vec![],
            reply_retransmissions: vec![],
            replied: true,
            response: crate::evidence::Response::of_kind(crate::scenario::Answer::Reply),
            answer: Some(answer.into()),
        }
    }

    #[test]
    fn packets_that_share_a_path_are_shown_once_and_failing_ones_in_full() {
        let exchanges = vec![
            exchange(1, "ep1", "10.0.0.1"),
            exchange(2, "ep2", "10.0.0.2"),
            exchange(3, "ep1", "10.0.0.1"),
            exchange(4, "ep1", "10.0.0.1"),
        ];
        let mut p = ProbeOutcome { name: "svc".into(), exchanges, failures: vec![] };
        let grouped = probe(&p, Detail::of(true, false));
        assert!(grouped.contains("    4 packets: ep1 ×3, ep2 ×1\n    ep1 ×3: as packet 1\n"), "{grouped}");
        assert_eq!(grouped.matches(": path").count(), 4, "one request and one reply per class:\n{grouped}");
        assert_eq!(probe(&p, Detail::of(false, false)), "  probe svc: ok\n");
        assert_eq!(probe(&p, Detail::of(true, true)).matches(": path").count(), 8);
        assert_eq!(ranges(&[1, 2, 3, 5, 8, 9]), "1-3, 5, 8-9");

        p.failures.push(Failure { packet: Some(3), ..Failure::new(FailureKind::Header, "w".into(), "d".into()) });
        let failed = probe(&p, Detail::default());
        assert!(
            failed.starts_with("  probe svc: FAILED\n    ✗ w\n        d\n    packet 3 request: path\n"),
            "{failed}"
        );
        assert!(failed.contains("    3 more packets: ep1 ×2, ep2 ×1\n"), "{failed}");
    }
}
