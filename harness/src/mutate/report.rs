//! What mutation testing found: a score table per scenario × backend, every survivor with the
//! rule, the change and the probes that met it, and JSON that shards join.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::run::{MutantResult, Status};
use crate::firewall::Backend;

/// How the unmutated scenario fared under one backend.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "unmutated")]
pub enum Unmutated {
    /// It passed under `backend`: its mutants ran.
    #[allow(missing_docs)] // named in the doc
    Passed { backend: Backend },
    /// It was skipped or failed unmutated under `backend` (`why`), so none of its mutants ran.
    #[allow(missing_docs)] // named in the doc
    NotMutated { backend: Backend, why: String },
    /// The file did not load: `why`.
    #[allow(missing_docs)] // named in the doc
    NotLoaded { why: String },
}

/// One scenario's mutants.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioScore {
    /// Its file.
    pub file: PathBuf,
    /// Its name (empty when it did not load).
    pub scenario: String,
    /// How it fared unmutated, per backend.
    pub unmutated: Vec<Unmutated>,
    /// Every mutant of this share, per backend.
    pub mutants: Vec<MutantResult>,
}

/// Counts of one scenario × backend, or of everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Mutants an expectation noticed.
    pub killed: usize,
    /// Mutants no expectation noticed.
    pub survived: usize,
    /// Mutants of rules no probe packet met.
    pub unexercised: usize,
    /// Mutants the scenario marks equivalent.
    pub equivalent: usize,
    /// Mutants that did not run to a verdict.
    pub error: usize,
}

impl Tally {
    fn add(&mut self, s: &Status) {
        match s {
            Status::Killed { .. } => self.killed += 1,
            Status::Survived { .. } => self.survived += 1,
            Status::Unexercised => self.unexercised += 1,
            Status::Equivalent { .. } => self.equivalent += 1,
            Status::Error { .. } => self.error += 1,
        }
    }

    /// killed / (killed + survived), in percent; `None` when no mutant ran to a verdict.
    pub fn score(&self) -> Option<f64> {
        let judged = self.killed + self.survived;
        (judged > 0).then(|| 100.0 * self.killed as f64 / judged as f64)
    }
}

impl ScenarioScore {
    /// The counts of its mutants under `backend`, or under all.
    pub fn tally(&self, backend: Option<Backend>) -> Tally {
        let mut t = Tally::default();
        for m in self.mutants.iter().filter(|m| backend.is_none_or(|b| m.backend == b)) {
            t.add(&m.status);
        }
        t
    }

    /// The survivors.
    pub fn survivors(&self) -> impl Iterator<Item = &MutantResult> {
        self.mutants.iter().filter(|m| matches!(m.status, Status::Survived { .. }))
    }
}

/// Everything one `netpath mutate` (or one shard of it) found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Per scenario file, in the order given.
    pub scenarios: Vec<ScenarioScore>,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// The share it ran (`(k, n)`), if one.
    pub shard: Option<(usize, usize)>,
}

impl Report {
    /// The counts over every scenario.
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for m in self.scenarios.iter().flat_map(|s| &s.mutants) {
            t.add(&m.status);
        }
        t
    }

    /// What fails `--min-score min`: every scenario × backend below it, and every scenario that
    /// was not mutated (failed or skipped unmutated, or did not load), since it has no score.
    pub fn below(&self, min: f64) -> Vec<String> {
        let mut out = vec![];
        for s in &self.scenarios {
            for b in [Backend::Legacy, Backend::Nft] {
                if let Some(score) = s.tally(Some(b)).score()
                    && score + 1e-9 < min
                {
                    out.push(format!("{} [{}]: {:.1} % < {min} %", s.scenario, b.name(), score));
                }
            }
            for u in &s.unmutated {
                match u {
                    Unmutated::Passed { .. } => {}
                    Unmutated::NotMutated { backend, why } => {
                        out.push(format!("{} [{}]: not mutated: {why}", s.scenario, backend.name()))
                    }
                    Unmutated::NotLoaded { why } => out.push(format!("{}: not loaded: {why}", s.file.display())),
                }
            }
        }
        out
    }

    /// The text report: a table (scenario × backend: killed, survived, unexercised, equivalent,
    /// error, score), a total, then every survivor with what to add, then the unexercised rules
    /// and the errors, each in a line or two. Fits 100 columns but for the quoted rules.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let t = self.tally();
        let ran = t.killed + t.survived + t.error;
        out += &format!(
            "netpath mutate: {} scenario files, {} mutants, {ran} run in {:.1} s ({:.1} mutants/s){}\n\n",
            self.scenarios.len(),
            self.scenarios.iter().map(|s| s.mutants.len()).sum::<usize>(),
            self.seconds,
            if self.seconds > 0.0 { ran as f64 / self.seconds } else { 0.0 },
            self.shard.map(|(k, n)| format!(", shard {k}/{n}")).unwrap_or_default()
        );
        out += &header();
        for s in &self.scenarios {
            for u in &s.unmutated {
                match u {
                    Unmutated::Passed { backend: b } => out += &row(&s.scenario, b.name(), s.tally(Some(*b))),
                    Unmutated::NotMutated { backend: b, why } => {
                        out += &format!("{:<40} {:<7} not mutated: {}\n", cut(&s.scenario, 40), b.name(), cut(why, 120))
                    }
                    Unmutated::NotLoaded { why } => {
                        out += &format!(
                            "{:<40} {:<7} not loaded: {}\n",
                            cut(&s.file.display().to_string(), 40),
                            "-",
                            cut(why, 120)
                        )
                    }
                }
            }
        }
        out += &row("total", "", t);
        let mut survivors = String::new();
        let mut unexercised = String::new();
        let mut errors = String::new();
        for s in &self.scenarios {
            for m in &s.mutants {
                let head = format!("{} [{}] {}", s.scenario, m.backend.name(), m.mutant.describe());
                match &m.status {
                    Status::Survived { met_by } => {
                        survivors += &format!("SURVIVED {head}\n");
                        survivors += &format!(
                            "  met by {}: no expectation of theirs notices; add one (or mark it `# mutate: equivalent — WHY`)\n",
                            if met_by.is_empty() { "every packet (a sysctl)".to_string() } else { met_by.join(", ") }
                        );
                    }
                    Status::Unexercised => {
                        unexercised +=
                            &format!("UNEXERCISED {head}\n  no probe exercises {}\n", m.mutant.target.describe())
                    }
                    Status::Error { message } => errors += &format!("ERROR {head}\n  {}\n", cut(message, 300)),
                    _ => {}
                }
            }
        }
        for part in [survivors, unexercised, errors] {
            if !part.is_empty() {
                out += "\n";
                out += &part;
            }
        }
        out
    }
}

/// The score table's head line.
fn header() -> String {
    format!(
        "{:<40} {:<7} {:>6} {:>8} {:>11} {:>5} {:>5} {:>6}\n",
        "scenario", "backend", "killed", "survived", "unexercised", "equiv", "error", "score"
    )
}

/// One line of the score table.
fn row(name: &str, backend: &str, t: Tally) -> String {
    format!(
        "{:<40} {:<7} {:>6} {:>8} {:>11} {:>5} {:>5} {:>6}\n",
        cut(name, 40),
        backend,
        t.killed,
        t.survived,
        t.unexercised,
        t.equivalent,
        t.error,
        t.score().map_or("-".to_string(), |s| format!("{s:.0} %"))
    )
}

/// `s` cut to `n` characters, with … where it was cut.
fn cut(s: &str, n: usize) -> String {
    let s = s.lines().next().unwrap_or_default();
    if s.chars().count() <= n { s.to_string() } else { format!("{}…", s.chars().take(n - 1).collect::<String>()) }
}

/// The JSON reports of the N shards of one `netpath mutate --shard K/N --json F` run, joined:
/// the score table, every survivor and error, the scenarios not mutated, and the gate.
#[derive(Debug, Default)]
pub struct Joined {
    rows: std::collections::BTreeMap<(String, String), (Tally, Vec<String>)>,
    not_mutated: std::collections::BTreeSet<String>,
    seconds: f64,
    shards: usize,
}

/// Joins shard reports (`netpath mutate --join A.json B.json ...`). They must be the N shards of
/// one split, each once: a shard that died before writing its file would otherwise leave its
/// mutants out of the score, and the gate would pass on what it never ran.
pub fn join(reports: &[serde_json::Value]) -> Result<Joined, String> {
    let mut j = Joined { shards: reports.len(), ..Joined::default() };
    let mut seen = std::collections::BTreeMap::<usize, usize>::new();
    let mut of = None;
    for (i, r) in reports.iter().enumerate() {
        let shard = r["shard"].as_array().and_then(|a| Some((a.first()?.as_u64()?, a.get(1)?.as_u64()?)));
        let Some((k, n)) = shard else {
            return Err(format!("report {}: not a shard's report (no `shard`: run with --shard K/N)", i + 1));
        };
        if *of.get_or_insert(n) != n {
            return Err(format!("report {}: shard {k}/{n}, but report 1 is of {} shards", i + 1, of.unwrap_or(n)));
        }
        if let Some(first) = seen.insert(k as usize, i + 1) {
            return Err(format!("reports {first} and {} are both shard {k}/{n}", i + 1));
        }
        let scenarios = r["scenarios"].as_array().ok_or_else(|| format!("report {}: no `scenarios` array", i + 1))?;
        j.seconds = j.seconds.max(r["seconds"].as_f64().unwrap_or_default());
        for s in scenarios {
            let name = s["scenario"].as_str().unwrap_or_default().to_string();
            for u in s["unmutated"].as_array().into_iter().flatten() {
                let why = u["why"].as_str().unwrap_or_default();
                match u["unmutated"].as_str().unwrap_or_default() {
                    "passed" => {
                        let backend = u["backend"].as_str().unwrap_or_default().to_string();
                        j.rows.entry((name.clone(), backend)).or_default();
                    }
                    "not-mutated" => {
                        let backend = u["backend"].as_str().unwrap_or_default();
                        j.not_mutated.insert(format!("{name} [{backend}]: not mutated: {why}"));
                    }
                    _ => {
                        let file = s["file"].as_str().unwrap_or_default();
                        j.not_mutated.insert(format!("{file}: not loaded: {why}"));
                    }
                }
            }
            for m in s["mutants"].as_array().into_iter().flatten() {
                let backend = m["backend"].as_str().unwrap_or_default().to_string();
                let (t, lines) = j.rows.entry((name.clone(), backend.clone())).or_default();
                let (place, id) = (m["place"].as_str().unwrap_or_default(), m["id"].as_str().unwrap_or_default());
                match m["status"].as_str().unwrap_or_default() {
                    "killed" => t.killed += 1,
                    "survived" => {
                        t.survived += 1;
                        lines.push(format!("SURVIVED {name} [{backend}] {place}: {id}"));
                    }
                    "unexercised" => t.unexercised += 1,
                    "equivalent" => t.equivalent += 1,
                    "error" => {
                        t.error += 1;
                        lines.push(format!("ERROR {name} [{backend}] {place}: {id}"));
                    }
                    other => return Err(format!("report {}: mutant status `{other}` unknown", i + 1)),
                }
            }
        }
    }
    let n = of.ok_or("no reports to join")? as usize;
    let missing: Vec<String> = (1..=n).filter(|k| !seen.contains_key(k)).map(|k| format!("{k}/{n}")).collect();
    if !missing.is_empty() {
        return Err(format!(
            "shard {} missing: its runner died before writing its report, or its file was not given",
            missing.join(", ")
        ));
    }
    Ok(j)
}

impl Joined {
    /// The table, then every survivor and error, then the scenarios that were not mutated.
    pub fn text(&self) -> String {
        let mut out =
            format!("netpath mutate: {} shard reports joined (longest {:.1} s)\n\n", self.shards, self.seconds);
        out += &header();
        let mut total = Tally::default();
        let mut tail = String::new();
        for ((name, backend), (t, lines)) in &self.rows {
            out += &row(name, backend, *t);
            total.killed += t.killed;
            total.survived += t.survived;
            total.unexercised += t.unexercised;
            total.equivalent += t.equivalent;
            total.error += t.error;
            for l in lines {
                tail += l;
                tail += "\n";
            }
        }
        out += &row("total", "", total);
        for l in &self.not_mutated {
            tail += l;
            tail += "\n";
        }
        if !tail.is_empty() {
            out += "\n";
            out += &tail;
        }
        out
    }

    /// What fails `--min-score min`: every scenario × backend below it, and every scenario that
    /// was not mutated (failed or skipped unmutated, or did not load), since it has no score.
    pub fn below(&self, min: f64) -> Vec<String> {
        let mut out: Vec<String> = self
            .rows
            .iter()
            .filter_map(|((name, backend), (t, _))| {
                t.score().filter(|s| s + 1e-9 < min).map(|s| format!("{name} [{backend}]: {s:.1} % < {min} %"))
            })
            .collect();
        out.extend(self.not_mutated.iter().cloned());
        out
    }
}
