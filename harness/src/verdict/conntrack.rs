//! Judging `[[probe.conntrack]]`: the entries of each netns's conntrack table after the run
//! against the protocol and tuples an entry names.

use super::{ExpectationKind, Failure, FailureKind, ProbeEvidence};
use crate::scenario::{ConntrackExpect, ConntrackProto, ProbeSpec};

/// `[[probe.conntrack]]`.
pub struct ConntrackKind;

impl ExpectationKind for ConntrackKind {
    fn name(&self) -> &'static str {
        "conntrack"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["conntrack"]
    }

    fn failures(&self) -> &'static [FailureKind] {
        &[FailureKind::Conntrack]
    }

    /// Each entry against the entries of its netns; the protocol, when the entry leaves it out,
    /// is the one the probe's kind produces over its target's family.
    fn judge(&self, probe: &ProbeSpec, evidence: &ProbeEvidence<'_>) -> Vec<Failure> {
        let entries = evidence.conntrack;
        let v6 = probe.to.addr().is_some_and(|a| a.is_ipv6());
        let default_proto = crate::probe::prober(probe.kind).conntrack_proto(v6);
        probe
            .conntrack
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let proto = c.proto.unwrap_or(default_proto);
                let list = entries.get(&c.netns).map(Vec::as_slice).unwrap_or_default();
                if list.iter().any(|e| e.matches(Some(proto.name()), &c.orig, &c.reply)) {
                    return None;
                }
                let mut ranked: Vec<(usize, &str)> =
                    list.iter().map(|e| (e.closeness(proto.name(), &c.orig, &c.reply), e.line.as_str())).collect();
                // Stable: entries as close as each other keep the table's order.
                ranked.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
                let wanted = expected_entry(proto, c);
                let f = Failure::new(
                    FailureKind::Conntrack,
                    format!("conntrack entry in netns {}", c.netns),
                    format!("expected {wanted}\n{}", closest(&ranked, &c.netns)),
                );
                let lines: Vec<&str> = ranked.iter().map(|(_, l)| *l).collect();
                Some(Failure {
                    netns: Some(c.netns.clone()),
                    expected: Some(wanted),
                    observed: Some(lines.join("\n")),
                    ..f.by("conntrack", Some(i))
                })
            })
            .collect()
    }
}

/// The most entries a conntrack failure lists: the closest to the one expected.
pub const CLOSEST: usize = 5;

/// An expected entry as a scenario file writes it: `proto = "tcp", orig = { dport = 8080 },
/// reply = { src = "192.168.0.2" }`.
fn expected_entry(proto: ConntrackProto, c: &ConntrackExpect) -> String {
    format!("proto = \"{proto}\", orig = {}, reply = {}", c.orig, c.reply)
}

/// The [`CLOSEST`] entries of `ranked` (closest first), and how many more the artifacts hold.
fn closest(ranked: &[(usize, &str)], netns: &str) -> String {
    if ranked.is_empty() {
        return format!("no entry in netns {netns}'s table");
    }
    let mut out = format!("closest of the {} entries in netns {netns}:", ranked.len());
    for (_, line) in ranked.iter().take(CLOSEST) {
        out.push_str(&format!("\n    {line}"));
    }
    if ranked.len() > CLOSEST {
        out.push_str(&format!("\n{} more entries in the artifacts ({}.conntrack)", ranked.len() - CLOSEST, netns));
    }
    out
}
