//! Judging the answers to a probe's packets: `answer` / `replies` (the kind of answer each packet
//! gets: a reply, a refusal, a local drop, nothing) and `answered_by` (how many each server netns
//! answered: a load split).

use std::collections::BTreeMap;

use super::{ExpectationKind, Failure, FailureKind, ProbeEvidence};
use crate::evidence::Exchange;
use crate::scenario::{Answer, ProbeSpec};

/// `answer`, `replies` and `answered_by`.
pub struct AnswerKind;

impl ExpectationKind for AnswerKind {
    fn name(&self) -> &'static str {
        "answer"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["replies", "answer", "answered_by"]
    }

    fn failures(&self) -> &'static [FailureKind] {
        &[FailureKind::NoReply, FailureKind::UnexpectedReply, FailureKind::WrongAnswer, FailureKind::Answers]
    }

    /// A packet that got no answer explains what else is missing of it (its reply's path and
    /// addresses): it is said first.
    fn reported_first(&self) -> bool {
        true
    }

    fn judge(&self, probe: &ProbeSpec, evidence: &ProbeEvidence<'_>) -> Vec<Failure> {
        let exchanges = evidence.exchanges;
        let want = probe.expected_answer();
        let mut out = vec![];
        for ex in exchanges {
            let got = &ex.response;
            if got.kind == want {
                continue;
            }
            let (kind, what, detail) = match (want, got.kind) {
                (Answer::Reply, _) => (
                    FailureKind::NoReply,
                    format!("packet {}: a reply", ex.packet),
                    match got.kind {
                        Answer::None => format!(
                            "no reply reached {} within {} ms; {}",
                            probe.from,
                            probe.timeout_ms,
                            whereabouts(ex)
                        ),
                        _ => format!("no reply reached {}: {got}; {}", probe.from, whereabouts(ex)),
                    },
                ),
                (_, Answer::Reply) => (
                    FailureKind::UnexpectedReply,
                    format!("packet {}: {}", ex.packet, wanted(want)),
                    format!("{got} reached {}", probe.from),
                ),
                _ => (FailureKind::WrongAnswer, format!("packet {}: {}", ex.packet, wanted(want)), got.to_string()),
            };
            let last_hooks =
                ex.request.path.iter().filter_map(|(ns, evs)| Some((ns.clone(), evs.last()?.hook.clone()))).collect();
            let seen_at = ex.request.seen.keys().cloned().collect();
            out.push(Failure {
                netns: Some(probe.from.clone()),
                seen_at,
                last_hooks,
                expected: Some(want.to_string()),
                observed: Some(got.kind.to_string()),
                at: got.at.clone(),
                from: got.from,
                latency: got.after,
                ..Failure::of_packet(kind, ex.packet, what, detail)
            });
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

/// What `answer` (or `replies`) asks of each packet, in words.
fn wanted(want: Answer) -> String {
    match want {
        Answer::Reply => "a reply".into(),
        Answer::Refused => "refused (a TCP RST or an ICMP destination unreachable)".into(),
        Answer::Dropped => "dropped by its sender's own kernel (the send failed: EPERM from an OUTPUT rule, ENOKEY from a WireGuard device)".into(),
        Answer::None => "no answer of any kind (the request is dropped on its way)".into(),
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
