//! Recording the answers: `answer` / `replies` (the kind of answer every packet got) and the `answered_by`
//! floors of a load split, derived from the probe's count ([`split_floor`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::engine::ProbeOutcome;
use crate::firewall::Backend;
use crate::scenario::{Answer, ProbeSpec};

/// The chance, per probe, that a correct datapath fails the answered_by floor a recording
/// writes for its load split, when the split is uniform over the endpoints that answered.
pub const FLOOR_FALSE_FAILURE: f64 = 1e-6;

/// Put what `runs` show of the probe's answers in `probe`: `answer` (or `replies`), and its
/// `answered_by`.
pub(super) fn record(probe: &mut ProbeSpec, runs: &[(Backend, &ProbeOutcome)], warnings: &mut Vec<String>) {
    // A reply that came after the deadline is the datapath's answer: the timeout recorded with
    // it ([`covering`]) lets it come in time.
    let kinds: BTreeSet<Answer> = runs
        .iter()
        .flat_map(|(_, p)| &p.exchanges)
        .map(|e| if e.response.late.is_some() { Answer::Reply } else { e.response.kind })
        .collect();
    let kind = match <[Answer; 1]>::try_from(kinds.iter().copied().collect::<Vec<_>>()) {
        Ok([k]) => k,
        // Nothing sent: nothing to learn.
        Err(v) if v.is_empty() => probe.expected_answer(),
        Err(v) => {
            let said: Vec<&str> = v.iter().map(|k| k.as_str()).collect();
            warnings.push(format!(
                "probe `{}`: its packets got answers of several kinds ({}): recorded as answer = \"{}\", which some of them fail",
                probe.name,
                said.join(", "),
                Answer::None
            ));
            Answer::None
        }
    };
    spell(probe, kind);
    probe.answered_by = floors(probe, runs, warnings);
}

/// The slowest answer of the probe's packets in `runs` (by the sender's socket, late ones
/// included) when the probe's timeout does not hold it three times over, with the timeout that
/// does ([`crate::verdict::answer::covering_timeout_ms`]); `None` when the timeout holds.
pub(super) fn covering(probe: &ProbeSpec, runs: &[(Backend, &ProbeOutcome)]) -> Option<(Duration, u64)> {
    let slowest = runs.iter().flat_map(|(_, p)| &p.exchanges).filter_map(|e| e.response.sender_after).max()?;
    let needed = crate::verdict::answer::covering_timeout_ms(slowest);
    (u128::from(probe.timeout_ms) * 1000 < slowest.as_micros() * 3).then_some((slowest, needed))
}

/// Put answer `kind` in `probe` the way its file says it: `replies` where the file used it and
/// it can say that kind, else `answer`; a reply, the default, left unsaid unless said already.
fn spell(probe: &mut ProbeSpec, kind: Answer) {
    let by_replies = match kind {
        Answer::Reply | Answer::None => Some(kind == Answer::Reply),
        Answer::Refused | Answer::Dropped => None,
    };
    if probe.answer.is_none() && by_replies.is_some() && (probe.replies.is_some() || kind == Answer::None) {
        probe.replies = by_replies;
    } else if probe.answer.is_some() || kind != Answer::Reply {
        probe.replies = None;
        probe.answer = Some(kind);
    }
}

/// The largest floor `f` such that a probe of `count` packets split uniformly over `endpoints`
/// gives some endpoint fewer than `f` answers with probability below [`FLOOR_FALSE_FAILURE`]:
/// `endpoints × P(X < f)` for X ~ Binomial(count, 1/endpoints) (a union bound over endpoints).
/// 0 when even one answer each cannot be required that surely.
pub fn split_floor(count: u16, endpoints: usize) -> u16 {
    if endpoints <= 1 {
        return count;
    }
    let (n, p) = (f64::from(count), 1.0 / endpoints as f64);
    let k = endpoints as f64;
    // pmf(i+1) = pmf(i) · (n - i)/(i + 1) · p/(1 - p), from pmf(0) = (1 - p)^n.
    let mut pmf = (1.0 - p).powf(n);
    let mut below = 0.0;
    for f in 0..count {
        // `below` is P(X < f); the floor f + 1 needs P(X < f + 1) = below + pmf(f).
        if k * (below + pmf) >= FLOOR_FALSE_FAILURE {
            return f;
        }
        below += pmf;
        pmf *= (n - f64::from(f)) / f64::from(f + 1) * p / (1.0 - p);
    }
    count
}

/// The recorded `answered_by` floors of a probe: every packet for its one endpoint; for a load
/// split over several, [`split_floor`] of its count. A floor the file already has is kept when
/// it is within that bound (1 up to the derived floor): it is the author's choice, and keeps a
/// re-recording from rewriting it.
fn floors(probe: &ProbeSpec, runs: &[(Backend, &ProbeOutcome)], warnings: &mut Vec<String>) -> BTreeMap<String, u16> {
    let answers = || runs.iter().flat_map(|(_, p)| &p.exchanges).map(|x| x.answer.as_deref());
    let endpoints: BTreeSet<&str> = answers().flatten().collect();
    if endpoints.is_empty() {
        return BTreeMap::new();
    }
    if endpoints.len() == 1 && answers().any(|a| a.is_none()) {
        warnings.push(format!(
            "probe `{}`: only some of its packets were answered (by {}): no answered_by floor recorded",
            probe.name,
            endpoints.iter().next().copied().unwrap_or_default()
        ));
        return BTreeMap::new();
    }
    let floor = split_floor(probe.count, endpoints.len());
    if floor == 0 {
        warnings.push(format!(
            "probe `{}`: {} packets split over {} endpoints are too few to require an answer from each with a false-failure rate below {FLOOR_FALSE_FAILURE:e}: no answered_by floor recorded (raise count)",
            probe.name,
            probe.count,
            endpoints.len()
        ));
        return BTreeMap::new();
    }
    endpoints
        .into_iter()
        .map(|e| {
            let kept = probe.answered_by.get(e).copied().filter(|old| (1..=floor).contains(old));
            (e.to_string(), kept.unwrap_or(floor))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_spelt_as_the_file_spells_it() {
        let spelt = |replies: Option<bool>, answer: Option<Answer>, kind: Answer| {
            let mut p = ProbeSpec::new("p", crate::scenario::ProbeKind::Tcp, "a", "10.0.0.1".parse().unwrap());
            (p.replies, p.answer) = (replies, answer);
            spell(&mut p, kind);
            assert_eq!(p.expected_answer(), kind);
            (p.replies, p.answer)
        };
        assert_eq!(spelt(None, None, Answer::Reply), (None, None), "the default stays unsaid");
        assert_eq!(spelt(Some(true), None, Answer::Reply), (Some(true), None));
        assert_eq!(spelt(None, None, Answer::None), (Some(false), None));
        assert_eq!(spelt(Some(false), None, Answer::Refused), (None, Some(Answer::Refused)));
        assert_eq!(spelt(None, Some(Answer::Refused), Answer::None), (None, Some(Answer::None)));
        assert_eq!(spelt(None, Some(Answer::Reply), Answer::Reply), (None, Some(Answer::Reply)));
    }

    #[test]
    fn a_split_floor_is_derived_from_the_count_with_a_bounded_false_failure_rate() {
        // P(X < f) for X ~ Binomial(n, 1/2), summed exactly.
        let below = |n: u32, f: u32| -> f64 {
            let mut c = 1.0f64;
            let mut sum = 0.0;
            for i in 0..f {
                sum += c;
                c = c * f64::from(n - i) / f64::from(i + 1);
            }
            sum / 2f64.powi(n as i32)
        };
        for n in [20u16, 40, 100, 200, 1000] {
            let f = split_floor(n, 2);
            assert!(2.0 * below(n.into(), f.into()) < FLOOR_FALSE_FAILURE, "count {n}: floor {f}");
            assert!(
                2.0 * below(n.into(), u32::from(f) + 1) >= FLOOR_FALSE_FAILURE,
                "count {n}: floor {f} is not the largest"
            );
        }
        assert_eq!(split_floor(20, 2), 0, "2 × 2^-20 is above 1e-6: no floor can be that sure");
        assert_eq!((split_floor(40, 2), split_floor(200, 2)), (5, 66));
        assert_eq!(split_floor(200, 3), 35);
        assert_eq!(split_floor(7, 1), 7, "one endpoint answers every packet");
    }
}
