//! The `netpath` command: run scenario files, record their expectations, show what the kernel
//! offers, sweep leftovers.

use std::io::{IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use netpath::observe::TraceChoice;
use netpath::output::junit::{self, Case, Status};
use netpath::output::results::{self, RunResult, RunVerdict};
use netpath::{Backend, RunOptions, Scenario};

#[derive(Parser)]
#[command(name = "netpath", version, about = "Integration tests for Linux packet datapaths")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario files (default: the bundled scenarios) and print each probe's verdict.
    Run(RunArgs),
    /// Run a scenario and write what it observed as its expectations (to OUT, or in place).
    Record {
        file: PathBuf,
        /// Where to write the recorded scenario (default: overwrite FILE).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Print what this kernel and userspace offer netpath, with the reason for every "no".
    Caps {
        /// Print instead the kernel config fragment the bundled scenarios need (kselftests'
        /// `config` convention), from the same feature table.
        #[arg(long)]
        kernel_config: bool,
    },
    /// Remove the namespaces of netpath runs that were killed.
    Sweep {
        /// Also remove those of runs still alive.
        #[arg(long)]
        all: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Scenario files or folders of them.
    paths: Vec<PathBuf>,
    /// Print the observed path and addresses of passing probes too, once per class of packets
    /// that took the same path.
    #[arg(long)]
    show_path: bool,
    /// With --show-path, and for failures: every packet in full, not one per class.
    #[arg(long, short)]
    verbose: bool,
    /// Write artifacts even when everything passes.
    #[arg(long)]
    keep: bool,
    /// Which iptables backends to run: the scenario's own (default), legacy, nft or all.
    #[arg(long)]
    backend: Option<BackendChoice>,
    /// Count a scenario skipped for a missing kernel feature as failed (also NETPATH_STRICT=1).
    #[arg(long)]
    strict: bool,
    /// Run this many scenario × backend runs at once, each in its own namespaces.
    #[arg(long, short, value_name = "N", default_value = "1")]
    jobs: NonZeroUsize,
    /// Also write the results as a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Read the trace from this source instead of the backend's own: nflog (legacy), nftrace
    /// (nft) or kmsg (legacy, through the kernel log; runs that use it take turns).
    #[arg(long)]
    trace: Option<TraceChoice>,
    /// Also write machine-readable results to FILE: the kernel, and per scenario × backend the
    /// verdict (skip with its feature) and per probe its failures and observed hooks.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Print where each run spent its time: netns, links, rules, observers, each probe, drain,
    /// verdict, teardown.
    #[arg(long)]
    timings: bool,
    /// Run the whole selection N times; report every probe whose verdict changed between
    /// repeats (a flaky datapath or test), and print in full only the runs that did not pass.
    #[arg(long, value_name = "N", default_value = "1")]
    repeat: NonZeroUsize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackendChoice {
    Legacy,
    Nft,
    All,
}

impl BackendChoice {
    /// The backends to run `sc` under: its own, or those asked for. One it cannot run under
    /// at all is still listed, and reported as not applicable (see [`Scenario::not_applicable`]);
    /// `all` means every backend it allows.
    fn backends(choice: Option<BackendChoice>, sc: &Scenario) -> Vec<Backend> {
        match choice {
            None => sc.backends.clone(),
            Some(BackendChoice::Legacy) => vec![Backend::Legacy],
            Some(BackendChoice::Nft) => vec![Backend::Nft],
            Some(BackendChoice::All) => sc.allowed_backends(),
        }
    }
}

/// The scenarios shipped in the repository, found from where this binary was built.
fn bundled() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cases/scenarios");
    dir.canonicalize().unwrap_or(dir)
}

fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
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

/// The capabilities netpath needs that this process lacks: building namespaces and links needs
/// them, and without them every kernel feature would look missing and every scenario skip.
fn missing_capabilities() -> Vec<&'static str> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    [(12, "CAP_NET_ADMIN"), (13, "CAP_NET_RAW"), (21, "CAP_SYS_ADMIN")]
        .into_iter()
        .filter(|(bit, _)| eff & (1 << bit) == 0)
        .map(|(_, name)| name)
        .collect()
}

fn check_capabilities(command: &str) -> Result<(), ExitCode> {
    let missing = missing_capabilities();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("netpath {command}: needs {} to build namespaces: run it as root", missing.join(", "));
    Err(ExitCode::from(2))
}

/// How `netpath run` runs and reports.
struct Settings {
    opts: RunOptions,
    detail: netpath::output::report::Detail,
    strict: bool,
    timings: bool,
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
        };
    }
    if let Err(skip) = netpath::caps::requires::check(sc, backend, &s.opts) {
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
            }
        } else {
            Done {
                verdict: Verdict::Skipped,
                text: format!("SKIP {head}: {why}\n"),
                cases: junit::unrun_cases(sc, backend, Duration::ZERO, Status::Skipped { message: why }),
                result,
            }
        };
    }
    let start = Instant::now();
    match netpath::run(sc, backend, &s.opts) {
        Ok(o) => Done {
            verdict: if o.passed() { Verdict::Passed } else { Verdict::Failed },
            text: netpath::output::report::outcome_in(&o, s.detail)
                + &if s.timings { format!("{}\n", o.timings) } else { String::new() },
            cases: junit::outcome_cases(&o, start.elapsed()),
            result: RunResult::from_outcome("", &o),
        },
        Err(e) => errored(sc, backend, start.elapsed(), e.to_string()),
    }
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
                    let what = netpath::error::panic_text(&p);
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
            Done { verdict: Verdict::Failed, text, cases: vec![case], result: RunResult::not_loaded(&file, &e) }
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
fn run_round(
    work: &[Job],
    loaded: &[Loaded],
    settings: &Settings,
    jobs: NonZeroUsize,
    quiet: bool,
) -> Vec<Option<Done>> {
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
        for _ in 0..jobs.get().min(work.len()) {
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
        if let Some(l) = work.first().and_then(label) {
            progress.show(&l);
        }
        for (i, done) in rx {
            results[i] = Some(done);
            while let Some(Some(done)) = results.get(printed) {
                progress.clear();
                if !quiet || done.verdict == Verdict::Failed {
                    print!("{}", done.text);
                }
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

fn run(args: RunArgs) -> ExitCode {
    let RunArgs {
        paths,
        show_path,
        verbose,
        keep,
        backend,
        strict,
        jobs,
        junit: junit_file,
        trace,
        timings,
        repeat,
        json,
    } = args;
    let paths = if paths.is_empty() { vec![bundled()] } else { paths };
    let files = match scenario_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("netpath: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(code) = check_capabilities("run") {
        return code;
    }
    let settings = Settings {
        opts: RunOptions { keep, trace, ..RunOptions::default() },
        detail: netpath::output::report::Detail::of(show_path, verbose),
        strict: strict || netpath::caps::strict(),
        timings,
    };
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
            Ok(sc) => BackendChoice::backends(backend, sc)
                .into_iter()
                .map(|backend| Job::Run { file, backend })
                .collect::<Vec<_>>(),
            Err(_) => vec![Job::Unloaded { file }],
        })
        .collect();

    let repeats = repeat.get();
    let mut flips = Flips::default();
    let (mut passed, mut failed, mut skipped, mut not_applicable) = (0, 0, 0, 0);
    let mut results = vec![];
    for round in 1..=repeats {
        // Under --repeat only what did not pass is printed whole; every round gets a line.
        let quiet = repeats > 1;
        results = run_round(&work, &loaded, &settings, jobs, quiet);
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
        (passed, failed, skipped, not_applicable) = (passed + p, failed + f, skipped + s, not_applicable + n);
    }
    if repeats > 1 {
        print!("{}", flips.report(repeats));
    }
    // Test-runner summaries are read by their leading `N passed, N failed`: keep that first.
    println!("{passed} passed, {failed} failed, {skipped} skipped, {not_applicable} not applicable");

    if let Some(path) = json {
        let runs = results.iter().filter_map(|d| d.as_ref().map(|d| d.result.clone())).collect();
        let text = serde_json::to_string_pretty(&results::Results::new(runs)).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("netpath: write the JSON results {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }

    if let Some(path) = junit_file {
        let mut report = junit::Report::default();
        for (index, l) in loaded.iter().enumerate() {
            // Under --repeat, the last round's.
            let cases: Vec<Case> = work
                .iter()
                .zip(&mut results)
                .filter(|(job, _)| job.file() == index)
                .flat_map(|(_, done)| done.take().map(|d| d.cases).unwrap_or_default())
                .collect();
            let name = match &l.scenario {
                Ok(sc) => sc.name.clone(),
                Err(_) => l.file.display().to_string(),
            };
            report.suites.push(junit::Suite { name, file: l.file.display().to_string(), cases });
        }
        if let Err(e) = std::fs::write(&path, report.to_xml()) {
            eprintln!("netpath: write the JUnit report {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn record(file: &Path, out: Option<&Path>) -> ExitCode {
    // Read once: the text is parsed here and rewritten with the recording below.
    let loaded = std::fs::read_to_string(file)
        .map_err(|e| netpath::Error::File { path: file.to_path_buf(), message: e.to_string() })
        .and_then(|text| Ok((Scenario::from_toml(&text, file)?, text)));
    let (sc, original) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("netpath record: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(code) = check_capabilities("record") {
        return code;
    }
    let opts = RunOptions::default();
    let mut outcomes = vec![];
    for backend in &sc.backends {
        if let Err(skip) = netpath::caps::requires::check(&sc, *backend, &opts) {
            eprintln!(
                "netpath record: {} [{}] cannot run here: needs {}: {}",
                sc.name,
                backend.name(),
                skip.feature.name(),
                skip.reason
            );
            return ExitCode::FAILURE;
        }
        match netpath::run(&sc, *backend, &opts) {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                eprintln!("netpath record: {} [{}] did not run: {e}", sc.name, backend.name());
                return ExitCode::FAILURE;
            }
        }
    }
    let netpath::output::record::Recording { scenario: recorded, warnings } =
        netpath::output::record::expectations(&sc, &outcomes);
    for w in &warnings {
        eprintln!("netpath record: warning: {w}");
    }
    let target = out.unwrap_or(file);
    // Rewritten from the file's own text, so its comments and layout survive the recording.
    let text = netpath::output::record::rewrite(&original, &recorded);
    if let Err(e) = text.and_then(|t| std::fs::write(target, t).map_err(|e| format!("write {}: {e}", target.display())))
    {
        eprintln!("netpath record: {e}");
        return ExitCode::FAILURE;
    }
    let count: usize = recorded.probe.iter().map(|p| p.path.len() + p.addr.len()).sum();
    println!("recorded {count} expectations of {} into {}", sc.name, target.display());
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Record { file, out } => record(&file, out.as_deref()),
        Command::Caps { kernel_config: true } => {
            print!("{}", netpath::caps::kernel_config_fragment());
            ExitCode::SUCCESS
        }
        Command::Caps { kernel_config: false } => {
            print!("{}", netpath::caps::table(&netpath::caps::probe_all()));
            ExitCode::SUCCESS
        }
        Command::Sweep { all } => match netpath::lab::netns::sweep(all) {
            Ok(removed) => {
                // A run killed while it used the kernel log left nf_log_all_netns set.
                match netpath::lab::global_sysctl::recover_stale() {
                    Ok(Some(v)) => println!("restored net.netfilter.nf_log_all_netns={v}"),
                    Ok(None) => {}
                    Err(e) => eprintln!("netpath sweep: {e}"),
                }
                for r in &removed {
                    println!("removed {r}");
                }
                println!("{} namespaces removed", removed.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("netpath sweep: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
