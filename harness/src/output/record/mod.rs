//! `netpath record`: write what a run observed as the scenario's expectations, the snapshot
//! workflow for datapaths (write topology + rules + probes, record, review the diff, commit).
//! One module per kind of expectation it writes (`answer.rs`: `replies` and `answered_by`,
//! `path.rs`, `addr.rs`, `drop.rs`), named as in `scenario/expect/` and `verdict/`; what they share is
//! here: packets grouped into the fewest entries that say what each saw (`Recorder::entries`);
//! and [`rewrite`], which puts them into the user's file.

mod addr;
mod answer;
mod drop;
mod path;
mod rewrite;

pub use addr::PortPolicy;
pub use answer::{FLOOR_FALSE_FAILURE, split_floor};
pub use rewrite::{rewrite, rewrite_recording};

use std::collections::BTreeMap;

use crate::engine::{Outcome, ProbeOutcome};
use crate::evidence::Exchange;
use crate::firewall::Backend;
use crate::scenario::{Packets, ProbeSpec, Scenario};

/// What a recording holds: the scenario with the expectations the run showed, and what the
/// recorder has to say about it (a probe that is not deterministic, a split too small to
/// require every endpoint).
#[derive(Debug, Clone)]
pub struct Recording {
    /// The scenario with the observed expectations in place of its own.
    pub scenario: Scenario,
    /// What could not be recorded as is, for the user to look at.
    pub warnings: Vec<String>,
    /// The probes whose `timeout_ms` the recording raised, with the slowest answer that made it
    /// ([`rewrite`] says so in a comment above the key).
    pub timeouts: BTreeMap<String, std::time::Duration>,
}

/// `scenario` with every probe's expectations replaced by what `outcomes` (one per backend)
/// observed. Invariants, not samples: where every packet of a probe took the same path in a
/// netns (or carried the same addresses at a capture point) the entry names no packet; where
/// the packets split by the endpoint that answered them, one entry per endpoint
/// (`answered_by`); where only the first packet of the flow differs (conntrack knows the rest),
/// `packet = 1` and `packet = "2-"`; any other split is written packet by packet, with a
/// warning. A variant per backend where the backends differ. Ports are literals only where the
/// scenario fixes them, else `kept`/`changed` (see [`PortPolicy`]); a load split becomes an
/// answered_by floor derived from `count` (see [`split_floor`]).
pub fn expectations(scenario: &Scenario, outcomes: &[Outcome]) -> Recording {
    let mut sc = scenario.clone();
    let points = sc.capture_points();
    let mut warnings = vec![];
    let mut timeouts = BTreeMap::new();
    for probe in &mut sc.probe {
        let runs: Vec<(Backend, &ProbeOutcome)> = outcomes
            .iter()
            .filter_map(|o| o.probes.iter().find(|p| p.name == probe.name).map(|p| (o.backend, p)))
            .collect();
        if runs.is_empty() {
            continue;
        }
        answer::record(probe, &runs, &mut warnings);
        if let Some((slowest, ms)) = answer::covering(probe, &runs) {
            probe.timeout_ms = ms;
            timeouts.insert(probe.name.clone(), slowest);
        }
        let spec = probe.clone();
        let mut rec = Recorder { spec: &spec, runs: &runs, warnings: &mut warnings };
        probe.path = path::recorded(&mut rec);
        probe.addr = addr::recorded(scenario, &points, &mut rec);
        probe.drop = drop::recorded(&mut rec);
    }
    Recording { scenario: sc, warnings, timeouts }
}

/// What the recording of one probe's entries reads: the probe (its answers already recorded),
/// its runs, one per backend; and where it says what could not be recorded as is.
struct Recorder<'a> {
    spec: &'a ProbeSpec,
    runs: &'a [(Backend, &'a ProbeOutcome)],
    warnings: &'a mut Vec<String>,
}

impl Recorder<'_> {
    /// Every packet of every run.
    fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.runs.iter().flat_map(|(_, p)| &p.exchanges)
    }

    /// The fewest entries that say what `value` of each packet was, per backend (see
    /// [`classify`]), merged across backends (see [`merge`]). Where no grouping explains a run,
    /// its packets are written one by one, with a warning naming `what` differed and how
    /// (`differences` of the groups of packets alike).
    fn entries<V: PartialEq + Clone>(
        &mut self,
        what: &dyn Fn() -> String,
        value: impl Fn(&Exchange) -> V,
        differences: impl Fn(&[Group<V>]) -> Vec<String>,
    ) -> Vec<(Selector, Option<Backend>, V)> {
        let mut per_backend = vec![];
        for (b, p) in self.runs {
            let values = observe(&p.exchanges, &value);
            let classes = classify(&values).unwrap_or_else(|groups| {
                self.warnings.push(format!(
                    "probe `{}` [{}] is not deterministic: its packets took different {}: {}; recorded packet by packet",
                    self.spec.name,
                    b.name(),
                    what(),
                    differences(&groups).join("; ")
                ));
                per_packet(&values)
            });
            per_backend.push((*b, classes));
        }
        merge(per_backend)
    }
}

/// Which packets a recorded entry is about.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    packet: Option<Packets>,
    answered_by: Option<String>,
}

/// One packet's observation: its number, the endpoint that answered it, what was seen.
struct Observation<V> {
    packet: u16,
    answer: Option<String>,
    value: V,
}

fn observe<V>(exchanges: &[Exchange], f: impl Fn(&Exchange) -> V) -> Vec<Observation<V>> {
    exchanges.iter().map(|x| Observation { packet: x.packet, answer: x.answer.clone(), value: f(x) }).collect()
}

/// Packets that saw the same thing: their numbers and what they saw.
type Group<V> = (Vec<u16>, V);

/// The fewest entries that say what each packet saw: one for all of them; one per answering
/// endpoint; one for the first packet and one for the rest. `Err` with the groups of packets
/// that saw the same when none of these explains the split.
fn classify<V: PartialEq + Clone>(values: &[Observation<V>]) -> Result<Vec<(Selector, V)>, Vec<Group<V>>> {
    let all = |vs: &[&V]| vs.windows(2).all(|w| w[0] == w[1]);
    let sel = |packet, answered_by| Selector { packet, answered_by };
    let Some(first) = values.first() else { return Ok(vec![]) };
    if all(&values.iter().map(|o| &o.value).collect::<Vec<_>>()) {
        return Ok(vec![(sel(None, None), first.value.clone())]);
    }
    // First of its kind, then the rest alike: a flow's first packet creates its conntrack
    // entry, a first connection to an endpoint may wait for its neighbour entry.
    let first_then_rest = |vs: &[&V]| vs.len() >= 2 && all(&vs[1..]);
    let mut by_answer: BTreeMap<&str, Vec<&V>> = BTreeMap::new();
    for o in values {
        if let Some(a) = &o.answer {
            by_answer.entry(a).or_default().push(&o.value);
        }
    }
    let answered = values.iter().all(|o| o.answer.is_some());
    if answered && by_answer.len() > 1 && by_answer.values().all(|vs| all(vs) || first_then_rest(vs)) {
        let mut out = vec![];
        for (a, vs) in by_answer {
            let by = Some(a.to_string());
            if all(&vs) {
                out.push((sel(None, by), vs[0].clone()));
            } else {
                // Counted among this endpoint's packets, whose number varies from run to run.
                out.push((sel(Some(Packets::One(1)), by.clone()), vs[0].clone()));
                out.push((sel(Some(Packets::From(2)), by), vs[1].clone()));
            }
        }
        return Ok(out);
    }
    let rest: Vec<&V> = values.iter().map(|o| &o.value).collect();
    if first_then_rest(&rest) {
        let later = if values.len() == 2 { Packets::One(2) } else { Packets::From(2) };
        return Ok(vec![
            (sel(Some(Packets::One(1)), None), first.value.clone()),
            (sel(Some(later), None), values[1].value.clone()),
        ]);
    }
    let mut groups: Vec<Group<V>> = vec![];
    for o in values {
        match groups.iter_mut().find(|(_, v)| *v == o.value) {
            Some((packets, _)) => packets.push(o.packet),
            None => groups.push((vec![o.packet], o.value.clone())),
        }
    }
    Err(groups)
}

fn per_packet<V: Clone>(values: &[Observation<V>]) -> Vec<(Selector, V)> {
    values
        .iter()
        .map(|o| (Selector { packet: Some(Packets::One(o.packet)), answered_by: None }, o.value.clone()))
        .collect()
}

/// `packets 1, 3` of a group.
fn packets_text(packets: &[u16]) -> String {
    let list = packets.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
    if packets.len() == 1 { format!("packet {list}") } else { format!("packets {list}") }
}

/// One entry per selector where the backends agree, a variant per backend where they differ.
fn merge<V: PartialEq + Clone>(per_backend: Vec<(Backend, Vec<(Selector, V)>)>) -> Vec<(Selector, Option<Backend>, V)> {
    let mut selectors: Vec<&Selector> = vec![];
    for (_, classes) in &per_backend {
        for (s, _) in classes {
            if !selectors.contains(&s) {
                selectors.push(s);
            }
        }
    }
    let mut out = vec![];
    for sel in selectors {
        let have: Vec<(Backend, &V)> = per_backend
            .iter()
            .filter_map(|(b, classes)| classes.iter().find(|(s, _)| s == sel).map(|(_, v)| (*b, v)))
            .collect();
        if have.len() == per_backend.len() && have.windows(2).all(|w| w[0].1 == w[1].1) {
            out.push((sel.clone(), None, have[0].1.clone()));
        } else {
            out.extend(have.into_iter().map(|(b, v)| (sel.clone(), Some(b), v.clone())));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(values: &[(u16, Option<&str>, u8)]) -> Vec<Observation<u8>> {
        values.iter().map(|&(packet, a, value)| Observation { packet, answer: a.map(Into::into), value }).collect()
    }

    fn sel(packet: Option<Packets>, answered_by: Option<&str>) -> Selector {
        Selector { packet, answered_by: answered_by.map(Into::into) }
    }

    #[test]
    fn splits_are_explained_by_the_endpoint_or_by_the_first_packet_or_not_at_all() {
        // The same for every packet: one entry, whatever the count.
        assert_eq!(classify(&obs(&[(1, None, 7), (2, None, 7), (3, None, 7)])), Ok(vec![(sel(None, None), 7)]));
        // By the endpoint that answered, the first connection to one of them apart.
        let split = obs(&[
            (1, Some("ep2"), 2),
            (2, Some("ep1"), 9),
            (3, Some("ep1"), 1),
            (4, Some("ep2"), 2),
            (5, Some("ep1"), 1),
        ]);
        assert_eq!(
            classify(&split),
            Ok(vec![
                (sel(Some(Packets::One(1)), Some("ep1")), 9),
                (sel(Some(Packets::From(2)), Some("ep1")), 1),
                (sel(None, Some("ep2")), 2),
            ])
        );
        // The first packet of a flow, then the rest alike.
        let flow = obs(&[(1, None, 1), (2, None, 2), (3, None, 2)]);
        assert_eq!(
            classify(&flow),
            Ok(vec![(sel(Some(Packets::One(1)), None), 1), (sel(Some(Packets::From(2)), None), 2)])
        );
        let two = obs(&[(1, None, 1), (2, None, 2)]);
        assert_eq!(
            classify(&two),
            Ok(vec![(sel(Some(Packets::One(1)), None), 1), (sel(Some(Packets::One(2)), None), 2)])
        );
        // Anything else: the groups of packets alike, for the warning.
        let noise = obs(&[(1, None, 1), (2, None, 2), (3, None, 1), (4, None, 2)]);
        assert_eq!(classify(&noise), Err(vec![(vec![1, 3], 1), (vec![2, 4], 2)]));
        assert_eq!(per_packet(&noise).len(), 4);
        assert_eq!(
            addr::addr_difference(&(
                vec![2, 4],
                crate::scenario::AddrExpect {
                    absent: true,
                    ..crate::scenario::AddrExpect::new(crate::scenario::Direction::Request, "a/b".parse().unwrap())
                }
            )),
            "packets 2, 4 not seen"
        );
    }

    #[test]
    fn backends_that_agree_share_an_entry_and_others_get_variants() {
        let all = sel(None, None);
        let merged = merge(vec![(Backend::Legacy, vec![(all.clone(), 1)]), (Backend::Nft, vec![(all.clone(), 1)])]);
        assert_eq!(merged, vec![(all.clone(), None, 1)]);
        let merged = merge(vec![(Backend::Legacy, vec![(all.clone(), 1)]), (Backend::Nft, vec![(all.clone(), 2)])]);
        assert_eq!(merged, vec![(all.clone(), Some(Backend::Legacy), 1), (all, Some(Backend::Nft), 2)]);
    }
}
