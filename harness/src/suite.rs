//! A suite: scenario files × backends, run `jobs` at a time and `repeat` times, every report
//! printed whole and in input order, then the counts; what `netpath run` does. A run that
//! panics is an ERROR of its own, not the end of the suite.

use std::io::{IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::output::junit::{self, Case, Status};
use crate::output::report::{self, Detail};
use crate::output::results::{self, RunResult, RunVerdict};
use crate::{Backend, RunOptions, Scenario};

/// The scenarios shipped in the repository, found from where this binary was built.
pub fn bundled() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cases/scenarios");
    dir.canonicalize().unwrap_or(dir)
}

/// The scenario files `paths` name: files as given, folders as their own `*.toml`, sorted
/// (not their subfolders: a base file that others `extend` lives in one).
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = vec![];
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "toml"))
                .collect();
            if files.is_empty() {
                return Err(format!("{}: no scenario files (*.toml) in this folder", p.display()));
            }
            files.sort();
            out.extend(files);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(format!("{}: no such file or folder", p.display()));
        }
    }
    Ok(out)
}

/// How `netpath run` runs and reports.
pub struct Settings {
    /// For every run.
    pub opts: RunOptions,
    /// How much of a passing run's observations the report shows.
    pub detail: Detail,
    /// A skip counts as a failure.
    pub strict: bool,
    /// Each report ends with where the run spent its time.
    pub timings: bool,
    /// Runs at once, each in its own namespaces.
    pub jobs: NonZeroUsize,
    /// Rounds of the whole selection; flaky probes are reported.
    pub repeat: NonZeroUsize,
    /// Where `--html` writes a page per run (and [`Suite::write_html`] the index); `None`: no
    /// pages beyond the artifact folders'.
    pub html: Option<PathBuf>,
}

/// A scenario file, loaded or not.
struct Loaded {
    file: PathBuf,
    scenario: Result<Scenario, String>,
}

/// One unit of work: a scenario under a backend, or reporting a file that did not load.
enum Job {
    Run { file: usize, backend: Backend },
    Unloaded { file: usize },
}

impl Job {
    fn file(&self) -> usize {
        match self {
            Job::Run { file, .. } | Job::Unloaded { file } => *file,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Passed,
    Failed,
    Skipped,
    /// The scenario cannot run under this backend at all (a native nft ruleset under legacy).
    NotApplicable,
}

/// What a job printed and reported.
struct Done {
    verdict: Verdict,
    text: String,
    cases: Vec<Case>,
    /// For `--json`; its `file` is filled in by [`execute_job`].
    result: RunResult,
    /// For `--html`: the run's page, its file name and text.
    page: Option<(String, String)>,
    /// The report of a run that ran, in parts: printed folded against the run before it of the
    /// same scenario ([`report::RunReport::folded`]).
    report: Option<report::RunReport>,
}

/// Run one scenario under one backend: skip it when the kernel lacks a feature it needs
/// (a failure under strict mode), otherwise run it and judge it.
fn execute(sc: &Scenario, backend: Backend, s: &Settings) -> Done {
    let head = format!("{} [{}]", sc.name, backend.name());
    if let Some(why) = sc.not_applicable(backend) {
        let mut result = RunResult::unrun("", sc, backend, None, Some(why));
        result.verdict = RunVerdict::NotApplicable;
        return Done {
            verdict: Verdict::NotApplicable,
            text: format!("N/A {head}: {why}\n"),
            cases: junit::unrun_cases(sc, backend, Duration::ZERO, Status::Skipped { message: why.to_string() }),
            result,
            page: None,
            report: None,
        };
    }
    if let Err(skip) = crate::caps::requires::check(sc, backend, &s.opts) {
        let why = format!("needs {}: {}", skip.feature.name(), skip.reason);
        let mut result = RunResult::unrun("", sc, backend, Some(&skip), None);
        return if s.strict {
            let message = format!("skipped under strict mode: {why}");
            result.verdict = RunVerdict::Fail;
            Done {
                verdict: Verdict::Failed,
                text: format!("FAIL {head}: {why} (a skip is a failure under --strict / NETPATH_STRICT=1)\n"),
                cases: junit::unrun_cases(sc, backend, Duration::ZERO, Status::Failed { message, text: why }),
                result,
                page: None,
                report: None,
            }
        } else {
            Done {
                verdict: Verdict::Skipped,
                text: format!("SKIP {head}: {why}\n"),
                cases: junit::unrun_cases(sc, backend, Duration::ZERO, Status::Skipped { message: why }),
                result,
                page: None,
                report: None,
            }
        };
    }
    let start = Instant::now();
    match crate::run(sc, backend, &s.opts) {
        Ok(o) => {
            let mut report = report::RunReport::of(&o, s.detail);
            if s.timings {
                report.tail.push_str(&format!("{}\n", o.timings));
            }
            Done {
                verdict: if o.passed() { Verdict::Passed } else { Verdict::Failed },
                text: report.text(),
                cases: junit::outcome_cases(&o, start.elapsed()),
                result: RunResult::from_outcome("", &o),
                page: s.html.as_deref().map(|dir| html_page(dir, sc, &o)),
                report: Some(report),
            }
        }
        Err(e) => errored(sc, backend, start.elapsed(), e.to_string()),
    }
}

/// The `--html` page of outcome `o` for folder `dir`, linking the run's artifacts if it has any.
fn html_page(dir: &Path, sc: &Scenario, o: &crate::Outcome) -> (String, String) {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let artifacts = o.artifacts.as_deref().map(|a| crate::output::html::relative(&abs(dir), &abs(a)));
    let file = crate::output::html::page_file(&o.scenario, o.backend.name());
    (file, crate::output::html::page(sc, o, artifacts.as_deref()))
}

/// A scenario that did not run: the lab could not be built or observed, or the run panicked.
fn errored(sc: &Scenario, backend: Backend, time: Duration, error: String) -> Done {
    let head = format!("{} [{}]", sc.name, backend.name());
    Done {
        verdict: Verdict::Failed,
        text: format!("ERROR {head}: {error}\n"),
        result: RunResult::unrun("", sc, backend, None, Some(&error)),
        cases: junit::unrun_cases(
            sc,
            backend,
            time,
            Status::Error { message: format!("did not run: {error}"), text: error },
        ),
        page: None,
        report: None,
    }
}

fn execute_job(job: &Job, loaded: &[Loaded], s: &Settings) -> Done {
    let l = &loaded[job.file()];
    let file = l.file.display().to_string();
    match (job, &l.scenario) {
        (Job::Run { backend, .. }, Ok(sc)) => {
            let start = Instant::now();
            let mut done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| execute(sc, *backend, s)))
                .unwrap_or_else(|p| {
                    let what = crate::error::panic_text(&p);
                    errored(sc, *backend, start.elapsed(), format!("netpath panicked: {what}"))
                });
            done.result.file = file;
            done
        }
        (_, scenario) => {
            let e = scenario.as_ref().err().cloned().unwrap_or_else(|| format!("{}: not loaded", l.file.display()));
            let text: String = e.lines().map(|line| format!("ERROR {line}\n")).collect();
            let case = Case {
                name: "load".into(),
                classname: l.file.display().to_string(),
                time: Duration::ZERO,
                status: Status::Error { message: format!("cannot load {}", l.file.display()), text: e.clone() },
            };
            let result = RunResult::not_loaded(&file, &e);
            Done { verdict: Verdict::Failed, text, cases: vec![case], result, page: None, report: None }
        }
    }
}

/// The `running NAME [backend] ...` line on a terminal, replaced by the verdict when it is in.
struct Progress {
    on: bool,
    shown: bool,
}

impl Progress {
    fn show(&mut self, line: &str) {
        if self.on {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K{line}");
            let _ = out.flush();
            self.shown = true;
        }
    }

    fn clear(&mut self) {
        if self.shown {
            print!("\r\x1b[2K");
            self.shown = false;
        }
    }
}

/// Run every job once, `jobs` at a time, printing each report whole and in input order (under
/// `quiet`, only those that did not pass); the results come back in input order.
fn run_round(work: &[Job], loaded: &[Loaded], settings: &Settings, quiet: bool) -> Vec<Option<Done>> {
    let label = |job: &Job| match (job, &loaded[job.file()].scenario) {
        (Job::Run { backend, .. }, Ok(sc)) => Some(format!("running {} [{}] ...", sc.name, backend.name())),
        _ => None,
    };
    let mut results: Vec<Option<Done>> = work.iter().map(|_| None).collect();
    let terminal = std::io::stdout().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
    let mut progress = Progress { on: terminal, shown: false };
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, Done)>();
    std::thread::scope(|scope| {
        for _ in 0..settings.jobs.get().min(work.len()) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(job) = work.get(i) else { break };
                    if tx.send((i, execute_job(job, loaded, settings))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Print whole reports in input order, whatever order they finish in.
        let mut printed = 0;
        // The run printed last: a probe whose paths repeat its own there is folded to a line.
        let mut before: Option<report::RunReport> = None;
        if let Some(l) = work.first().and_then(label) {
            progress.show(&l);
        }
        for (i, done) in rx {
            results[i] = Some(done);
            while let Some(Some(done)) = results.get(printed) {
                progress.clear();
                if !quiet || done.verdict == Verdict::Failed {
                    match &done.report {
                        Some(r) => print!("{}", r.folded(before.as_ref())),
                        None => print!("{}", done.text),
                    }
                }
                before.clone_from(&done.report);
                printed += 1;
            }
            if let Some(l) = work.get(printed).and_then(label) {
                progress.show(&l);
            }
        }
        progress.clear();
    });
    results
}

/// Per probe (`SCENARIO: PROBE [BACKEND]`), how many repeats gave each verdict.
#[derive(Default)]
struct Flips(std::collections::BTreeMap<String, std::collections::BTreeMap<&'static str, usize>>);

impl Flips {
    fn add(&mut self, cases: &[Case]) {
        for c in cases {
            let verdict = match c.status {
                Status::Passed => "passed",
                Status::Failed { .. } => "failed",
                Status::Error { .. } => "error",
                Status::Skipped { .. } => "skipped",
            };
            *self.0.entry(format!("{}: {}", c.classname, c.name)).or_default().entry(verdict).or_default() += 1;
        }
    }

    /// `FLAKY docker-masquerade: c1-to-external [nft]: passed 48, failed 2 of 50`, a line per
    /// probe whose verdict changed, then how many did.
    fn report(&self, repeats: usize) -> String {
        let mut out = String::new();
        let flaky: Vec<_> = self.0.iter().filter(|(_, by)| by.len() > 1).collect();
        for (probe, by) in &flaky {
            let tally: Vec<String> = by.iter().map(|(v, n)| format!("{v} {n}")).collect();
            out.push_str(&format!("FLAKY {probe}: {} of {repeats}\n", tally.join(", ")));
        }
        out.push_str(&format!(
            "{} of {} probes changed their verdict over {repeats} repeats\n",
            flaky.len(),
            self.0.len()
        ));
        out
    }
}

/// Scenario files, loaded, and the runs they make.
pub struct Suite {
    loaded: Vec<Loaded>,
    work: Vec<Job>,
}

/// What a suite's runs came to: the counts over every round, each run's result of the last.
pub struct Summary {
    /// Runs that passed.
    pub passed: usize,
    /// Runs that failed or did not run (ERROR), and skips under strict mode.
    pub failed: usize,
    /// Runs skipped for a feature the kernel lacks.
    pub skipped: usize,
    /// Runs under a backend the scenario cannot run under at all.
    pub not_applicable: usize,
    last: Vec<Option<Done>>,
}

impl Suite {
    /// Load `files`; each that loads runs under the backends `backends` picks for it, one that
    /// does not is reported as an ERROR when the suite runs.
    pub fn load(files: Vec<PathBuf>, backends: impl Fn(&Scenario) -> Vec<Backend>) -> Suite {
        let loaded: Vec<Loaded> = files
            .into_iter()
            .map(|file| {
                let scenario = Scenario::load(&file).map_err(|e| e.to_string());
                Loaded { file, scenario }
            })
            .collect();
        let work: Vec<Job> = loaded
            .iter()
            .enumerate()
            .flat_map(|(file, l)| match &l.scenario {
                Ok(sc) => backends(sc).into_iter().map(|backend| Job::Run { file, backend }).collect::<Vec<_>>(),
                Err(_) => vec![Job::Unloaded { file }],
            })
            .collect();
        Suite { loaded, work }
    }

    /// Run every round, printing the reports (under `repeat`, only those that did not pass, a
    /// line per round and the flaky probes) and the summary line.
    pub fn run(&self, settings: &Settings) -> Summary {
        let repeats = settings.repeat.get();
        let mut flips = Flips::default();
        let mut sum = Summary { passed: 0, failed: 0, skipped: 0, not_applicable: 0, last: vec![] };
        for round in 1..=repeats {
            // Under --repeat only what did not pass is printed whole; every round gets a line.
            let quiet = repeats > 1;
            let results = run_round(&self.work, &self.loaded, settings, quiet);
            let (mut p, mut f, mut s, mut n) = (0, 0, 0, 0);
            for done in results.iter().flatten() {
                match done.verdict {
                    Verdict::Passed => p += 1,
                    Verdict::Failed => f += 1,
                    Verdict::Skipped => s += 1,
                    Verdict::NotApplicable => n += 1,
                }
                flips.add(&done.cases);
            }
            if quiet {
                println!("repeat {round}/{repeats}: {p} passed, {f} failed, {s} skipped, {n} not applicable");
            }
            sum.passed += p;
            sum.failed += f;
            sum.skipped += s;
            sum.not_applicable += n;
            sum.last = results;
        }
        if repeats > 1 {
            print!("{}", flips.report(repeats));
        }
        // Test-runner summaries are read by their leading `N passed, N failed`: keep that first.
        println!(
            "{} passed, {} failed, {} skipped, {} not applicable",
            sum.passed, sum.failed, sum.skipped, sum.not_applicable
        );
        sum
    }

    /// The last round's results as `--json` writes them.
    pub fn write_json(&self, sum: &Summary, path: &Path) -> Result<(), String> {
        let runs = sum.last.iter().filter_map(|d| d.as_ref().map(|d| d.result.clone())).collect();
        let text = serde_json::to_string_pretty(&results::Results::new(runs)).unwrap_or_default();
        std::fs::write(path, text + "\n").map_err(|e| format!("write the JSON results {}: {e}", path.display()))
    }

    /// The last round's runs as an HTML report in `dir` (`--html`): a page per run that ran
    /// ([`Settings::html`] made them) and `index.html` listing every run.
    pub fn write_html(&self, sum: &Summary, dir: &Path) -> Result<(), String> {
        let done: Vec<&Done> = sum.last.iter().flatten().collect();
        let pages: Vec<(String, String)> = done.iter().filter_map(|d| d.page.clone()).collect();
        let entries: Vec<crate::output::html::Entry<'_>> = done
            .iter()
            .map(|d| crate::output::html::Entry { result: &d.result, page: d.page.as_ref().map(|p| p.0.clone()) })
            .collect();
        crate::output::html::write_suite(dir, &pages, &entries).map(|_| ())
    }

    /// The last round's results as a JUnit XML report: a suite per file, a case per probe.
    pub fn write_junit(&self, sum: &Summary, path: &Path) -> Result<(), String> {
        let mut report = junit::Report::default();
        for (index, l) in self.loaded.iter().enumerate() {
            let cases: Vec<Case> = self
                .work
                .iter()
                .zip(&sum.last)
                .filter(|(job, _)| job.file() == index)
                .flat_map(|(_, done)| done.as_ref().map(|d| d.cases.clone()).unwrap_or_default())
                .collect();
            let name = match &l.scenario {
                Ok(sc) => sc.name.clone(),
                Err(_) => l.file.display().to_string(),
            };
            report.suites.push(junit::Suite { name, file: l.file.display().to_string(), cases });
        }
        std::fs::write(path, report.to_xml()).map_err(|e| format!("write the JUnit report {}: {e}", path.display()))
    }
}
