//! Judging `[[probe.conntrack]]`: the entries of each netns's conntrack table after the run
//! against the protocol and tuples an entry names.

use super::{ExpectationKind, Failure, FailureKind, ProbeEvidence};
use crate::scenario::ProbeSpec;

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
            .filter_map(|c| {
                let proto = c.proto.unwrap_or(default_proto);
                let list = entries.get(&c.netns).map(Vec::as_slice).unwrap_or_default();
                if list.iter().any(|e| e.matches(Some(proto.name()), &c.orig, &c.reply)) {
                    return None;
                }
                let lines: Vec<&str> =
                    list.iter().filter(|e| e.proto == proto.name()).map(|e| e.line.as_str()).collect();
                let f = Failure::new(
                    FailureKind::Conntrack,
                    format!("conntrack entry in netns {}", c.netns),
                    format!(
                        "no {proto} entry with orig {:?} and reply {:?}; entries:\n{}",
                        c.orig,
                        c.reply,
                        if lines.is_empty() {
                            "    (none)".to_string()
                        } else {
                            lines.iter().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
                        }
                    ),
                );
                Some(Failure {
                    netns: Some(c.netns.clone()),
                    expected: Some(format!("{proto} orig {:?} reply {:?}", c.orig, c.reply)),
                    observed: Some(lines.join("\n")),
                    ..f
                })
            })
            .collect()
    }
}
