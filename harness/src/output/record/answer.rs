//! Recording the answers: `replies` (whether every packet was answered) and the `answered_by`
//! floors of a load split, derived from the probe's count ([`split_floor`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::ProbeOutcome;
use crate::firewall::Backend;
use crate::scenario::ProbeSpec;

/// The chance, per probe, that a correct datapath fails the answered_by floor a recording
/// writes for its load split, when the split is uniform over the endpoints that answered.
pub const FLOOR_FALSE_FAILURE: f64 = 1e-6;

/// Put what `runs` show of the probe's answers in `probe`: `replies`, and its `answered_by`.
pub(super) fn record(probe: &mut ProbeSpec, runs: &[(Backend, &ProbeOutcome)], warnings: &mut Vec<String>) {
    probe.replies = runs.iter().flat_map(|(_, p)| &p.exchanges).all(|e| e.replied);
    probe.answered_by = floors(probe, runs, warnings);
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
