//! Judging the answers to a probe's packets: `replies` (each packet answered, or none of them:
//! dropped on its way) and `answered_by` (how many each server netns answered: a load split).

use std::collections::BTreeMap;

use super::{ExpectationKind, Failure, FailureKind, ProbeEvidence};
use crate::evidence::Exchange;
use crate::scenario::ProbeSpec;

/// `replies` and `answered_by`.
pub struct AnswerKind;

impl ExpectationKind for AnswerKind {
    fn name(&self) -> &'static str {
        "answer"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["replies", "answered_by"]
    }

    fn failures(&self) -> &'static [FailureKind] {
        &[FailureKind::NoReply, FailureKind::UnexpectedReply, FailureKind::Answers]
    }

    /// A packet that got no answer explains what else is missing of it (its reply's path and
    /// addresses): it is said first.
    fn reported_first(&self) -> bool {
        true
    }

    fn judge(&self, probe: &ProbeSpec, evidence: &ProbeEvidence<'_>) -> Vec<Failure> {
        let exchanges = evidence.exchanges;
        let mut out = vec![];
        for ex in exchanges {
            if probe.replies && !ex.replied {
                let f = Failure::of_packet(
                    FailureKind::NoReply,
                    ex.packet,
                    format!("packet {}: a reply", ex.packet),
                    format!("no reply reached {} within {} ms; {}", probe.from, probe.timeout_ms, whereabouts(ex)),
                );
                let last_hooks = ex
                    .request
                    .path
                    .iter()
                    .filter_map(|(ns, evs)| Some((ns.clone(), evs.last()?.hook.clone())))
                    .collect();
                let seen_at = ex.request.seen.keys().cloned().collect();
                out.push(Failure { netns: Some(probe.from.clone()), seen_at, last_hooks, ..f });
            }
            if !probe.replies && ex.replied {
                let f = Failure::of_packet(
                    FailureKind::UnexpectedReply,
                    ex.packet,
                    format!("packet {}: no reply (the request is dropped)", ex.packet),
                    format!("a reply reached {}", probe.from),
                );
                out.push(Failure { netns: Some(probe.from.clone()), ..f });
            }
        }
        for (server, min) in &probe.answered_by {
            let n = exchanges.iter().filter(|x| x.answer.as_deref() == Some(server.as_str())).count();
            if n < *min as usize {
                let mut by: BTreeMap<&str, usize> = BTreeMap::new();
                for x in exchanges {
                    *by.entry(x.answer.as_deref().unwrap_or("(no answer)")).or_default() += 1;
                }
                let tally = by.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ");
                let f = Failure::new(
                    FailureKind::Answers,
                    format!("answers from {server}"),
                    format!("expected at least {min} of {}, got {n} ({tally})", exchanges.len()),
                );
                out.push(Failure {
                    answered_by: Some(server.clone()),
                    expected: Some(min.to_string()),
                    observed: Some(n.to_string()),
                    ..f
                });
            }
        }
        out
    }
}

/// Where a request that got no reply went: the capture points that saw it and the last hook
/// it met in each netns, so the failure names the hop where it was lost.
fn whereabouts(ex: &Exchange) -> String {
    let pe = &ex.request;
    let seen: Vec<String> = pe.seen.keys().map(ToString::to_string).collect();
    let last: Vec<String> =
        pe.path.iter().filter_map(|(ns, evs)| evs.last().map(|e| format!("{} in netns {ns}", e.hook))).collect();
    let seen = if seen.is_empty() { "captured nowhere".to_string() } else { format!("seen at {}", seen.join(", ")) };
    let last = if last.is_empty() { "no trace event".to_string() } else { format!("last hooks {}", last.join(", ")) };
    format!("the request was {seen}; {last}")
}
