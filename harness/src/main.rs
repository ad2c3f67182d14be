//! The `netpath` command: run scenario files, sweep leftovers.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    Run {
        /// Scenario files or folders of them.
        paths: Vec<PathBuf>,
        /// Print the observed path and addresses of passing probes too.
        #[arg(long)]
        show_path: bool,
        /// Write artifacts even when everything passes.
        #[arg(long)]
        keep: bool,
        /// Which iptables backends to run: the scenario's own (default), legacy, nft or all.
        #[arg(long)]
        backend: Option<BackendChoice>,
    },
    /// Run a scenario and write what it observed as its expectations (to OUT, or in place).
    Record {
        file: PathBuf,
        /// Where to write the recorded scenario (default: overwrite FILE).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Print what this kernel and userspace offer netpath, with the reason for every "no".
    Caps,
    /// Remove the namespaces of netpath runs that were killed.
    Sweep {
        /// Also remove those of runs still alive.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackendChoice {
    Legacy,
    Nft,
    All,
}

impl BackendChoice {
    fn backends(choice: Option<BackendChoice>, scenario: &[Backend]) -> Vec<Backend> {
        match choice {
            None => scenario.to_vec(),
            Some(BackendChoice::Legacy) => vec![Backend::Legacy],
            Some(BackendChoice::Nft) => vec![Backend::Nft],
            Some(BackendChoice::All) => vec![Backend::Legacy, Backend::Nft],
        }
    }
}

/// The scenarios shipped in the repository, found from where this binary was built.
fn bundled() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cases/scenarios")
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

fn run(paths: Vec<PathBuf>, show_path: bool, keep: bool, backend: Option<BackendChoice>) -> ExitCode {
    let paths = if paths.is_empty() { vec![bundled()] } else { paths };
    let files = match scenario_files(&paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("netpath: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = RunOptions { keep, ..RunOptions::default() };
    let (mut passed, mut failed, skipped) = (0, 0, 0);
    for file in files {
        let sc = match Scenario::load(&file) {
            Ok(sc) => sc,
            Err(e) => {
                println!("ERROR {e}");
                failed += 1;
                continue;
            }
        };
        let backends = BackendChoice::backends(backend, &sc.backends);
        for backend in backends {
            match netpath::run(&sc, backend, &opts) {
                Ok(o) => {
                    print!("{}", netpath::report::outcome(&o, show_path));
                    if o.passed() { passed += 1 } else { failed += 1 }
                }
                Err(e) => {
                    println!("ERROR {} [{}]: {e}", sc.name, backend.name());
                    failed += 1;
                }
            }
        }
    }
    println!("{passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn record(file: &std::path::Path, out: Option<&std::path::Path>) -> ExitCode {
    let sc = match Scenario::load(file) {
        Ok(sc) => sc,
        Err(e) => {
            eprintln!("netpath record: {e}");
            return ExitCode::from(2);
        }
    };
    let mut outcomes = vec![];
    for backend in &sc.backends {
        match netpath::run(&sc, *backend, &RunOptions::default()) {
            Ok(o) => outcomes.push(o),
            Err(e) => {
                eprintln!("netpath record: {} [{}] did not run: {e}", sc.name, backend.name());
                return ExitCode::FAILURE;
            }
        }
    }
    let recorded = netpath::record::expectations(&sc, &outcomes);
    let target = out.unwrap_or(file);
    let header =
        format!("# Recorded by `netpath record` from {}; review the diff before committing.\n", file.display());
    if let Err(e) = std::fs::write(target, header + &recorded.to_toml()) {
        eprintln!("netpath record: write {}: {e}", target.display());
        return ExitCode::FAILURE;
    }
    let count: usize = recorded.probe.iter().map(|p| p.path.len() + p.addr.len()).sum();
    println!("recorded {count} expectations of {} into {}", sc.name, target.display());
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { paths, show_path, keep, backend } => run(paths, show_path, keep, backend),
        Command::Record { file, out } => record(&file, out.as_deref()),
        Command::Caps => {
            print!("{}", netpath::caps::table(&netpath::caps::probe_all()));
            ExitCode::SUCCESS
        }
        Command::Sweep { all } => match netpath::netns::sweep(all) {
            Ok(removed) => {
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
