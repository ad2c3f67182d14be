//! Running mutants: the unmutated scenario once per backend, then each mutant its trace says a
//! probe could notice, `jobs` at a time, each in its own lab.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::report::{Report, ScenarioScore, Unmutated};
use super::{Mutant, Target, mutants};
use crate::engine::{Outcome, RunOptions};
use crate::error::Error;
use crate::firewall::Backend;
use crate::scenario::Scenario;

/// How `netpath mutate` runs.
pub struct Settings {
    /// For every run, the unmutated ones and the mutants.
    pub opts: RunOptions,
    /// Runs at once, each in its own namespaces.
    pub jobs: NonZeroUsize,
    /// Run only the `k`-th of `n` shares of the mutants (`(k, n)`, 1-based `k`): a mutant's
    /// share is its position, in file × backend × id order, modulo `n`.
    pub shard: Option<(usize, usize)>,
}

/// What became of one mutant under one backend.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Status {
    /// At least one expectation failed, or the scenario refused the mutant: `by` names which.
    #[allow(missing_docs)] // named in the doc
    Killed { by: Vec<String> },
    /// Every expectation held: `met_by` names the probes whose packets met the mutated rule in
    /// the unmutated run, the ones an added expectation would have to guard.
    #[allow(missing_docs)] // named in the doc
    Survived { met_by: Vec<String> },
    /// No probe packet met what it changes in the unmutated run: it cannot change what any
    /// probe observes, and was not run.
    Unexercised,
    /// The scenario marks it equivalent, with this reason; not run.
    #[allow(missing_docs)] // named in the doc
    Equivalent { why: String },
    /// It did not run to a verdict: the mutated ruleset did not load, or the lab failed. Not
    /// counted in the score.
    #[allow(missing_docs)] // named in the doc
    Error { message: String },
}

/// One mutant's result under one backend.
#[derive(Debug, Clone, Serialize)]
pub struct MutantResult {
    /// The mutant.
    #[serde(flatten)]
    pub mutant: Mutant,
    /// The backend it ran under.
    pub backend: Backend,
    /// What became of it.
    #[serde(flatten)]
    pub status: Status,
    /// How long its run took (zero when it did not run).
    pub seconds: f64,
}

/// The probes of `outcome` one of whose packets met `target`, with the packet numbers:
/// `c1-to-external (packets 1, 2)`.
fn met_by(outcome: &Outcome, target: &Target) -> Vec<String> {
    let mut out = vec![];
    for p in &outcome.probes {
        let packets: Vec<String> = p
            .exchanges
            .iter()
            .filter(|x| {
                std::iter::once(&x.request)
                    .chain(std::iter::once(&x.reply))
                    .chain(&x.retransmissions)
                    .chain(&x.reply_retransmissions)
                    .flat_map(|e| e.path.values().flatten())
                    .any(|ev| target.met_by(ev))
            })
            .map(|x| x.packet.to_string())
            .collect();
        if !packets.is_empty() {
            let s = if packets.len() == 1 { "" } else { "s" };
            out.push(format!("{} (packet{s} {})", p.name, packets.join(", ")));
        }
    }
    out
}

/// The expectations that failed, one line each: `probe c1-to-external: path of packet 1 request
/// in host (exact) at cases/scenarios/x.toml:40`.
fn failed(outcome: &Outcome) -> Vec<String> {
    outcome
        .probes
        .iter()
        .flat_map(|p| {
            p.failures.iter().map(move |f| match &f.location {
                Some(at) => format!("probe {}: {} at {at}", p.name, f.what),
                None => format!("probe {}: {}", p.name, f.what),
            })
        })
        .collect()
}

/// Runs `f` over `items`, `jobs` at a time, results in input order.
fn parallel<T: Sync, R: Send>(items: &[T], jobs: NonZeroUsize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let done: std::sync::Mutex<Vec<Option<R>>> = std::sync::Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.get().min(items.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    done.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    done.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().flatten().collect()
}

/// One mutant under one backend, once its unmutated run passed.
struct Job<'a> {
    scenario: usize,
    backend: Backend,
    mutant: &'a Mutant,
}

/// Mutation-tests scenario files: every loaded scenario under each backend `backends` gives,
/// unmutated first, then its mutants. A scenario that does not pass unmutated is reported and
/// not mutated (its mutants would say nothing).
pub fn run_all(
    scenarios: &[(PathBuf, Result<Scenario, String>)],
    backends: impl Fn(&Scenario) -> Vec<Backend>,
    settings: &Settings,
) -> Report {
    let started = Instant::now();
    let loaded: Vec<(usize, &Scenario, Vec<Backend>)> = scenarios
        .iter()
        .enumerate()
        .filter_map(|(i, (_, sc))| sc.as_ref().ok().map(|sc| (i, sc, backends(sc))))
        .collect();
    let baseline_jobs: Vec<(usize, Backend)> = loaded
        .iter()
        .flat_map(|(i, sc, bs)| bs.iter().filter(|b| sc.not_applicable(**b).is_none()).map(move |b| (*i, *b)))
        .collect();
    let baselines =
        parallel(&baseline_jobs, settings.jobs, |(i, b)| unmutated(scenarios[*i].1.as_ref().ok(), *b, settings));
    let all_mutants: Vec<Vec<Mutant>> =
        scenarios.iter().map(|(_, sc)| sc.as_ref().map(mutants).unwrap_or_default()).collect();

    // Every (scenario, backend, mutant) in a fixed order, so that shards split the same way on
    // every runner.
    let mut results: Vec<(usize, MutantResult)> = vec![];
    let mut jobs = vec![];
    let mut position = 0usize;
    for ((i, b), base) in baseline_jobs.iter().zip(&baselines) {
        let Ok(outcome) = base else { continue };
        for m in &all_mutants[*i] {
            if m.native_nft() && *b != Backend::Nft {
                continue;
            }
            position += 1;
            if let Some((k, n)) = settings.shard
                && (position - 1) % n != k - 1
            {
                continue;
            }
            let status = if let Some(why) = &m.equivalent {
                Some(Status::Equivalent { why: why.clone() })
            } else if m.target.traceable() && met_by(outcome, &m.target).is_empty() {
                Some(Status::Unexercised)
            } else {
                None
            };
            match status {
                Some(status) => {
                    results.push((*i, MutantResult { mutant: m.clone(), backend: *b, status, seconds: 0.0 }))
                }
                None => jobs.push(Job { scenario: *i, backend: *b, mutant: m }),
            }
        }
    }
    let total = jobs.len();
    let finished = AtomicUsize::new(0);
    let ran = parallel(&jobs, settings.jobs, |job| {
        let sc = scenarios[job.scenario].1.as_ref().expect("only loaded scenarios have jobs");
        let base = baseline_jobs
            .iter()
            .zip(&baselines)
            .find(|((i, b), _)| *i == job.scenario && *b == job.backend)
            .and_then(|(_, o)| o.as_ref().ok())
            .expect("a job's unmutated run passed");
        let r = mutant(sc, base, job.mutant, job.backend, &settings.opts);
        let n = finished.fetch_add(1, Ordering::SeqCst) + 1;
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprint!("\r\x1b[2Kmutant {n}/{total}: {}", job.mutant.id);
        }
        r
    });
    if total > 0 && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprint!("\r\x1b[2K");
    }
    results.extend(jobs.iter().map(|j| j.scenario).zip(ran));

    let mut scores = vec![];
    for (i, (file, sc)) in scenarios.iter().enumerate() {
        let name = sc.as_ref().map(|s| s.name.clone()).unwrap_or_default();
        let unmutated = match sc {
            Err(e) => vec![Unmutated::NotLoaded { why: e.clone() }],
            Ok(_) => baseline_jobs
                .iter()
                .zip(&baselines)
                .filter(|((j, _), _)| *j == i)
                .map(|((_, b), r)| match r {
                    Ok(_) => Unmutated::Passed { backend: *b },
                    Err(why) => Unmutated::NotMutated { backend: *b, why: why.clone() },
                })
                .collect(),
        };
        let mut mine: Vec<MutantResult> = results.iter().filter(|(j, _)| *j == i).map(|(_, r)| r.clone()).collect();
        mine.sort_by(|a, b| {
            (a.backend.name(), &a.mutant.place, &a.mutant.id).cmp(&(b.backend.name(), &b.mutant.place, &b.mutant.id))
        });
        scores.push(ScenarioScore { file: file.clone(), scenario: name, unmutated, mutants: mine });
    }
    Report { scenarios: scores, seconds: started.elapsed().as_secs_f64(), shard: settings.shard }
}

/// Mutation-tests one scenario (for `cargo test`): [`run_all`] of it alone under `backends`.
pub fn mutate_scenario(sc: &Scenario, backends: &[Backend], settings: &Settings) -> ScenarioScore {
    let file = PathBuf::from(format!("{}.toml", sc.name));
    let report = run_all(&[(file, Ok(sc.clone()))], |_| backends.to_vec(), settings);
    report.scenarios.into_iter().next().expect("one scenario in, one score out")
}

/// The unmutated run: its outcome when it passed, else why the scenario is not mutated.
fn unmutated(sc: Option<&Scenario>, backend: Backend, settings: &Settings) -> Result<Outcome, String> {
    let sc = sc.ok_or("not loaded")?;
    if let Err(skip) = crate::caps::requires::check(sc, backend, &settings.opts) {
        return Err(format!("skipped: needs {}: {}", skip.feature.name(), skip.reason));
    }
    match crate::engine::run(sc, backend, &settings.opts) {
        Ok(o) if o.passed() => Ok(o),
        Ok(o) => Err(format!("fails unmutated: {}", failed(&o).join("; "))),
        Err(e) => Err(format!("fails unmutated: {e}")),
    }
}

/// One mutant's run and what it says.
fn mutant(sc: &Scenario, base: &Outcome, m: &Mutant, backend: Backend, opts: &RunOptions) -> MutantResult {
    let started = Instant::now();
    // A killed mutant needs no explanation of how late an answer was: not waiting for one
    // keeps a mutant that silences a reply at one timeout.
    let opts = RunOptions { late_answers: false, ..opts.clone() };
    let run = crate::engine::run(&m.apply(sc), backend, &opts);
    // A killed mutant's artifacts are a few megabytes each, hundreds of them per suite: what
    // killed it is in the report.
    if let Ok(Outcome { artifacts: Some(dir), .. }) = &run {
        let _ = std::fs::remove_dir_all(dir);
    }
    let status = match run {
        Ok(o) if o.passed() => Status::Survived { met_by: met_by(base, &m.target) },
        Ok(o) => Status::Killed { by: failed(&o) },
        // The scenario's own checks refuse it (a `never` pattern that now names nothing): the
        // suite noticed.
        Err(e @ (Error::VacuousPattern { .. } | Error::Scenario { .. })) => {
            Status::Killed { by: vec![format!("the scenario refuses it: {e}")] }
        }
        Err(e) => Status::Error { message: e.to_string() },
    };
    MutantResult { mutant: m.clone(), backend, status, seconds: secs(started.elapsed()) }
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
