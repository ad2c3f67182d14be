//! Human-readable reports of outcomes: a summary line per probe, its failures, and each
//! packet's hops in the order it met them (`hops.rs`, from [`crate::output::hops`]); the older
//! per-netns path (`path.rs`) and address table (`addr.rs`) for those who want them apart.

mod addr;
pub mod hops;
mod path;

pub use addr::address_table;
pub use path::{path_lines, seed_lines};

use std::fmt::Write;

use crate::engine::{Outcome, ProbeOutcome};
use crate::evidence::Exchange;
use crate::output::hops::ExchangeHops;
use crate::verdict::{Failure, FailureKind};

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

/// `packets 1-3, 5 …`: a class of a hundred scattered connections is told apart by its first
/// few.
fn packet_list(packets: &[u16]) -> String {
    let word = if packets.len() == 1 { "packet" } else { "packets" };
    let mut list = ranges(packets);
    if let Some((cut, _)) = list.match_indices(", ").nth(5) {
        list = format!("{} …", &list[..cut]);
    }
    format!("{word} {list}")
}

/// A probe's summary line, its failures and, on failure or when asked, its packets' hops:
/// each failing packet in full, the others one per class of packets that took the same hops
/// (or each in full with `every_packet`).
pub fn probe(p: &ProbeOutcome, detail: Detail) -> String {
    let r = ProbeReport::of(p, detail);
    r.head + &r.paths
}

/// One probe's report in two parts, so that a printer can fold its paths where they repeat
/// those of the same probe in the run printed before ([`RunReport::folded`]).
#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    /// The probe's name.
    pub name: String,
    /// Its summary line and its failures.
    pub head: String,
    /// Its packets' hops, as `detail` asks (empty for a passing probe without `--show-path`).
    pub paths: String,
    /// What its paths are, class by class (packets, answer, each journey's shape), for a
    /// passing probe whose paths are shown one per class: equal fingerprints print the same
    /// paths but for the ports the kernel chose. `None` otherwise.
    pub fingerprint: Option<Vec<String>>,
}

impl ProbeReport {
    /// The report of probe `p`, showing as much as `detail` asks.
    pub fn of(p: &ProbeOutcome, detail: Detail) -> ProbeReport {
        let hops: Vec<ExchangeHops> = p.exchanges.iter().map(ExchangeHops::of).collect();
        let groups = crate::output::hops::classes(&hops);
        let verdict = if p.failures.is_empty() { "ok" } else { "FAILED" };
        let answers: Vec<Option<&str>> = p.exchanges.iter().map(|x| x.answer.as_deref()).collect();
        let mut head = hops::summary_line(&p.name, &hops, groups.len(), &answers, verdict);
        head.push('\n');
        for f in &p.failures {
            head.push_str(&failure(f));
        }
        let fingerprint = (detail.passing && !detail.every_packet && p.failures.is_empty()).then(|| {
            groups
                .iter()
                .flat_map(|c| {
                    let x = &hops[c[0]];
                    let packets: Vec<u16> = c.iter().map(|&i| p.exchanges[i].packet).collect();
                    let answers: Vec<Option<&str>> = c.iter().map(|&i| p.exchanges[i].answer.as_deref()).collect();
                    let journeys =
                        [&x.request, &x.reply].into_iter().chain(&x.retransmissions).chain(&x.reply_retransmissions);
                    std::iter::once(format!("class {packets:?} {answers:?} replied {}", p.exchanges[c[0]].replied))
                        .chain(journeys.map(|j| j.class_key().join("; ")))
                        .collect::<Vec<_>>()
                })
                .collect()
        });
        let paths = paths(p, detail, &hops, &groups);
        ProbeReport { name: p.name.clone(), head, paths, fingerprint }
    }
}

/// A run's report in parts: its headline, each probe's, and what follows them.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// The scenario's name.
    pub scenario: String,
    /// The backend it ran under (`legacy`).
    pub backend: String,
    /// `PASS NAME [backend]` and the WireGuard line.
    pub head: String,
    /// Each probe's, in the scenario's order.
    pub probes: Vec<ProbeReport>,
    /// The artifacts line.
    pub tail: String,
}

impl RunReport {
    /// The report of outcome `o`, showing as much as `detail` asks.
    pub fn of(o: &Outcome, detail: Detail) -> RunReport {
        let mut head = String::new();
        let verdict = if o.passed() { "PASS" } else { "FAIL" };
        let _ = writeln!(head, "{verdict} {} [{}]", o.scenario, o.backend.name());
        if let Some(wg) = &o.wireguard {
            let _ = writeln!(head, "  wireguard: {wg}");
        }
        let tail = o.artifacts.as_ref().map(|a| format!("  artifacts: {}\n", a.display())).unwrap_or_default();
        RunReport {
            scenario: o.scenario.clone(),
            backend: o.backend.name().to_string(),
            head,
            probes: o.probes.iter().map(|p| ProbeReport::of(p, detail)).collect(),
            tail,
        }
    }

    /// The whole report.
    pub fn text(&self) -> String {
        self.folded(None)
    }

    /// The report, where `before` is the same scenario's run printed just before it (under
    /// another backend): a passing probe whose paths are the same as there, class by class,
    /// says so in a line instead of printing them again (`--verbose` prints them all).
    pub fn folded(&self, before: Option<&RunReport>) -> String {
        let mut out = self.head.clone();
        for p in &self.probes {
            out.push_str(&p.head);
            let same = before.filter(|b| b.scenario == self.scenario).and_then(|b| {
                let earlier = b.probes.iter().find(|e| e.name == p.name)?;
                (p.fingerprint.is_some() && earlier.fingerprint == p.fingerprint && !p.paths.is_empty())
                    .then_some(&b.backend)
            });
            match same {
                Some(backend) => {
                    let _ = writeln!(out, "    paths as in [{backend}] above");
                }
                None => out.push_str(&p.paths),
            }
        }
        out.push_str(&self.tail);
        out
    }
}

/// A probe's packets' hops, as `detail` asks: each failing packet in full, the others one per
/// class (`groups`), or every packet in full.
fn paths(p: &ProbeOutcome, detail: Detail, hops: &[ExchangeHops], groups: &[Vec<usize>]) -> String {
    let mut out = String::new();
    if !detail.passing && p.failures.is_empty() {
        return out;
    }
    let cols = hops::Columns::fit(hops);
    let failing = |x: &Exchange| p.failures.iter().any(|f| f.packet == Some(x.packet));
    // A failure about no one packet (a floor, a conntrack entry) concerns them all.
    let all_fail = p.failures.iter().any(|f| f.packet.is_none());
    let full = |i: usize| detail.every_packet || (!all_fail && failing(&p.exchanges[i]));
    let answered =
        |i: usize| p.exchanges[i].answer.as_deref().map(|a| format!(", answered by {a}")).unwrap_or_default();
    // In --verbose every packet is in full: a journey repeats one before only in class views.
    let mut shown = vec![];
    for i in (0..hops.len()).filter(|&i| full(i)) {
        let _ = writeln!(out, "    packet {}{}:", p.exchanges[i].packet, answered(i));
        hops::exchange_lines(&mut out, &hops[i], cols, p.exchanges[i].replied, &mut vec![], "");
    }
    let rest: Vec<Vec<usize>> = groups
        .iter()
        .map(|c| c.iter().copied().filter(|&i| !full(i)).collect::<Vec<_>>())
        .filter(|c| !c.is_empty())
        .collect();
    for (k, c) in rest.iter().enumerate() {
        let packets: Vec<u16> = c.iter().map(|&i| p.exchanges[i].packet).collect();
        let first = p.exchanges[c[0]].answer.as_deref();
        let answer =
            if c.iter().all(|&i| p.exchanges[i].answer.as_deref() == first) { answered(c[0]) } else { String::new() };
        // One path: the summary line said so, and the path is the probe's.
        if groups.len() > 1 || rest.len() < groups.len() {
            let _ = writeln!(out, "    path {} ({}{answer}):", k + 1, packet_list(&packets));
        }
        let label = format!("path {}", k + 1);
        hops::exchange_lines(&mut out, &hops[c[0]], cols, p.exchanges[c[0]].replied, &mut shown, &label);
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
    RunReport::of(o, detail).text()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::PacketEvidence;

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
        let summary = "  svc: 4 packets, 2 paths, ep1 ×3, ep2 ×1, ok\n";
        let grouped = probe(&p, Detail::of(true, false));
        assert!(grouped.starts_with(summary), "{grouped}");
        assert!(
            grouped.contains("\n    path 1 (packets 1, 3-4, answered by ep1):\n      request  node1/eth0"),
            "{grouped}"
        );
        assert!(grouped.contains("\n    path 2 (packet 2, answered by ep2):\n"), "{grouped}");
        assert_eq!(grouped.matches("request  ").count(), 2, "one request and one reply per class:\n{grouped}");
        assert_eq!(probe(&p, Detail::of(false, false)), summary);
        assert_eq!(probe(&p, Detail::of(true, true)).matches("request  ").count(), 4);
        assert_eq!(ranges(&[1, 2, 3, 5, 8, 9]), "1-3, 5, 8-9");

        p.failures.push(Failure { packet: Some(3), ..Failure::new(FailureKind::Header, "w".into(), "d".into()) });
        let failed = probe(&p, Detail::default());
        assert!(
            failed.starts_with(
                "  svc: 4 packets, 2 paths, ep1 ×3, ep2 ×1, FAILED\n    ✗ w\n        d\n    packet 3, answered by ep1:\n      request  node1/eth0"
            ),
            "{failed}"
        );
        assert!(failed.contains("    path 1 (packets 1, 4, answered by ep1):\n"), "{failed}");
    }

    /// A run whose passing probe repeats, class by class, the paths of the same scenario's run
    /// printed before it says so in a line; twins: other paths, a failure, `--verbose`, or
    /// another scenario print them in full.
    #[test]
    fn a_probe_whose_paths_repeat_the_run_before_is_folded_to_a_line() {
        let run = |backend: &str, dst: &str, failed: bool, detail: Detail| {
            let exchanges = vec![exchange(1, "ep1", dst), exchange(2, "ep1", dst)];
            let mut p = ProbeOutcome { name: "svc".into(), exchanges, failures: vec![] };
            if failed {
                p.failures.push(Failure::new(FailureKind::Header, "w".into(), "d".into()));
            }
            RunReport {
                scenario: "sc".into(),
                backend: backend.into(),
                head: format!("PASS sc [{backend}]\n"),
                probes: vec![ProbeReport::of(&p, detail)],
                tail: String::new(),
            }
        };
        let shown = Detail::of(true, false);
        let legacy = run("legacy", "10.0.0.1", false, shown);
        let nft = run("nft", "10.0.0.1", false, shown);
        assert_eq!(
            nft.folded(Some(&legacy)),
            "PASS sc [nft]\n  svc: 2 packets, 1 path, answered by ep1, ok\n    paths as in [legacy] above\n"
        );
        assert_eq!(nft.text(), nft.folded(None));
        assert!(nft.text().contains("request  node1/eth0"), "{}", nft.text());
        let other = run("nft", "10.0.0.2", false, shown);
        assert_eq!(other.folded(Some(&legacy)), other.text(), "other addresses: in full");
        let failing = run("nft", "10.0.0.1", true, shown);
        assert_eq!(failing.folded(Some(&legacy)), failing.text(), "a failing probe: in full");
        let verbose = run("nft", "10.0.0.1", false, Detail::of(true, true));
        assert_eq!(verbose.folded(Some(&run("legacy", "10.0.0.1", false, Detail::of(true, true)))), verbose.text());
        let mut elsewhere = legacy.clone();
        elsewhere.scenario = "another".into();
        assert_eq!(nft.folded(Some(&elsewhere)), nft.text(), "another scenario: in full");
    }
}
