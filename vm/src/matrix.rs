//! The kernel matrix: the bundled scenarios on each kernel, one column per kernel, and the
//! table made from the columns (Markdown and JSON): a cell per scenario × backend × probe, the
//! kernel config each kernel has, and where the observed path differs between kernels.

use std::collections::BTreeMap;
use std::fmt::Write;

use netpath::output::results::{ProbeResult, RunResult, RunVerdict};
use serde::{Deserialize, Serialize};

/// What one kernel did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Column {
    /// As asked for: `host`, `6.1`, `6.1.0-57-amd64`.
    pub alias: String,
    /// `uname -r` where it ran.
    pub release: String,
    /// The kernel's own version string (`/proc/version`).
    pub version: String,
    /// `host (no VM)`, `tcg (...)` or `kvm (...)`.
    pub boot: String,
    pub seconds: f64,
    /// Why the kernel produced no results at all (did not boot, panicked, no kernel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Each symbol of `netpath caps --kernel-config`: `y`, `m`, or absent.
    #[serde(default)]
    pub config: BTreeMap<String, Option<String>>,
    /// What the kernel's drop source gives there (`reason and location`, `location only: ...`,
    /// `none: ...`: [`netpath::output::results::drop_source`]), from its results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drops: Option<String>,
    /// Modules netpath-vm loads before the tests that this kernel could not load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_modules: Vec<String>,
    #[serde(default)]
    pub runs: Vec<RunResult>,
}

impl Column {
    pub fn failed(alias: &str, boot: String, seconds: f64, error: String) -> Column {
        Column {
            alias: alias.into(),
            release: String::new(),
            version: String::new(),
            boot,
            seconds,
            error: Some(error),
            config: BTreeMap::new(),
            drops: None,
            missing_modules: vec![],
            runs: vec![],
        }
    }
}

/// The values of the fragment's symbols in a kernel config file's text.
pub fn config_values(config_text: Option<&str>) -> BTreeMap<String, Option<String>> {
    let fragment = netpath::caps::kernel_config_fragment();
    let have: BTreeMap<&str, &str> = config_text
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("CONFIG_"))
        .collect();
    fragment
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(sym, _)| (sym.to_string(), have.get(sym).map(|v| v.to_string())))
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
    #[serde(rename = "n-a")]
    NotApplicable,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    pub status: Status,
    /// The missing feature of a skip, the first failure, why a run errored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Cell {
    fn text(&self) -> String {
        match (&self.status, &self.detail) {
            (Status::Pass, _) => "pass".into(),
            (Status::Fail, _) => "**FAIL**".into(),
            (Status::Skip, Some(f)) => format!("skip ({f})"),
            (Status::Skip, None) => "skip".into(),
            (Status::NotApplicable, _) => "n-a".into(),
        }
    }
}

/// A scenario × backend × probe.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RowKey {
    pub scenario: String,
    pub backend: String,
    pub probe: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    #[serde(flatten)]
    pub key: RowKey,
    /// By kernel alias.
    pub cells: BTreeMap<String, Cell>,
}

/// Where one packet's path in one netns is not the same on every kernel that ran the probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathDifference {
    #[serde(flatten)]
    pub key: RowKey,
    pub packet: u16,
    pub direction: String,
    pub netns: String,
    /// The kernels that observed each distinct path, the most common first.
    pub variants: Vec<PathVariant>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathVariant {
    pub kernels: Vec<String>,
    pub hooks: Vec<String>,
}

/// The whole table, as `matrix.json` holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Matrix {
    pub date: String,
    pub netpath_commit: String,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub rows: Vec<Row>,
    #[serde(default)]
    pub path_differences: Vec<PathDifference>,
    /// Packets whose path differed between kernels only as a per-packet choice does (a random
    /// endpoint, such as kube-proxy's `-m statistic`): each kernel took each path for some packet.
    #[serde(default)]
    pub unsteady_paths: Vec<String>,
}

fn find<'a>(c: &'a Column, k: &RowKey) -> Option<(&'a RunResult, Option<&'a ProbeResult>)> {
    let run = c.runs.iter().find(|r| r.scenario == k.scenario && r.backend == k.backend)?;
    Some((run, run.probes.iter().find(|p| p.name == k.probe)))
}

fn cell(c: &Column, k: &RowKey) -> Cell {
    let na = Cell { status: Status::NotApplicable, detail: None };
    if let Some(e) = &c.error {
        return Cell { status: Status::Fail, detail: Some(e.lines().next().unwrap_or("").to_string()) };
    }
    let Some((run, probe)) = find(c, k) else { return na };
    match (run.verdict, probe) {
        (RunVerdict::NotApplicable, _) => na,
        (RunVerdict::Skip, _) => Cell { status: Status::Skip, detail: run.feature.clone() },
        (RunVerdict::Error, _) => Cell { status: Status::Fail, detail: run.reason.clone() },
        (_, None) => na,
        (_, Some(p)) if p.passed => Cell { status: Status::Pass, detail: None },
        (_, Some(p)) => Cell { status: Status::Fail, detail: p.failures.first().cloned() },
    }
}

impl Matrix {
    pub fn new(date: String, netpath_commit: String, columns: Vec<Column>) -> Matrix {
        let mut keys: Vec<RowKey> = vec![];
        for c in &columns {
            for r in &c.runs {
                for p in &r.probes {
                    let k = RowKey { scenario: r.scenario.clone(), backend: r.backend.clone(), probe: p.name.clone() };
                    if !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
        }
        keys.sort();
        let rows = keys
            .iter()
            .map(|k| Row { key: k.clone(), cells: columns.iter().map(|c| (c.alias.clone(), cell(c, k))).collect() })
            .collect();
        let (mut path_differences, mut unsteady_paths) = (vec![], vec![]);
        for k in &keys {
            let (d, n) = differences(&columns, k);
            path_differences.extend(d);
            unsteady_paths.extend(n);
        }
        Matrix { date, netpath_commit, columns, rows, path_differences, unsteady_paths }
    }

    /// Whether any cell failed (a kernel that did not run counts as failed).
    pub fn failed(&self) -> bool {
        self.rows.iter().any(|r| r.cells.values().any(|c| c.status == Status::Fail))
            || self.columns.iter().any(|c| c.error.is_some())
    }

    fn counts(&self, alias: &str) -> BTreeMap<&'static str, usize> {
        let mut n = BTreeMap::new();
        for r in &self.rows {
            let s = match r.cells.get(alias).map(|c| &c.status) {
                Some(Status::Pass) => "pass",
                Some(Status::Fail) => "fail",
                Some(Status::Skip) => "skip",
                _ => "n-a",
            };
            *n.entry(s).or_insert(0) += 1;
        }
        n
    }

    /// A line per kernel: `6.1 (6.1.0-57-amd64, tcg): 28 pass, 0 fail, 3 skip, 0 n-a in 412 s`.
    pub fn summary(&self) -> Vec<String> {
        self.columns
            .iter()
            .map(|c| {
                let n = self.counts(&c.alias);
                let g = |k| n.get(k).copied().unwrap_or(0);
                let mode = c.boot.split(' ').next().unwrap_or("");
                let tail = c
                    .error
                    .as_ref()
                    .map(|e| format!("; did not run: {}", e.lines().next().unwrap_or("")))
                    .unwrap_or_default();
                format!(
                    "{} ({}, {mode}): {} pass, {} fail, {} skip, {} n-a in {:.0} s{tail}",
                    c.alias,
                    if c.release.is_empty() { "?" } else { &c.release },
                    g("pass"),
                    g("fail"),
                    g("skip"),
                    g("n-a"),
                    c.seconds
                )
            })
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# netpath kernel matrix\n");
        let _ = writeln!(
            o,
            "Generated {} by `netpath-vm matrix` from netpath commit `{}`: the bundled scenarios under \
             both backends on each kernel.\n",
            self.date, self.netpath_commit
        );
        let _ = writeln!(o, "| kernel | release | version string | boot |\n|---|---|---|---|");
        for c in &self.columns {
            let _ = writeln!(o, "| {} | {} | {} | {} |", c.alias, c.release, esc(&c.version), esc(&c.boot));
        }
        let _ = writeln!(o, "\n## Summary\n");
        for s in self.summary() {
            let _ = writeln!(o, "- {s}");
        }
        let aliases: Vec<&str> = self.columns.iter().map(|c| c.alias.as_str()).collect();
        let _ = writeln!(o, "\n## Results\n");
        let _ = writeln!(o, "| scenario | backend | probe | {} |", aliases.join(" | "));
        let _ = writeln!(o, "|---|---|---|{}", "---|".repeat(aliases.len()));
        for r in &self.rows {
            let cells: Vec<String> =
                aliases.iter().map(|a| r.cells.get(*a).map(Cell::text).unwrap_or("n-a".into())).collect();
            let _ = writeln!(o, "| {} | {} | {} | {} |", r.key.scenario, r.key.backend, r.key.probe, cells.join(" | "));
        }
        let failures: Vec<String> = self
            .rows
            .iter()
            .flat_map(|r| {
                r.cells.iter().filter(|(_, c)| c.status == Status::Fail).map(move |(a, c)| {
                    let d = c.detail.as_deref().unwrap_or("").lines().next().unwrap_or("");
                    format!("- {a}: {} [{}] {}: {}", r.key.scenario, r.key.backend, r.key.probe, esc(d))
                })
            })
            .collect();
        if !failures.is_empty() {
            let _ = writeln!(o, "\n### Failures\n\n{}", failures.join("\n"));
        }
        let _ = writeln!(o, "\n## Path differences\n");
        if self.path_differences.is_empty() {
            let _ = writeln!(o, "None: every probe's path is the same on every kernel that ran it.\n");
        }
        for d in &self.path_differences {
            let _ = writeln!(
                o,
                "### {} [{}] {}: packet {} {} in netns {}\n",
                d.key.scenario, d.key.backend, d.key.probe, d.packet, d.direction, d.netns
            );
            let base = &d.variants[0];
            let _ = writeln!(o, "Kernels {}: `{}`\n", base.kernels.join(", "), base.hooks.join(" → "));
            for v in &d.variants[1..] {
                let _ = writeln!(o, "Kernels {} differ:\n\n```diff", v.kernels.join(", "));
                for line in diff(&base.hooks, &v.hooks) {
                    let _ = writeln!(o, "{line}");
                }
                let _ = writeln!(o, "```\n");
            }
        }
        if !self.unsteady_paths.is_empty() {
            let _ = writeln!(
                o,
                "Not kernel differences: these packets took different paths on different kernels, but every \
                 kernel took each of those paths for another packet of the same probe (a per-packet choice \
                 such as a load balancer's random endpoint):\n"
            );
            for u in &self.unsteady_paths {
                let _ = writeln!(o, "- {u}");
            }
        }
        let _ = writeln!(o, "\n## Kernel config (`netpath caps --kernel-config`)\n");
        let _ = writeln!(o, "| symbol | {} |\n|---|{}", aliases.join(" | "), "---|".repeat(aliases.len()));
        let symbols: Vec<&String> = self
            .columns
            .iter()
            .flat_map(|c| c.config.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for s in symbols {
            let vals: Vec<String> = self
                .columns
                .iter()
                .map(|c| match c.config.get(s) {
                    Some(Some(v)) => v.clone(),
                    Some(None) => "**unset**".into(),
                    None => "?".into(),
                })
                .collect();
            let _ = writeln!(o, "| {s} | {} |", vals.join(" | "));
        }
        // Only once some kernel said: matrices made before the drop source stay as they were.
        if self.columns.iter().any(|c| c.drops.is_some()) {
            let _ = writeln!(o, "\n## Kernel drop source (`netpath caps`: drop-location, drop-reason)\n");
            let _ = writeln!(o, "| kernel | drop source |\n|---|---|");
            for c in &self.columns {
                let _ = writeln!(o, "| {} | {} |", c.alias, c.drops.as_deref().unwrap_or("?"));
            }
        }
        let missing: Vec<String> = self
            .columns
            .iter()
            .filter(|c| !c.missing_modules.is_empty())
            .map(|c| format!("- {}: {}", c.alias, c.missing_modules.join(", ")))
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(
                o,
                "\nModules netpath-vm loads first that a kernel has neither as a module nor built in:\n\n{}",
                missing.join("\n")
            );
        }
        o
    }
}

fn esc(s: &str) -> String {
    s.replace('|', "\\|")
}

/// Per (packet, direction, netns): each distinct path with the kernels that observed it.
type Paths = Vec<(Vec<String>, Vec<String>)>;

/// The row's path differences between kernels, and the places (`reply in netns node1`) where the
/// path varied between packets on one kernel.
fn differences(columns: &[Column], k: &RowKey) -> (Vec<PathDifference>, Vec<String>) {
    let mut by: BTreeMap<(u16, String, String), Paths> = BTreeMap::new();
    for c in columns {
        let Some((run, Some(p))) = find(c, k) else { continue };
        if !matches!(run.verdict, RunVerdict::Pass | RunVerdict::Fail) {
            continue;
        }
        for path in &p.paths {
            let slot = by.entry((path.packet, path.direction.to_string(), path.netns.clone())).or_default();
            match slot.iter_mut().find(|(h, _)| *h == path.hooks) {
                Some((_, kernels)) => kernels.push(c.alias.clone()),
                None => slot.push((path.hooks.clone(), vec![c.alias.clone()])),
            }
        }
    }
    // A path that differs between the packets of one probe on one kernel (a random load-balancing
    // choice) says nothing about kernels: those are listed apart, not compared.
    let varies = unsteady(&by);
    let mut places: BTreeMap<(&str, &str), Vec<String>> = BTreeMap::new();
    for (p, d, ns) in &varies {
        places.entry((d, ns)).or_default().push(p.to_string());
    }
    let notes = places
        .into_iter()
        .map(|((d, ns), ps)| {
            format!("{} [{}] {}: {d} in netns {ns}, {} packets", k.scenario, k.backend, k.probe, ps.len())
        })
        .collect();
    let diffs = by
        .into_iter()
        .filter(|(key, variants)| variants.len() > 1 && !varies.contains(key))
        .map(|((packet, direction, netns), mut variants)| {
            variants.sort_by_key(|(_, kernels)| std::cmp::Reverse(kernels.len()));
            PathDifference {
                key: k.clone(),
                packet,
                direction,
                netns,
                variants: variants.into_iter().map(|(hooks, kernels)| PathVariant { kernels, hooks }).collect(),
            }
        })
        .collect();
    (diffs, notes)
}

/// The packets whose path differs between kernels only as a per-packet choice would: every
/// kernel also saw each of the differing paths, for another packet of the same probe there.
fn unsteady(by: &BTreeMap<(u16, String, String), Paths>) -> Vec<(u16, String, String)> {
    // Per (direction, netns, kernel): every path seen, whichever packet.
    let mut seen: BTreeMap<(&str, &str, &str), Vec<&Vec<String>>> = BTreeMap::new();
    for ((_, d, ns), variants) in by {
        for (hooks, kernels) in variants {
            for k in kernels {
                seen.entry((d, ns, k)).or_default().push(hooks);
            }
        }
    }
    let kernels: Vec<&str> = by.values().flatten().flat_map(|(_, ks)| ks.iter().map(String::as_str)).collect();
    by.iter()
        .filter(|((_, d, ns), variants)| {
            variants.len() > 1
                && variants.iter().all(|(hooks, _)| {
                    kernels.iter().all(|k| seen.get(&(d.as_str(), ns.as_str(), *k)).is_some_and(|p| p.contains(&hooks)))
                })
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// A line diff (` `, `-`, `+`) from `a` to `b`, by longest common subsequence.
pub fn diff(a: &[String], b: &[String]) -> Vec<String> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, vec![]);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push(format!(" {}", a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+{}", b[j]));
            j += 1;
        } else {
            out.push(format!("-{}", a[i]));
            i += 1;
        }
    }
    out
}

/// The columns of several matrices (CI's legs, each named by where it was read) as one, refusing
/// two columns of one kernel (two legs of the same kernel, or one copied twice, would make a cell
/// say whichever came last). Every kernel of `expect` without a column becomes a column of
/// failures with its reason from `dead` (`KERNEL=REASON`), or the plain fact that no matrix.json
/// came from it: a leg that died early stays in the table instead of vanishing from it.
pub fn join(legs: Vec<(String, Matrix)>, expect: &[String], dead: &[String]) -> Result<Matrix, String> {
    let mut reasons = BTreeMap::new();
    for d in dead {
        let (k, why) = d.split_once('=').ok_or_else(|| format!("--dead {d}: give KERNEL=REASON"))?;
        reasons.insert(k.to_string(), why.to_string());
    }
    let (mut date, mut commit) = (String::new(), String::new());
    let mut columns: Vec<Column> = vec![];
    let mut from: BTreeMap<String, String> = BTreeMap::new();
    for (name, m) in legs {
        if !commit.is_empty() && m.netpath_commit != commit {
            return Err(format!(
                "{name} comes from netpath commit {}, the others from {commit}: join the legs of one run",
                m.netpath_commit
            ));
        }
        (date, commit) = (m.date, m.netpath_commit);
        for c in m.columns {
            if let Some(first) = from.insert(c.alias.clone(), name.clone()) {
                return Err(format!(
                    "kernel {} has a column in {first} and again in {name}: give each kernel's matrix.json once",
                    c.alias
                ));
            }
            columns.push(c);
        }
    }
    for k in expect {
        if !from.contains_key(k) {
            let why = reasons.get(k).cloned().unwrap_or_else(|| "the leg wrote no matrix.json".into());
            columns.push(Column::failed(k, "-".into(), 0.0, format!("leg died before writing matrix.json: {why}")));
        }
    }
    Ok(Matrix::new(date, commit, columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netpath::output::results::ObservedPath;
    use netpath::scenario::Direction;

    fn run(scenario: &str, verdict: RunVerdict, hooks: &[&str], passed: bool) -> RunResult {
        RunResult {
            file: format!("{scenario}.toml"),
            scenario: scenario.into(),
            backend: "legacy".into(),
            verdict,
            feature: (verdict == RunVerdict::Skip).then(|| "ebtables-broute".into()),
            reason: None,
            probes: vec![ProbeResult {
                name: "p".into(),
                passed,
                failures: if passed { vec![] } else { vec!["path: differs".into()] },
                paths: vec![ObservedPath {
                    packet: 1,
                    direction: Direction::Request,
                    netns: "host".into(),
                    hooks: hooks.iter().map(|h| h.to_string()).collect(),
                }],
                packets: 1,
            }],
        }
    }

    fn column(alias: &str, runs: Vec<RunResult>) -> Column {
        Column { runs, release: format!("{alias}.0"), ..Column::failed(alias, "tcg".into(), 1.0, String::new()) }
            .without_error()
    }

    impl Column {
        fn without_error(mut self) -> Column {
            self.error = None;
            self
        }
    }

    #[test]
    fn cells_say_pass_fail_skip_with_feature_and_n_a() {
        let a = column("5.10", vec![run("s", RunVerdict::Pass, &["raw:PREROUTING"], true)]);
        let b = column("6.1", vec![run("s", RunVerdict::Fail, &["raw:PREROUTING"], false)]);
        let c = column("7.2", vec![run("s", RunVerdict::Skip, &[], false)]);
        let d = column("6.12", vec![]);
        let m = Matrix::new("d".into(), "c".into(), vec![a, b, c, d]);
        let cells = &m.rows[0].cells;
        assert_eq!(cells["5.10"].status, Status::Pass);
        assert_eq!(cells["6.1"], Cell { status: Status::Fail, detail: Some("path: differs".into()) });
        assert_eq!(cells["7.2"].text(), "skip (ebtables-broute)");
        assert_eq!(cells["6.12"].status, Status::NotApplicable);
        assert!(m.failed());
        assert!(m.summary()[1].starts_with("6.1 (6.1.0, tcg): 0 pass, 1 fail, 0 skip, 0 n-a"), "{:?}", m.summary());
    }

    /// The drop source per kernel: a row each once some kernel said, nothing for a matrix made
    /// before (its markdown stays as committed).
    #[test]
    fn the_drop_source_shows_per_kernel_once_a_kernel_said() {
        let mut old = column("5.10", vec![]);
        let mut new = column("6.1", vec![]);
        let before = Matrix::new("d".into(), "c".into(), vec![old.clone(), new.clone()]).markdown();
        assert!(!before.contains("drop source"), "{before}");
        old.drops = Some("location only: skb:kfree_skb has no reason field".into());
        new.drops = Some("reason and location".into());
        let md = Matrix::new("d".into(), "c".into(), vec![old, new]).markdown();
        assert!(
            md.contains("| 5.10 | location only: skb:kfree_skb has no reason field |\n| 6.1 | reason and location |"),
            "{md}"
        );
    }

    #[test]
    fn a_path_that_differs_between_kernels_is_reported_with_a_diff() {
        let old = ["raw:PREROUTING:policy:2", "nat:PREROUTING:policy:3"];
        let new = ["raw:PREROUTING:policy:2", "filter:FORWARD:policy:1", "nat:PREROUTING:policy:3"];
        let cols = vec![
            column("5.10", vec![run("s", RunVerdict::Pass, &old, true)]),
            column("6.1", vec![run("s", RunVerdict::Pass, &new, true)]),
            column("6.12", vec![run("s", RunVerdict::Pass, &new, true)]),
        ];
        let m = Matrix::new("d".into(), "c".into(), cols);
        assert!(!m.failed());
        assert_eq!(m.path_differences.len(), 1);
        let d = &m.path_differences[0];
        assert_eq!(d.variants[0].kernels, ["6.1", "6.12"]);
        assert_eq!(d.variants[1].kernels, ["5.10"]);
        let md = m.markdown();
        assert!(
            md.contains("```diff\n raw:PREROUTING:policy:2\n-filter:FORWARD:policy:1\n nat:PREROUTING:policy:3\n```"),
            "{md}"
        );
        let same =
            Matrix::new("d".into(), "c".into(), vec![column("6.1", vec![run("s", RunVerdict::Pass, &new, true)])]);
        assert!(same.path_differences.is_empty() && same.markdown().contains("None: every probe's path"));
    }

    #[test]
    fn a_path_that_varies_between_packets_on_one_kernel_is_not_compared() {
        let mut two = run("s", RunVerdict::Pass, &["nat:SEP-1"], true);
        let mut second = two.probes[0].paths[0].clone();
        second.packet = 2;
        second.hooks = vec!["nat:SEP-2".into()];
        two.probes[0].paths.push(second);
        // 7.2 took the same two paths, in the other order.
        let mut other = two.clone();
        other.probes[0].paths[0].hooks = vec!["nat:SEP-2".into()];
        other.probes[0].paths[1].hooks = vec!["nat:SEP-1".into()];
        let m = Matrix::new("d".into(), "c".into(), vec![column("6.1", vec![two.clone()]), column("7.2", vec![other])]);
        assert!(m.path_differences.is_empty(), "{:?}", m.path_differences);
        assert_eq!(m.unsteady_paths, ["s [legacy] p: request in netns host, 2 packets"]);
        // A kernel that never took SEP-2 differs for real.
        let only_one = run("s", RunVerdict::Pass, &["nat:SEP-1"], true);
        let mut only_one_twice = only_one.clone();
        let mut p2 = only_one.probes[0].paths[0].clone();
        p2.packet = 2;
        only_one_twice.probes[0].paths.push(p2);
        let m =
            Matrix::new("d".into(), "c".into(), vec![column("6.1", vec![two]), column("5.10", vec![only_one_twice])]);
        assert_eq!(m.path_differences.len(), 1, "{:?}", m.path_differences);
        assert_eq!(m.path_differences[0].packet, 2);
    }

    #[test]
    fn a_kernel_that_did_not_run_fails_the_matrix() {
        let ok = column("6.1", vec![run("s", RunVerdict::Pass, &[], true)]);
        let bad = Column::failed("5.10", "tcg".into(), 3.0, "the guest panicked: Kernel panic".into());
        let m = Matrix::new("d".into(), "c".into(), vec![ok, bad]);
        assert!(m.failed());
        assert!(m.summary()[1].contains("did not run: the guest panicked"), "{:?}", m.summary());
    }

    #[test]
    fn join_refuses_a_kernel_twice_and_names_both_inputs() {
        let leg = |alias: &str| {
            Matrix::new("d".into(), "c".into(), vec![column(alias, vec![run("s", RunVerdict::Pass, &[], true)])])
        };
        let e = join(vec![("a/matrix.json".into(), leg("6.1")), ("b/matrix.json".into(), leg("6.1"))], &[], &[])
            .unwrap_err();
        assert!(e.contains("kernel 6.1") && e.contains("a/matrix.json") && e.contains("b/matrix.json"), "{e}");
        let ok = join(vec![("a".into(), leg("6.1")), ("b".into(), leg("5.10"))], &[], &[]).unwrap();
        assert!(!ok.failed());
    }

    #[test]
    fn join_shows_a_dead_leg_as_a_column_of_failures_with_its_reason() {
        let leg = Matrix::new("d".into(), "c".into(), vec![column("6.1", vec![run("s", RunVerdict::Pass, &[], true)])]);
        let m = join(
            vec![("legs/matrix-6.1/matrix.json".into(), leg)],
            &["6.1".into(), "5.10".into(), "7.2".into()],
            &["5.10=apt-get download: 404 Not Found".into()],
        )
        .unwrap();
        assert!(m.failed());
        let cell = &m.rows[0].cells["5.10"];
        assert_eq!(cell.status, Status::Fail);
        assert!(cell.detail.as_deref().unwrap_or("").contains("404 Not Found"), "{cell:?}");
        let seven = m.rows[0].cells["7.2"].detail.clone().unwrap_or_default();
        assert!(seven.contains("wrote no matrix.json"), "{seven}");
        assert_eq!(m.rows[0].cells["6.1"].status, Status::Pass);
        assert!(m.markdown().contains("404 Not Found"));
    }

    #[test]
    fn config_values_read_the_fragments_symbols() {
        let v = config_values(Some("CONFIG_BRIDGE=m\n# CONFIG_WIREGUARD is not set\nCONFIG_NET_NS=y\n"));
        assert_eq!(v["CONFIG_BRIDGE"].as_deref(), Some("m"));
        assert_eq!(v["CONFIG_NET_NS"].as_deref(), Some("y"));
        assert_eq!(v["CONFIG_WIREGUARD"], None);
    }
}
