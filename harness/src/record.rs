//! `netpath record`: write what a run observed as the scenario's expectations, the snapshot
//! workflow for datapaths (write topology + rules + probes, record, review the diff, commit).

use crate::firewall::Backend;
use crate::run::Outcome;
use crate::scenario::{AddrExpect, Direction, PathExpect, Scenario};
use crate::trace::Hook;

/// `scenario` with every probe's expectations replaced by what `outcomes` (one per backend)
/// observed: the exact path of every packet in every netns that traced it (one entry when the
/// backends agree, a variant per backend where they differ), the addresses at every capture
/// point that saw it, `absent` at those that did not, and whether replies came.
pub fn expectations(scenario: &Scenario, outcomes: &[Outcome]) -> Scenario {
    let mut sc = scenario.clone();
    let points = sc.capture_points();
    for probe in &mut sc.probe {
        probe.path.clear();
        probe.addr.clear();
        let runs: Vec<(Backend, &crate::run::ProbeOutcome)> = outcomes
            .iter()
            .filter_map(|o| o.probes.iter().find(|p| p.name == probe.name).map(|p| (o.backend, p)))
            .collect();
        let Some((_, first)) = runs.first() else { continue };
        probe.replies = first.exchanges.iter().all(|e| e.replied);
        for ex in &first.exchanges {
            for d in [Direction::Request, Direction::Reply] {
                let mut netns: Vec<&String> = runs
                    .iter()
                    .flat_map(|(_, p)| p.exchanges.iter().filter(|x| x.packet == ex.packet))
                    .flat_map(|x| x.of(d).path.keys())
                    .collect();
                netns.sort();
                netns.dedup();
                for ns in netns {
                    let paths: Vec<(Backend, Vec<Hook>)> = runs
                        .iter()
                        .map(|(b, p)| {
                            let hooks = p
                                .exchanges
                                .iter()
                                .find(|x| x.packet == ex.packet)
                                .and_then(|x| x.of(d).path.get(ns))
                                .map(|evs| evs.iter().map(|e| e.hook.clone()).collect())
                                .unwrap_or_default();
                            (*b, hooks)
                        })
                        .collect();
                    let agree = paths.windows(2).all(|w| w[0].1 == w[1].1);
                    let variants: Vec<(Option<Backend>, Vec<Hook>)> = if agree {
                        vec![(None, paths[0].1.clone())]
                    } else {
                        paths.into_iter().map(|(b, h)| (Some(b), h)).collect()
                    };
                    for (backend, hooks) in variants {
                        probe.path.push(PathExpect {
                            packet: ex.packet,
                            direction: d,
                            netns: ns.clone(),
                            backend,
                            exact: Some(hooks),
                            includes: None,
                            never: vec![],
                            last: None,
                        });
                    }
                }
                for point in &points {
                    let seen = ex.of(d).seen.get(point);
                    if seen.is_none() && d == Direction::Reply && !ex.replied && ex.reply.seen.is_empty() {
                        continue;
                    }
                    probe.addr.push(AddrExpect {
                        packet: ex.packet,
                        direction: d,
                        at: point.clone(),
                        src: seen.and_then(|p| p.src),
                        dst: seen.and_then(|p| p.dst),
                        sport: seen.and_then(|p| p.ports().0),
                        dport: seen.and_then(|p| p.ports().1),
                        ttl: None,
                        mac_src: None,
                        mac_dst: None,
                        absent: seen.is_none(),
                    });
                }
            }
        }
    }
    sc
}
