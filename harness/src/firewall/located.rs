//! A ruleset a firewall tool rejects is reported at the scenario file's line of the failing rule,
//! with the rule's text and the tool's message, under both backends and for both families
//! (`iptables` and `ip6tables`).
//!
//! netpath feeds each tool the scenario's ruleset exactly as written (its own TRACE rules and
//! ebtables NFLOG rules go in restores of their own, with `--noflush`), so line N of the tool's
//! input is line N of the ruleset. Tools do not always name the rule's line: iptables-legacy
//! reports a failed table commit at its `COMMIT` (`iptables-restore: line 118 failed`), and
//! iptables-nft some errors there too; then the rule is found by restoring ever longer prefixes
//! of that table until one fails (a binary search; the lab is torn down after the error anyway).

use std::path::{Path, PathBuf};

use super::{Backend, Family, ebtables, nft};
use crate::error::{Error, Result};
use crate::lab::netns::Netns;

/// Where a scenario's rulesets are in its files (a file that `extends` a base has the
/// base's rulesets in the base).
#[derive(Debug, Clone, Default)]
pub struct Source {
    /// `(netns, field, file, line of the ruleset's first line)`.
    lines: Vec<(String, &'static str, PathBuf, usize)>,
    /// `(netns, sysctl key, file, line)`.
    sysctls: Vec<(String, String, PathBuf, usize)>,
    /// Where each probe's expectations are: `(probe index, key, index in its array of tables,
    /// file, line)`; a key without an index is the probe's own line where it does not say it.
    probes: Vec<ProbeEntryAt>,
    /// `(item, FILE:LINE:COL)` of path patterns checked only after the steps
    /// (`probe[0].path[1].never[0]`).
    places: Vec<(String, String)>,
}

/// Where one expectation of a probe is written: `(probe index, key, index in its array of
/// tables, file, line)`.
pub type ProbeEntryAt = (usize, String, Option<usize>, PathBuf, usize);

/// Where a scenario came from is not part of what it is: a scenario equals its copy written
/// out with `to_toml` and read back.
impl PartialEq for Source {
    fn eq(&self, _: &Source) -> bool {
        true
    }
}

impl Source {
    pub fn new(file: &Path, lines: Vec<(String, &'static str, usize)>) -> Source {
        Source::in_files(
            lines.into_iter().map(|(netns, field, line)| (netns, field, file.to_path_buf(), line)).collect(),
        )
    }

    /// Rulesets each in a file of its own: `(netns, field, file, line)`.
    pub fn in_files(lines: Vec<(String, &'static str, PathBuf, usize)>) -> Source {
        Source { lines, sysctls: vec![], probes: vec![], places: vec![] }
    }

    /// The same, knowing where each netns's sysctls are too: `(netns, key, file, line)`.
    pub fn with_sysctls(self, sysctls: Vec<(String, String, PathBuf, usize)>) -> Source {
        Source { sysctls, ..self }
    }

    /// The same, knowing where each probe's expectations are.
    pub fn with_probes(self, probes: Vec<ProbeEntryAt>) -> Source {
        Source { probes, ..self }
    }

    /// Sets each failure's [`location`](crate::Failure::location) from its
    /// [`entry`](crate::Failure::entry): `FILE:LINE` of that entry of probe number `probe`
    /// (`name`), or for a scenario built in Rust, which entry it is and that it has no file.
    pub fn locate(&self, probe: usize, name: &str, failures: &mut [crate::Failure]) {
        for f in failures.iter_mut() {
            let Some((key, index)) = f.entry else { continue };
            let found = self.probes.iter().find(|(p, k, i, _, _)| *p == probe && k == key && *i == index);
            // An answer the probe does not state (the default reply) is the probe's own.
            let found = found.or_else(|| {
                (index.is_none())
                    .then(|| self.probes.iter().find(|(p, k, _, _, _)| *p == probe && k == "probe"))
                    .flatten()
            });
            f.location = Some(match found {
                Some((_, _, _, file, line)) => format!("{}:{line}", file.display()),
                None => {
                    let which = match index {
                        Some(i) => format!("[[probe.{key}]] number {}", i + 1),
                        None => format!("`{key}`"),
                    };
                    format!("probe {name}, {which} (a scenario built in Rust: no file)")
                }
            });
        }
    }

    /// The same, knowing where items of the file are: `(item, FILE:LINE:COL)`.
    pub fn with_places(self, places: Vec<(String, String)>) -> Source {
        Source { places, ..self }
    }

    /// `FILE:LINE:COL` of `item` (`probe[0].path[1].never[0]`) where the file says, else the
    /// item itself (a scenario built in Rust).
    pub fn place(&self, item: &str) -> String {
        self.places.iter().find(|(i, _)| i == item).map_or_else(|| item.to_string(), |(_, at)| at.clone())
    }

    /// `FILE:LINE` of the sysctl `key` of `netns`, or, for a scenario built in Rust, `netns NAME
    /// sysctls`.
    pub fn sysctl_at(&self, netns: &str, key: &str) -> String {
        match self.sysctls.iter().find(|(ns, k, _, _)| ns == netns && k == key) {
            Some((_, _, file, line)) => format!("{}:{line}", file.display()),
            None => format!("netns {netns} sysctls"),
        }
    }

    /// `FILE:LINE` of line `n` (1-based) of the `field` ruleset of `netns`, or, for a scenario
    /// built in Rust, `netns NAME FIELD line N`.
    pub fn at(&self, netns: &str, field: &str, n: usize) -> String {
        match self.lines.iter().find(|(ns, f, _, _)| ns == netns && *f == field) {
            Some((_, _, file, first)) => format!("{}:{}", file.display(), first + n - 1),
            None => format!("netns {netns} {field} line {n}"),
        }
    }
}

/// Which tool applies a ruleset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Iptables(Backend, Family),
    Ebtables,
    Nft,
}

impl Kind {
    fn field(self) -> &'static str {
        match self {
            Kind::Iptables(_, family) => family.iptables(),
            Kind::Ebtables => "ebtables",
            Kind::Nft => "nft",
        }
    }

    fn apply(self, ns: &Netns, rules: &str) -> Result<()> {
        match self {
            Kind::Iptables(b, family) => b.iptables(family).restore(ns, rules),
            Kind::Ebtables => ebtables::restore(ns, rules),
            Kind::Nft => nft::apply(ns, rules),
        }
    }
}

/// Apply `rules`, the `kind` ruleset of the scenario's netns `netns`; a rejection is an
/// [`Error::Ruleset`] located in `source`.
pub fn apply(ns: &Netns, source: &Source, netns: &str, kind: Kind, rules: &str) -> Result<()> {
    let Err(e) = kind.apply(ns, rules) else { return Ok(()) };
    let Error::Command { command, stderr, .. } = &e else { return Err(e) };
    let tool = command.split_whitespace().next().unwrap_or_default().to_string();
    let lines: Vec<&str> = rules.lines().collect();
    let said = tool_line(stderr).filter(|n| (1..=lines.len()).contains(n));
    let rule = match (said, kind) {
        (Some(n), _) if is_rule(lines[n - 1]) => Some(n),
        (_, Kind::Iptables(..)) => culprit(ns, kind, &lines, said),
        (n, _) => n,
    };
    let mut message = stderr
        .lines()
        .filter(|l| !l.starts_with("Try `"))
        .map(|l| without_banner(l).trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    if let Some(n) = rule {
        message.push_str(&object_hint(lines[n - 1]));
    }
    let (at, rejected) = match rule {
        Some(n) => (
            source.at(netns, kind.field(), n),
            format!("{tool} rejected `{}` (line {n} of the ruleset)", lines[n - 1].trim()),
        ),
        None => (source.at(netns, kind.field(), 1), format!("{tool} rejected the ruleset")),
    };
    Err(Error::Ruleset { at, netns: netns.to_string(), rejected, message })
}

/// `line 7: ...` for `iptables-nft-restore v1.8.9 (nf_tables): line 7: ...`.
fn without_banner(line: &str) -> &str {
    match line.split_once("): ") {
        Some((banner, rest)) if banner.contains(" v") && banner.contains(" (") => rest,
        _ => line.trim_end().strip_suffix("):").filter(|b| b.contains(" v")).map_or(line, |_| ""),
    }
}

/// How to make the object a rule matches on, which no restore creates: an nfacct counter or
/// an ipset (what kube-proxy >= 1.29's `-m nfacct` rules need first).
fn object_hint(rule: &str) -> String {
    let words: Vec<&str> = rule.split_whitespace().collect();
    let after = |flag: &str| words.windows(2).find(|w| w[0] == flag).map(|w| w[1]);
    match (after("--nfacct-name"), after("--match-set")) {
        (Some(name), _) => format!(
            " (the rule matches the nfacct counter `{name}`, which must exist first: a [[step]] running `nfacct add {name}` in this netns creates it)"
        ),
        (None, Some(set)) => format!(
            " (the rule matches the ipset `{set}`, which must exist first: a [[step]] running `ipset create {set} TYPE` in this netns creates it)"
        ),
        _ => String::new(),
    }
}

/// A line that adds something (not a table header, chain declaration, comment or COMMIT).
fn is_rule(line: &str) -> bool {
    let t = line.trim();
    !(t.is_empty() || t.starts_with(['*', ':', '#']) || t == "COMMIT")
}

/// The input line a tool's message names: `line 4 failed`, `Error occurred at line: 5`,
/// `line 3: RULE_APPEND failed`, `/dev/stdin:4:25-30: Error`.
fn tool_line(stderr: &str) -> Option<usize> {
    let number = |s: &str| {
        let digits: String = s.trim_start_matches([':', ' ']).chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    if let Some(at) = stderr.find("/dev/stdin:") {
        return number(&stderr[at + "/dev/stdin:".len()..]);
    }
    stderr.match_indices("line").find_map(|(at, _)| number(&stderr[at + 4..]))
}

/// The first rule of the failing table whose prefix no longer restores: the table holding line
/// `said`, or each table in turn when the tool named no line.
fn culprit(ns: &Netns, kind: Kind, lines: &[&str], said: Option<usize>) -> Option<usize> {
    let tables: Vec<(usize, usize)> = {
        let starts: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].trim_start().starts_with('*')).collect();
        starts.iter().enumerate().map(|(k, &s)| (s, starts.get(k + 1).copied().unwrap_or(lines.len()))).collect()
    };
    let candidates: Vec<(usize, usize)> = match said {
        Some(n) => tables.iter().copied().filter(|&(s, e)| s < n && n <= e).collect(),
        None => tables,
    };
    for (start, end) in candidates {
        let body = &lines[start..end];
        let head: Vec<&str> = body.iter().copied().filter(|l| l.trim_start().starts_with(['*', ':'])).collect();
        let rules: Vec<usize> = (start..end).filter(|&i| is_rule(lines[i])).collect();
        let fails = |k: usize| {
            let mut text: String = head.iter().map(|l| format!("{l}\n")).collect();
            for &i in &rules[..k] {
                text.push_str(lines[i]);
                text.push('\n');
            }
            text.push_str("COMMIT\n");
            kind.apply(ns, &text).is_err()
        };
        if rules.is_empty() || !fails(rules.len()) {
            continue;
        }
        // The smallest k whose prefix fails: rules[k - 1] is the one.
        let (mut ok, mut bad) = (0, rules.len());
        while bad - ok > 1 {
            let mid = (ok + bad) / 2;
            if fails(mid) { bad = mid } else { ok = mid }
        }
        return Some(rules[bad - 1] + 1);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_messages_name_their_line() {
        assert_eq!(tool_line("iptables-restore: line 118 failed\n"), Some(118));
        assert_eq!(
            tool_line(
                "iptables-nft-restore v1.8.9 (nf_tables): \nline 3: RULE_APPEND failed (No such file or directory): rule in chain INPUT\n"
            ),
            Some(3)
        );
        assert_eq!(
            tool_line("iptables-restore v1.8.9 (legacy): Couldn't load target `NOSUCH'\n\nError occurred at line: 4\n"),
            Some(4)
        );
        assert_eq!(
            tool_line("/dev/stdin:4:25-30: Error: Could not process rule: No such file or directory\n"),
            Some(4)
        );
        assert_eq!(
            tool_line("ebtables-restore v1.8.9 (nf_tables): Unknown argument: '1'\nError occurred at line: 2\n"),
            Some(2)
        );
        assert_eq!(tool_line("Permission denied\n"), None);
    }

    #[test]
    fn banners_go_and_missing_objects_get_a_hint() {
        assert_eq!(without_banner("iptables-nft-restore v1.8.9 (nf_tables): line 7: x"), "line 7: x");
        assert_eq!(without_banner("iptables-nft-restore v1.8.9 (nf_tables): "), "");
        assert_eq!(without_banner("iptables-restore: line 10 failed"), "iptables-restore: line 10 failed");
        assert!(object_hint("-A F -m nfacct --nfacct-name kp -j DROP").contains("`nfacct add kp`"));
        assert!(object_hint("-A F -m set --match-set S dst -j ACCEPT").contains("`ipset create S TYPE`"));
        assert_eq!(object_hint("-A F -j ACCEPT"), "");
    }

    #[test]
    fn lines_map_to_the_file() {
        let s = Source::new(Path::new("k.toml"), vec![("host".into(), "iptables", 12)]);
        assert_eq!(s.at("host", "iptables", 1), "k.toml:12");
        assert_eq!(s.at("host", "iptables", 4), "k.toml:15");
        assert_eq!(Source::default().at("host", "nft", 3), "netns host nft line 3");
        assert!(is_rule("-A INPUT -j ACCEPT") && !is_rule("COMMIT") && !is_rule(":INPUT ACCEPT [0:0]"));
    }
}
