//! Judging `[[probe.path]]`: the hooks each packet met in a netns against `exact`, `includes`
//! (in order), `last` and `never`, with a line diff of expected against observed.

use std::fmt::Write;

use super::{Context, ExpectationKind, Failure, FailureKind, ProbeEvidence, condition_text};
use crate::evidence::Exchange;
use crate::observe::trace::Hook;
use crate::scenario::{PathExpect, ProbeSpec};

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
            for e in probe.path.iter().filter(|e| e.applies(&ctx)) {
                out.extend(check_path(e, ex));
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

fn observed(e: &PathExpect, ex: &Exchange) -> Vec<Hook> {
    ex.of(e.direction).path.get(&e.netns).map(|evs| evs.iter().map(|ev| ev.hook.clone()).collect()).unwrap_or_default()
}

fn check_path(e: &PathExpect, ex: &Exchange) -> Vec<Failure> {
    let seen = observed(e, ex);
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
        && want != &seen
    {
        let lines = diff_lines(want, &seen);
        let only = |mark: char| lines.iter().filter(|(m, _)| *m == mark).map(|(_, h)| (*h).clone()).collect();
        out.push(fail(FailureKind::PathExact, what("exact"), diff_text(&lines), only('-'), only('+')));
    }
    if let Some(want) = &e.includes
        && let Some(missing) = first_missing_in_order(want, &seen)
    {
        out.push(fail(
            FailureKind::PathIncludes,
            what("includes, in order"),
            format!("`{}` not found in order; observed:\n{}", want[missing], list(&seen)),
            vec![want[missing].clone()],
            vec![],
        ));
    }
    if let Some(want) = &e.last
        && seen.last() != Some(want)
    {
        let f = fail(
            FailureKind::PathLast,
            what("last hook"),
            format!(
                "expected the packet's last hook to be {want}, it was {}; observed:\n{}",
                seen.last().map(|h| h.to_string()).unwrap_or_else(|| "none".into()),
                list(&seen)
            ),
            vec![want.clone()],
            seen.last().cloned().into_iter().collect(),
        );
        out.push(Failure { expected: Some(want.to_string()), observed: seen.last().map(ToString::to_string), ..f });
    }
    for pattern in &e.never {
        let hits: Vec<Hook> = seen.iter().filter(|h| pattern.matches(h)).cloned().collect();
        if !hits.is_empty() {
            let f = fail(
                FailureKind::PathNever,
                what(&format!("never {pattern}")),
                format!(
                    "visited {}; observed:\n{}",
                    hits.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", "),
                    list(&seen)
                ),
                vec![],
                hits,
            );
            out.push(Failure { expected: Some(pattern.to_string()), ..f });
        }
    }
    out
}

/// The index of the first wanted hook not found after the previous ones, if any.
pub fn first_missing_in_order(want: &[Hook], seen: &[Hook]) -> Option<usize> {
    let mut it = seen.iter();
    want.iter().position(|w| !it.any(|s| s == w))
}

fn list(hooks: &[Hook]) -> String {
    if hooks.is_empty() {
        return "    (no trace events)".into();
    }
    hooks.iter().map(|h| format!("    {h}")).collect::<Vec<_>>().join("\n")
}

/// A line diff of two hook sequences: `-` expected only, `+` observed only.
pub fn diff(want: &[Hook], seen: &[Hook]) -> String {
    diff_text(&diff_lines(want, seen))
}

/// The lines of [`diff`]: each hook with its mark, `' '` on both sides.
fn diff_lines<'a>(want: &'a [Hook], seen: &'a [Hook]) -> Vec<(char, &'a Hook)> {
    let (n, m) = (want.len(), seen.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if want[i] == seen[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, vec![]);
    while i < n || j < m {
        if i < n && j < m && want[i] == seen[j] {
            out.push((' ', &want[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(('+', &seen[j]));
            j += 1;
        } else {
            out.push(('-', &want[i]));
            i += 1;
        }
    }
    out
}

fn diff_text(lines: &[(char, &Hook)]) -> String {
    let mut out = String::from("expected (-) vs observed (+):\n");
    for (mark, hook) in lines {
        let _ = writeln!(out, "  {mark} {hook}");
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(s: &[&str]) -> Vec<Hook> {
        s.iter().map(|h| h.parse().unwrap()).collect()
    }

    #[test]
    fn diff_marks_missing_and_extra() {
        let want = hooks(&["raw:PREROUTING:policy:2", "nat:POSTROUTING:rule:1", "eb:nat:POSTROUTING"]);
        let seen = hooks(&["raw:PREROUTING:policy:2", "nat:POSTROUTING:policy:2", "eb:nat:POSTROUTING"]);
        let d = diff(&want, &seen);
        assert!(d.contains("  - nat:POSTROUTING:rule:1"), "{d}");
        assert!(d.contains("  + nat:POSTROUTING:policy:2"), "{d}");
        assert!(d.contains("    raw:PREROUTING:policy:2"), "{d}");
    }

    #[test]
    fn subsequence_in_order() {
        let seen = hooks(&["eb:nat:PREROUTING", "raw:PREROUTING:policy:2", "filter:FORWARD:rule:1"]);
        assert_eq!(first_missing_in_order(&hooks(&["eb:nat:PREROUTING", "filter:FORWARD:rule:1"]), &seen), None);
        assert_eq!(first_missing_in_order(&hooks(&["filter:FORWARD:rule:1", "eb:nat:PREROUTING"]), &seen), Some(1));
        assert_eq!(first_missing_in_order(&hooks(&["nat:POSTROUTING:rule:1"]), &seen), Some(0));
    }
}
