//! Judging the answers to a probe's packets: `answer` / `replies` (the kind of answer each packet
//! gets: a reply, a refusal, a local drop, nothing) and `answered_by` (how many each server netns
//! answered: a load split).

use std::collections::BTreeMap;
use std::time::Duration;

use super::path::shown;
use super::{ExpectationKind, Failure, FailureKind, ProbeEvidence};
use crate::evidence::neighbour::whole_ms;
use crate::evidence::{Exchange, Response};
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
                        Answer::None if got.late.is_some() => late(probe, got),
                        Answer::None => match reply_lost(ex) {
                            // The first thing that went wrong in packet order: the reply's loss.
                            Some(lost) => format!(
                                "{lost}: no reply reached the sender in netns {} within {} ms; {}",
                                probe.from,
                                probe.timeout_ms,
                                whereabouts(ex)
                            ),
                            None => format!(
                                "no reply reached {} within {} ms; {}",
                                probe.from,
                                probe.timeout_ms,
                                whereabouts(ex)
                            ),
                        },
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
                ..Failure::of_packet(kind, ex.packet, what, detail).by(answer_key(probe), None)
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
                    ..f.by("answered_by", None)
                });
            }
        }
        out
    }
}

/// A reply that came after the deadline: how late, what of the wait a neighbour resolution
/// was, and the timeout that would have covered it: `no reply reached cl within 1000 ms: a reply
/// came 232 ms after the 1,000 ms deadline (1,232 ms after the send); 820 ms of it was ARP for
/// 169.254.1.1 at cl/eth0 (...); a timeout_ms of 3700 (3 × that) would cover it`.
fn late(probe: &ProbeSpec, got: &Response) -> String {
    let after = got.late.unwrap_or_default();
    let deadline = Duration::from_millis(probe.timeout_ms);
    let held_up = got.held_up.as_ref().map(|r| format!("; {r}")).unwrap_or_default();
    format!(
        "no reply reached {} within {} ms: a reply came {} after the {} deadline ({} after the send){held_up}; \
         timeout_ms = {} would cover it (3 × that, what `netpath record` writes)",
        probe.from,
        probe.timeout_ms,
        whole_ms(after.saturating_sub(deadline)),
        whole_ms(deadline),
        whole_ms(after),
        covering_timeout_ms(after),
    )
}

/// A timeout that holds for an answer `after` the send, with margin for a slower run: three
/// times it, rounded up to 100 ms, never below the default timeout.
pub fn covering_timeout_ms(after: Duration) -> u64 {
    let ms = (after.as_micros() * 3).div_ceil(1000) as u64;
    ms.div_ceil(100).saturating_mul(100).max(crate::scenario::ProbeSpec::DEFAULT_TIMEOUT_MS)
}

/// The key that states what answer a probe expects: `answer`, else `replies` (without either,
/// the default, a reply, is stated by the probe itself: `answer` names where it would be).
fn answer_key(probe: &ProbeSpec) -> &'static str {
    if probe.answer.is_none() && probe.replies.is_some() { "replies" } else { "answer" }
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

/// Where a packet that got no reply went, first thing first: a reply that came part of the way
/// (where it was last captured and the last hook it met there), then the request (the capture
/// points that saw it, in the order it met them, and its last hook in each netns).
fn whereabouts(ex: &Exchange) -> String {
    let pe = &ex.request;
    let seen: Vec<String> = pe.seen_in_order().iter().map(ToString::to_string).collect();
    let last: Vec<String> =
        pe.path.iter().filter_map(|(ns, evs)| evs.last().map(|e| format!("{} in netns {ns}", shown(e)))).collect();
    let seen = match seen.len() {
        0 => "captured nowhere".to_string(),
        1 => format!("seen at {}", seen[0]),
        // Without the captures' times the order is the names', which says nothing.
        _ if pe.seen.keys().all(|p| pe.first_seen.contains_key(p)) => {
            format!("seen at {} (in that order)", seen.join(", "))
        }
        _ => format!("seen at {}", seen.join(", ")),
    };
    let last = if last.is_empty() { "no trace event".to_string() } else { format!("last hooks {}", last.join(", ")) };
    format!("the request was {seen}; {last}")
}

/// Where a reply that did not reach its sender was last: `the reply was last seen at
/// host/eth1, its last hook there filter:FORWARD:rule:3 drop`; `None` when it was neither captured
/// nor traced anywhere.
fn reply_lost(ex: &Exchange) -> Option<String> {
    let pe = &ex.reply;
    let hook_in = |ns: &str| pe.path.get(ns).and_then(|evs| evs.last()).map(shown);
    match pe.seen_in_order().last() {
        Some(point) => Some(match hook_in(&point.netns) {
            Some(h) => format!("the reply was last seen at {point}, its last hook in netns {} {h}", point.netns),
            None => format!("the reply was last seen at {point}"),
        }),
        None => {
            let last: Vec<String> = pe
                .path
                .iter()
                .filter_map(|(ns, evs)| evs.last().map(|e| format!("{} in netns {ns}", shown(e))))
                .collect();
            (!last.is_empty()).then(|| format!("the reply was captured nowhere; its last hooks {}", last.join(", ")))
        }
    }
}
