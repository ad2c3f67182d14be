//! Judging `[[probe.path]]`: the hooks each packet met in a netns against `exact`, `includes`
//! (in order), `last` and `never`, with a line diff of expected against observed.

use std::fmt::Write;

use super::{Context, ExpectationKind, Failure, FailureKind, ProbeEvidence, condition_text};
use crate::evidence::Exchange;
use crate::observe::trace::{Hook, TraceEvent};
use crate::scenario::{PathExpect, PathHook, ProbeSpec};

/// `[[probe.path]]`.
pub struct PathKind;

impl ExpectationKind for PathKind {
    fn name(&self) -> &'static str {
        "path"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["path"]
    }

    fn failures(&self) -> &'static [FailureKind] {
        &FailureKind::PATH
    }

    fn judge(&self, probe: &ProbeSpec, evidence: &ProbeEvidence<'_>) -> Vec<Failure> {
        let mut out = vec![];
        for ex in evidence.exchanges {
            let ctx = evidence.context(ex);
            for (i, e) in probe.path.iter().enumerate().filter(|(_, e)| e.applies(&ctx)) {
                out.extend(check_path(e, ex).into_iter().map(|f| f.by("path", Some(i))));
            }
        }
        out
    }
}

impl PathExpect {
    /// Whether this entry is about the packet and run of `ctx`: its packets, the endpoint that
    /// answered, its backend and kernel variant (see [`crate::scenario::Conditions`]).
    pub fn applies(&self, ctx: &Context<'_>) -> bool {
        self.conditions().applies(ctx)
    }
}

fn observed<'a>(e: &PathExpect, ex: &'a Exchange) -> &'a [TraceEvent] {
    ex.of(e.direction).path.get(&e.netns).map(Vec::as_slice).unwrap_or_default()
}

fn check_path(e: &PathExpect, ex: &Exchange) -> Vec<Failure> {
    let events = observed(e, ex);
    let seen: Vec<Hook> = events.iter().map(|ev| ev.hook.clone()).collect();
    let cond = condition_text(e.answered_by.as_deref());
    let what = |kind: &str| format!("path of packet {} {} in netns {}{cond} ({kind})", ex.packet, e.direction, e.netns);
    let fail = |kind: FailureKind, what: String, detail: String, missing: Vec<Hook>, unexpected: Vec<Hook>| Failure {
        direction: Some(e.direction),
        netns: Some(e.netns.clone()),
        answered_by: e.answered_by.clone(),
        hooks: seen.clone(),
        missing,
        unexpected,
        ..Failure::of_packet(kind, ex.packet, what, detail)
    };
    let mut out = vec![];
    if let Some(want) = &e.exact
        && !(want.len() == events.len() && want.iter().zip(events).all(|(w, ev)| w.matches(ev)))
    {
        let lines = diff_lines(want, events);
        let missing = lines.iter().filter_map(|l| match l {
            Line::Want(w) => Some(w.hook.clone()),
            _ => None,
        });
        let extra = lines.iter().filter_map(|l| match l {
            Line::Seen(ev) => Some(ev.hook.clone()),
            _ => None,
        });
        out.push(fail(FailureKind::PathExact, what("exact"), diff_text(&lines), missing.collect(), extra.collect()));
    }
    if let Some(want) = &e.includes
        && let Some(missing) = first_missing_in_order(want, events)
    {
        out.push(fail(
            FailureKind::PathIncludes,
            what("includes, in order"),
            format!("`{}` not found in order; observed:\n{}", want[missing], list(events)),
            vec![want[missing].hook.clone()],
            vec![],
        ));
    }
    if let Some(want) = &e.last
        && !events.last().is_some_and(|ev| want.matches(ev))
    {
        let last = events.last().map(shown);
        let f = fail(
            FailureKind::PathLast,
            what("last hook"),
            format!(
                "expected the packet's last hook to be {want}, it was {}; observed:\n{}",
                last.as_deref().unwrap_or("none"),
                list(events)
            ),
            vec![want.hook.clone()],
            seen.last().cloned().into_iter().collect(),
        );
        out.push(Failure { expected: Some(want.to_string()), observed: last, ..f });
    }
    for pattern in &e.never {
        let hits: Vec<&TraceEvent> = events.iter().filter(|ev| pattern.matches_event(ev)).collect();
        if !hits.is_empty() {
            let f = fail(
                FailureKind::PathNever,
                what(&format!("never {pattern}")),
                format!(
                    "visited {}; observed:\n{}",
                    hits.iter().map(|ev| shown(ev)).collect::<Vec<_>>().join(", "),
                    list(events)
                ),
                vec![],
                hits.iter().map(|ev| ev.hook.clone()).collect(),
            );
            out.push(Failure { expected: Some(pattern.to_string()), ..f });
        }
    }
    out
}

/// The index of the first wanted hook not found after the previous ones, if any.
pub fn first_missing_in_order(want: &[PathHook], seen: &[TraceEvent]) -> Option<usize> {
    let mut it = seen.iter();
    want.iter().position(|w| !it.any(|s| w.matches(s)))
}

/// An event as failures show it: its hook, with its verdict where known (`filter:INPUT:policy:2
/// drop`).
pub fn shown(ev: &TraceEvent) -> String {
    match &ev.verdict {
        Some(v) => format!("{} {v}", ev.hook),
        None => ev.hook.to_string(),
    }
}

/// An event with the rule that decided, where known: `filter:INPUT:rule:1 accept  [-A INPUT
/// -p tcp --dport 22 -j ACCEPT]`.
pub fn shown_with_rule(ev: &TraceEvent) -> String {
    match &ev.rule {
        Some(r) => format!("{:<40} [{}]", shown(ev), r.text),
        None => shown(ev),
    }
}

fn list(events: &[TraceEvent]) -> String {
    if events.is_empty() {
        return "    (no trace events)".into();
    }
    events.iter().map(|ev| format!("    {}", shown_with_rule(ev))).collect::<Vec<_>>().join("\n")
}

/// One line of a path diff.
enum Line<'a> {
    /// Expected and observed (the observed event).
    Both(&'a TraceEvent),
    /// Expected only.
    Want(&'a PathHook),
    /// Observed only.
    Seen(&'a TraceEvent),
}

/// A line diff of expected hooks against observed events: `-` expected only, `+` observed only.
pub fn diff(want: &[PathHook], seen: &[TraceEvent]) -> String {
    diff_text(&diff_lines(want, seen))
}

fn diff_lines<'a>(want: &'a [PathHook], seen: &'a [TraceEvent]) -> Vec<Line<'a>> {
    let (n, m) = (want.len(), seen.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] =
                if want[i].matches(&seen[j]) { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, vec![]);
    while i < n || j < m {
        if i < n && j < m && want[i].matches(&seen[j]) {
            out.push(Line::Both(&seen[j]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(Line::Seen(&seen[j]));
            j += 1;
        } else {
            out.push(Line::Want(&want[i]));
            i += 1;
        }
    }
    out
}

fn diff_text(lines: &[Line<'_>]) -> String {
    let mut out = String::from("expected (-) vs observed (+):\n");
    for line in lines {
        let _ = match line {
            Line::Both(ev) => writeln!(out, "    {}", shown_with_rule(ev)),
            Line::Want(h) => writeln!(out, "  - {h}"),
            Line::Seen(ev) => writeln!(out, "  + {}", shown_with_rule(ev)),
        };
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(s: &[&str]) -> Vec<TraceEvent> {
        s.iter()
            .map(|h| {
                let (hook, verdict) = h.split_once(' ').map_or((*h, None), |(a, b)| (a, Some(b)));
                let mut e = crate::observe::trace::text::parse_line(&format!(
                    "TRACE: {hook} IN=a OUT= SRC=10.0.0.1 DST=10.0.0.2 LEN=84 TTL=64 ID=1 PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1"
                ))
                .unwrap();
                e.verdict = verdict.map(|v| v.parse().unwrap());
                e
            })
            .collect()
    }

    fn hooks(s: &[&str]) -> Vec<PathHook> {
        s.iter().map(|h| h.parse().unwrap()).collect()
    }

    #[test]
    fn diff_marks_missing_and_extra() {
        let want = hooks(&["raw:PREROUTING:policy:2", "nat:POSTROUTING:rule:1", "filter:INPUT:policy:1 drop"]);
        let seen = events(&[
            "raw:PREROUTING:policy:2 accept",
            "nat:POSTROUTING:policy:2 accept",
            "filter:INPUT:policy:1 accept",
        ]);
        let d = diff(&want, &seen);
        assert!(d.contains("  - nat:POSTROUTING:rule:1"), "{d}");
        assert!(d.contains("  + nat:POSTROUTING:policy:2 accept"), "{d}");
        assert!(d.contains("    raw:PREROUTING:policy:2 accept"), "{d}");
        assert!(d.contains("  - filter:INPUT:policy:1 drop\n") || d.contains("  - filter:INPUT:policy:1 drop"), "{d}");
        assert!(d.contains("  + filter:INPUT:policy:1 accept"), "{d}");
    }

    #[test]
    fn subsequence_in_order() {
        let seen =
            events(&["raw:PREROUTING:policy:2", "nat:PREROUTING:rule:1 jump DOCKER", "filter:FORWARD:rule:1 accept"]);
        assert_eq!(first_missing_in_order(&hooks(&["raw:PREROUTING:policy:2", "filter:FORWARD:rule:1"]), &seen), None);
        assert_eq!(
            first_missing_in_order(&hooks(&["filter:FORWARD:rule:1", "raw:PREROUTING:policy:2"]), &seen),
            Some(1)
        );
        assert_eq!(first_missing_in_order(&hooks(&["nat:POSTROUTING:rule:1"]), &seen), Some(0));
        assert_eq!(first_missing_in_order(&hooks(&["nat:PREROUTING:rule:1 jump DOCKER"]), &seen), None);
        assert_eq!(first_missing_in_order(&hooks(&["filter:FORWARD:rule:1 drop"]), &seen), Some(0));
        assert_eq!(shown(&seen[0]), "raw:PREROUTING:policy:2");
        assert_eq!(shown(&seen[1]), "nat:PREROUTING:rule:1 jump DOCKER");
    }
}
