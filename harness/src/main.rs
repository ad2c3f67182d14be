//! The `netpath` command: run scenario files, record their expectations, show what the kernel
//! offers, sweep leftovers.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use netpath::observe::TraceChoice;
use netpath::output::report::Detail;
use netpath::suite::{Settings, Suite, Summary};
use netpath::{Backend, RunOptions, Scenario, suite};

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
    /// Mutation-test the scenarios' rulesets: change one rule or sysctl at a time, run the
    /// probes, and report every change no expectation notices.
    Mutate(MutateArgs),
    /// Remove what netpath runs that were killed left: their namespaces and the processes in
    /// them, their temp folders, the kernel-log setting.
    Sweep {
        /// Also remove what runs still alive use.
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
    /// Also write an HTML report into DIR: a self-contained page per scenario × backend (the
    /// topology, each probe's verdict, failures and packet journeys) and index.html.
    #[arg(long, value_name = "DIR")]
    html: Option<PathBuf>,
    /// Print where each run spent its time: netns, links, rules, observers, each probe, drain,
    /// verdict, teardown.
    #[arg(long)]
    timings: bool,
    /// Run the whole selection N times; report every probe whose verdict changed between
    /// repeats (a flaky datapath or test), and print in full only the runs that did not pass.
    #[arg(long, value_name = "N", default_value = "1")]
    repeat: NonZeroUsize,
    /// Stop a run that takes longer than this with an error saying where it was (90s, 10m, 1h;
    /// also NETPATH_MAX_DURATION). Default: the scenario's worst case (every packet and step
    /// waiting out its timeout, plus 2 min for the lab), at most 10 min.
    #[arg(long, value_name = "DURATION", value_parser = netpath::bound::parse_duration)]
    max_duration: Option<std::time::Duration>,
}

#[derive(clap::Args)]
struct MutateArgs {
    /// Scenario files or folders of them (default: the bundled scenarios).
    paths: Vec<PathBuf>,
    /// Which iptables backends to run: the scenario's own (default), legacy, nft or all.
    #[arg(long)]
    backend: Option<BackendChoice>,
    /// Run this many mutants at once, each in its own namespaces.
    #[arg(long, short, value_name = "N", default_value = "1")]
    jobs: NonZeroUsize,
    /// Exit 1 when a scenario × backend scores below P percent (killed / (killed + survived)),
    /// or was not mutated (it failed, was skipped or did not load unmutated).
    #[arg(long, value_name = "P")]
    min_score: Option<f64>,
    /// Also write the results as JSON to FILE (shards' files join with --join).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Run only the K-th of N shares of the mutants (1/4, 2/4, ...), the same on every machine.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Instead of running: join the JSON reports of all N shards of one split into one table
    /// (a missing or repeated shard is an error); --min-score gates the joined scores.
    #[arg(long, value_name = "FILE", num_args = 1.., conflicts_with_all = ["paths", "shard", "json"])]
    join: Vec<PathBuf>,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let (k, n) = s.split_once('/').ok_or("a shard is K/N, as 2/4")?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| "K is a number")?, n.parse().map_err(|_| "N is a number")?);
    if n == 0 || k == 0 || k > n {
        return Err(format!("shard {k}/{n}: K runs from 1 to N"));
    }
    Ok((k, n))
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

fn check_capabilities(command: &str) -> Result<(), ExitCode> {
    let missing = netpath::caps::missing_capabilities();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("netpath {command}: needs {} to build namespaces: run it as root", missing.join(", "));
    Err(ExitCode::from(2))
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
        junit,
        trace,
        timings,
        repeat,
        json,
        html,
        max_duration,
    } = args;
    let paths = if paths.is_empty() { vec![suite::bundled()] } else { paths };
    let files = match suite::scenario_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("netpath: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(code) = check_capabilities("run") {
        return code;
    }
    // The flag wins; a wrong NETPATH_MAX_DURATION is a usage error like a wrong flag.
    let max_duration = match max_duration {
        Some(d) => Some(d),
        None => match netpath::bound::from_env() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("netpath: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let settings = Settings {
        opts: RunOptions { keep, trace, max_duration, ..RunOptions::default() },
        detail: Detail::of(show_path, verbose),
        strict: strict || netpath::caps::strict(),
        timings,
        jobs,
        repeat,
        html: html.clone(),
    };
    let suite = Suite::load(files, |sc| BackendChoice::backends(backend, sc));
    let summary = suite.run(&settings);
    let written = [
        (json, Suite::write_json as fn(&Suite, &Summary, &Path) -> Result<(), String>),
        (junit, Suite::write_junit),
        (html, Suite::write_html),
    ]
    .into_iter()
    .filter_map(|(path, write)| path.map(|p| write(&suite, &summary, &p)))
    .collect::<Result<Vec<()>, String>>();
    if let Err(e) = written {
        eprintln!("netpath: {e}");
        return ExitCode::FAILURE;
    }
    if summary.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn record(file: &Path, out: Option<&Path>) -> ExitCode {
    // Read once: the text is parsed here and rewritten with the recording below.
    let loaded = netpath::scenario::read_file(file).and_then(|text| Ok((Scenario::from_toml(&text, file)?, text)));
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
    let recording = netpath::output::record::expectations(&sc, &outcomes);
    for (probe, slowest) in &recording.timeouts {
        let ms = recording.scenario.probe.iter().find(|p| &p.name == probe).map_or(0, |p| p.timeout_ms);
        eprintln!(
            "netpath record: probe `{probe}`: timeout_ms = {ms}, 3 × its slowest answer ({:.1} ms after the send)",
            slowest.as_secs_f64() * 1000.0
        );
    }
    for w in &recording.warnings {
        eprintln!("netpath record: warning: {w}");
    }
    let target = out.unwrap_or(file);
    // Rewritten from the file's own text, so its comments and layout survive the recording.
    let text = netpath::output::record::rewrite_recording(&original, &recording);
    if let Err(e) = text.and_then(|t| std::fs::write(target, t).map_err(|e| format!("write {}: {e}", target.display())))
    {
        eprintln!("netpath record: {e}");
        return ExitCode::FAILURE;
    }
    let count: usize = recording.scenario.probe.iter().map(|p| p.path.len() + p.addr.len()).sum();
    println!("recorded {count} expectations of {} into {}", sc.name, target.display());
    ExitCode::SUCCESS
}

/// `netpath mutate`: the score table and every survivor on stdout; exit 1 below --min-score.
fn mutate(args: MutateArgs) -> ExitCode {
    if !args.join.is_empty() {
        let mut reports = vec![];
        for f in &args.join {
            let read = std::fs::read_to_string(f).map_err(|e| e.to_string());
            match read.and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string())) {
                Ok(v) => reports.push(v),
                Err(e) => {
                    eprintln!("netpath mutate: {}: {e}", f.display());
                    return ExitCode::from(2);
                }
            }
        }
        return match netpath::mutate::join(&reports) {
            Ok(joined) => {
                print!("{}", joined.text());
                gate(args.min_score.map(|m| joined.below(m)).unwrap_or_default())
            }
            Err(e) => {
                eprintln!("netpath mutate --join: {e}");
                ExitCode::from(2)
            }
        };
    }
    let paths = if args.paths.is_empty() { vec![suite::bundled()] } else { args.paths };
    let files = match suite::scenario_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("netpath: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(code) = check_capabilities("mutate") {
        return code;
    }
    let scenarios: Vec<(PathBuf, Result<Scenario, String>)> =
        files.into_iter().map(|f| (f.clone(), Scenario::load(&f).map_err(|e| e.to_string()))).collect();
    let settings = netpath::mutate::Settings { opts: RunOptions::default(), jobs: args.jobs, shard: args.shard };
    let report = netpath::mutate::run_all(&scenarios, |sc| BackendChoice::backends(args.backend, sc), &settings);
    print!("{}", report.text());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string());
        if let Err(e) = text.and_then(|t| std::fs::write(path, t).map_err(|e| format!("write {}: {e}", path.display())))
        {
            eprintln!("netpath mutate: {e}");
            return ExitCode::FAILURE;
        }
    }
    gate(args.min_score.map(|m| report.below(m)).unwrap_or_default())
}

/// `--min-score`: exit 1 naming every scenario × backend below it or not mutated at all.
fn gate(below: Vec<String>) -> ExitCode {
    for b in &below {
        eprintln!("netpath mutate: below --min-score: {b}");
    }
    if below.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// `netpath sweep`: a line per thing removed, then the namespace count; what failed on stderr.
fn sweep(all: bool) -> ExitCode {
    let swept = netpath::lab::sweep::sweep(all);
    if let Some(v) = &swept.restored {
        // A run killed while it used the kernel log left nf_log_all_netns set.
        println!("restored net.netfilter.nf_log_all_netns={v}");
    }
    for k in &swept.killed {
        println!("killed {} ({}) in {}", k.pid, k.comm, k.netns);
    }
    for r in &swept.namespaces {
        println!("removed {r}");
    }
    for f in &swept.folders {
        println!("removed {}", f.display());
    }
    println!(
        "{} namespaces removed, {} processes killed, {} folders removed",
        swept.namespaces.len(),
        swept.killed.len(),
        swept.folders.len()
    );
    for e in &swept.errors {
        eprintln!("netpath sweep: {e}");
    }
    if swept.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
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
        Command::Mutate(args) => mutate(args),
        Command::Sweep { all } => sweep(all),
    }
}
