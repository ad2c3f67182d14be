//! Recording `[[probe.path]]`: the hooks the packets met in each netns they were traced in, as
//! `exact` lists, each hook with the verdict the trace showed there (`filter:INPUT:policy:2
//! drop`) where it showed one.

use std::collections::BTreeSet;

use super::{Group, Recorder, packets_text};
use crate::evidence::Exchange;
use crate::firewall::Backend;
use crate::observe::trace::{Hook, RuleKind, RuleText, TraceEvent};
use crate::scenario::{Direction, PathExpect, PathHook};

/// The path entries of the probe of `rec`: one per direction and netns where its packets were
/// traced, split by packets or backend where they differ.
pub(super) fn recorded(rec: &mut Recorder<'_>) -> Vec<PathExpect> {
    let sites: BTreeSet<(Direction, String)> = rec
        .exchanges()
        .flat_map(|x| [Direction::Request, Direction::Reply].map(|d| (d, x.of(d).path.keys())))
        .flat_map(|(d, keys)| keys.map(move |k| (d, k.clone())))
        .collect();
    let mut out = vec![];
    for (d, netns) in sites {
        let what = || format!("paths in netns {netns} ({d})");
        let differences =
            |groups: &[Group<Vec<PathHook>>]| groups.iter().map(|g| hook_difference(g, &groups[0])).collect();
        for (sel, backend, hooks) in rec.entries(&what, |x| hooks_of(x, d, &netns), differences) {
            out.push(PathExpect {
                packet: sel.packet,
                answered_by: sel.answered_by,
                backend,
                exact: Some(hooks),
                ..PathExpect::new(d, &netns)
            });
        }
    }
    out
}

fn hooks_of(x: &Exchange, d: Direction, netns: &str) -> Vec<PathHook> {
    x.of(d).path.get(netns).map(|evs| evs.iter().map(hook_of).collect()).unwrap_or_default()
}

/// The hook an event names, as a recording writes it: a rule by its comment where the comment
/// names it alone in its chain (a rule added elsewhere then breaks nothing), else by position.
fn hook_of(e: &TraceEvent) -> PathHook {
    let by_comment = match (&e.hook, &e.rule) {
        (
            Hook::Xt { table, chain, kind: RuleKind::Rule, .. },
            Some(RuleText { comment: Some(c), comment_unique: true, .. }),
        ) if PathHook::can_name(c) => Some((Hook::xt(table, chain, RuleKind::Rule, 0), c.clone())),
        _ => None,
    };
    match by_comment {
        Some((hook, comment)) => PathHook { hook, comment: Some(comment), verdict: e.verdict.clone() },
        None => PathHook { hook: e.hook.clone(), comment: None, verdict: e.verdict.clone() },
    }
}

/// How a group's hooks differ from the first group's: where they part, what each has there.
fn hook_difference(group: &Group<Vec<PathHook>>, first: &Group<Vec<PathHook>>) -> String {
    let (packets, hooks) = group;
    let at = hooks.iter().zip(&first.1).position(|(a, b)| a != b).unwrap_or(hooks.len().min(first.1.len()));
    let hook = hooks.get(at).map(|h| h.to_string()).unwrap_or_else(|| "(no more hooks)".into());
    format!("{} at hook {}: {hook}", packets_text(packets), at + 1)
}

/// What makes an old entry of the file this entry's counterpart in [`super::rewrite`]: its
/// place (direction and netns), its packets, its backend.
pub(super) fn key(p: &PathExpect) -> (String, String, Option<&'static str>) {
    let place = format!("{} {}", p.direction, p.netns);
    (place, format!("{:?} {:?}", p.packet, p.answered_by), p.backend.map(Backend::name))
}
