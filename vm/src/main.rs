//! `netpath-vm`: netpath's scenarios and the workspace's tests on Debian's kernels, each booted
//! in a QEMU guest with virtme-ng, and the kernel matrix built from them. It wraps the `netpath`
//! binary and the test binaries from outside: the library knows nothing of VMs.

mod accel;
mod cmd;
mod guest;
mod kernels;
mod matrix;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use guest::{Boot, Tools, shell_quote};
use kernels::{Alias, Cache, Tree};
use matrix::{Column, Matrix};
use netpath::output::results::Results;

#[derive(Parser)]
#[command(name = "netpath-vm", version, about = "netpath on Debian's kernels in QEMU guests")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
struct VmArgs {
    /// The kernel: a series (5.10, 6.1, 6.12, 7.2) or a Debian release (6.1.0-57-amd64).
    #[arg(long, short)]
    kernel: Alias,
    /// Kill the VM after this many seconds (boot included).
    #[arg(long, value_name = "SECS", default_value = "1500")]
    timeout: u64,
    /// Where the guest's results, console log and scratch go (default target/netpath-vm/CMD-KERNEL).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the cached kernels and what apt offers per alias.
    Kernels,
    /// Download and unpack kernels into the cache ($NETPATH_VM_CACHE, default ~/.cache/netpath/kernels).
    Fetch {
        #[arg(required = true)]
        aliases: Vec<Alias>,
        /// The newest release apt offers, even when the cache holds an older one of the series.
        #[arg(long)]
        newest: bool,
    },
    /// Print the release each kernel names now (the newest apt offers for a series), one per
    /// line, without fetching: CI keys its kernel cache on it.
    Resolve {
        #[arg(required = true)]
        aliases: Vec<Alias>,
    },
    /// Run a command in a guest: its output, and its exit code as ours.
    Run {
        #[command(flatten)]
        vm: VmArgs,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Build the workspace's tests on the host and run the test binaries in a guest.
    Test {
        #[command(flatten)]
        vm: VmArgs,
        /// Arguments for every test binary (a filter, --test-threads=1, ...).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// `netpath run` of scenario files (default: the bundled ones) in a guest, both backends of
    /// each, with its report, JUnit and JSON results back on the host.
    Scenarios {
        #[command(flatten)]
        vm: VmArgs,
        files: Vec<PathBuf>,
        /// Scenario runs at once inside the guest (`netpath run --jobs`).
        #[arg(long, default_value = "2")]
        guest_jobs: usize,
    },
    /// The bundled scenarios on each kernel: matrix.md and matrix.json in --out.
    Matrix {
        #[arg(long, value_delimiter = ',', default_value = "host,5.10,6.1,6.12,7.2")]
        kernels: Vec<Alias>,
        /// Kernels to run at once (each VM takes 2 vCPUs and 1 GiB).
        #[arg(long, short, default_value = "1")]
        jobs: usize,
        #[arg(long, default_value = "2")]
        guest_jobs: usize,
        #[arg(long, value_name = "SECS", default_value = "1500")]
        timeout: u64,
        /// Default target/netpath-vm/matrix.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Scenario files (default: the bundled ones).
        files: Vec<PathBuf>,
    },
    /// Join the matrix.json of several runs (one per kernel, as CI's legs write them) into one table.
    Join {
        inputs: Vec<PathBuf>,
        /// The kernels that must have a column: one without a matrix.json among the inputs (a
        /// leg that died before writing one) becomes a column of failures.
        #[arg(long, value_delimiter = ',')]
        expect: Vec<String>,
        /// Why a leg wrote no matrix.json (KERNEL=REASON, e.g. the end of its log), shown in
        /// its column of failures.
        #[arg(long, value_name = "KERNEL=REASON")]
        dead: Vec<String>,
        /// Write the joined Markdown and JSON here (default: print the Markdown).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// The workspace this binary was built from.
fn workspace() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// The `netpath` binary built beside this one (same target folder and profile).
fn netpath_binary() -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| format!("where is netpath-vm: {e}"))?;
    let p = me.with_file_name("netpath");
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build -p netpath` (the same profile as netpath-vm)",
            p.display()
        ))
    }
}

/// A fresh out folder: what a previous run left would be read as this one's results.
fn fresh_out(out: Option<&Path>, default: &str) -> Result<PathBuf, String> {
    let dir = out.map(Path::to_path_buf).unwrap_or_else(|| workspace().join("target/netpath-vm").join(default));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))
}

/// A kernel ready to boot: fetched, with the tools and boot mode found.
struct Ready {
    tools: Tools,
    tree: Tree,
    accel: guest::Accel,
    why: String,
}

fn ready(cache: &Cache, alias: &Alias) -> Result<Ready, String> {
    if *alias == Alias::Host {
        return Err("kernel host runs without a VM: use netpath itself (or `netpath-vm matrix --kernels host`)".into());
    }
    let tools = Tools::find()?;
    let tree = cache.fetch(alias)?;
    let (accel, why) = accel::choose(&tools, &tree, &cache.root)?;
    Ok(Ready { tools, tree, accel, why })
}

impl Ready {
    fn boot<'a>(&'a self, out: &'a Path, timeout: u64, echo: bool) -> Boot<'a> {
        eprintln!("netpath-vm: booting {} under {} ({})", self.tree.release, self.accel, self.why);
        Boot {
            tools: &self.tools,
            tree: &self.tree,
            accel: self.accel,
            out,
            deadline: Duration::from_secs(timeout),
            cpus: 2,
            echo,
        }
    }

    fn mode(&self) -> String {
        format!("{} ({})", self.accel, self.why)
    }
}

fn quoted(words: &[String]) -> String {
    words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ")
}

fn report_missing(ran: &guest::Ran) {
    if !ran.missing_modules.is_empty() {
        eprintln!(
            "netpath-vm: modules this kernel has neither as module nor built in: {}",
            ran.missing_modules.join(" ")
        );
    }
    eprintln!(
        "netpath-vm: guest exited {} after {:.0} s; console log {}",
        ran.code,
        ran.took.as_secs_f64(),
        ran.console.display()
    );
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run_command(cache: &Cache, vm: &VmArgs, command: &[String]) -> Result<ExitCode, String> {
    let r = ready(cache, &vm.kernel)?;
    let out = fresh_out(vm.out.as_deref(), &format!("run-{}", vm.kernel))?;
    // The guest's stderr shares the console with the kernel's messages: keep it with stdout.
    let ran = r.boot(&out, vm.timeout, true).run(&format!("( {} ) 2>&1", quoted(command)))?;
    report_missing(&ran);
    Ok(exit_code(ran.code))
}

/// The workspace's test binaries, built on the host: (executable, its package's folder).
fn test_binaries() -> Result<Vec<(String, String)>, String> {
    eprintln!("netpath-vm: cargo test --workspace --no-run");
    let mut c = Command::new("cargo");
    c.args(["test", "--workspace", "--no-run", "--message-format=json-render-diagnostics"]).current_dir(workspace());
    let text = cmd::output(c, "cargo test --workspace --no-run", Duration::from_secs(3600), " (install Rust: rustup)")?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact" && v["profile"]["test"] == true)
        .filter_map(|v| {
            let exe = v["executable"].as_str()?.to_string();
            let dir = Path::new(v["manifest_path"].as_str()?).parent()?.display().to_string();
            Some((exe, dir))
        })
        .collect())
}

/// Why the test binaries that build netpath with cargo (`netpath_cases::netpath_bin`) are skipped.
const BUILDS_NETPATH: &str =
    "calls cargo to build the netpath binary (netpath_cases::netpath_bin); the guest's target folder is read-only";

/// Test binaries that cannot run in a guest, by target name, and why: the guest has the host's
/// root read-only, so whatever calls cargo (which writes its target folder and lock) fails there
/// for a reason that says nothing about the kernel.
const GUEST_SKIPS: [(&str, &str); 7] = [
    ("cli", BUILDS_NETPATH),
    ("first_run", BUILDS_NETPATH),
    ("hostile", BUILDS_NETPATH),
    ("run_bound", BUILDS_NETPATH),
    ("downstream", "runs `cargo test` in a generated crate: needs cargo with a writable target folder and registry"),
    ("dry_run", "dry runs of the CI workflow: a user, sudo from apt and a clone; work of the host, not of a kernel"),
    (
        "html",
        "renders reports in headless Chromium: work of the host's browser, not of a kernel (under QEMU/TCG one page \
         outlasted the test's 90 s)",
    ),
];

/// Single tests that cannot run in a guest, by test binary and name, and why: they kill a
/// `netpath run` and sweep after it with the netpath binary, or read the commands' help, and
/// build the binaries with cargo.
const GUEST_TEST_SKIPS: [(&str, &str, &str); 4] = [
    ("doc_examples", "every_netpath_flag_the_docs_name_is_one_the_command_has", BUILDS_NETPATH),
    ("steps", "a_killed_netpath_leaves_no_step_process_and_sweep_removes_the_rest", BUILDS_NETPATH),
    ("sweep", "sweep_kills_removes_what_a_dead_run_left_and_leaves_a_live_runs_alone", BUILDS_NETPATH),
    ("wireguard_teardown", "a_killed_run_leaves_no_key_and_sweep_removes_the_rest", BUILDS_NETPATH),
];

/// The target name of a test executable (`.../deps/cli-0123abcd` -> `cli`).
fn target_name(exe: &str) -> &str {
    let file = exe.rsplit('/').next().unwrap_or(exe);
    file.rsplit_once('-').map_or(file, |(name, _)| name)
}

fn run_tests(cache: &Cache, vm: &VmArgs, args: &[String]) -> Result<ExitCode, String> {
    let bins = test_binaries()?;
    let r = ready(cache, &vm.kernel)?;
    let out = fresh_out(vm.out.as_deref(), &format!("test-{}", vm.kernel))?;
    let (skipped, run): (Vec<_>, Vec<_>) =
        bins.iter().partition(|(exe, _)| GUEST_SKIPS.iter().any(|(name, _)| *name == target_name(exe)));
    for (exe, _) in &skipped {
        let why = GUEST_SKIPS.iter().find(|(name, _)| *name == target_name(exe)).map_or("", |(_, why)| why);
        eprintln!("netpath-vm: SKIP test binary {}: {why}", target_name(exe));
    }
    let mut tests_skipped = 0;
    for (bin, test, why) in GUEST_TEST_SKIPS {
        if run.iter().any(|(exe, _)| target_name(exe) == bin) {
            eprintln!("netpath-vm: SKIP test {bin}::{test}: {why}");
            tests_skipped += 1;
        }
    }
    eprintln!(
        "netpath-vm: {} test binaries to run in the guest, {} binaries and {tests_skipped} single tests skipped",
        run.len(),
        skipped.len()
    );
    // As cargo test runs them: from the package's folder, each to the end, failing if any failed;
    // a line per binary that failed, so the end of the log names them.
    let mut script = String::from("failed=''; ");
    for (exe, dir) in &run {
        let bin = target_name(exe);
        let mut words = args.to_vec();
        for (_, test, _) in GUEST_TEST_SKIPS.iter().filter(|(b, _, _)| *b == bin) {
            words.extend(["--skip".to_string(), test.to_string()]);
        }
        let name = shell_quote(bin);
        let (exe, dir) = (shell_quote(exe), shell_quote(dir));
        script.push_str(&format!(
            "echo \"     Running {exe}\"; (cd {dir} && CARGO_MANIFEST_DIR={dir} {exe} {}) 2>&1 || failed=\"$failed {name}\"; ",
            quoted(&words)
        ));
    }
    script.push_str(&format!(
        "echo \"netpath-vm test: {} binaries run, {} skipped; failed:${{failed:- none}}\"; [ -z \"$failed\" ]",
        run.len(),
        skipped.len()
    ));
    let ran = r.boot(&out, vm.timeout, true).run(&script)?;
    report_missing(&ran);
    Ok(exit_code(ran.code))
}

fn scenario_args(files: &[PathBuf]) -> Result<Vec<String>, String> {
    if files.is_empty() {
        return Ok(vec![workspace().join("cases/scenarios").display().to_string()]);
    }
    files
        .iter()
        .map(|f| f.canonicalize().map(|p| p.display().to_string()).map_err(|e| format!("{}: {e}", f.display())))
        .collect()
}

/// `netpath run` in the guest, reading back its JSON.
fn scenarios_in(
    r: &Ready,
    out: &Path,
    timeout: u64,
    files: &[String],
    guest_jobs: usize,
    echo: bool,
) -> Result<(guest::Ran, Results), String> {
    let netpath = netpath_binary()?;
    let json = out.join("results.json");
    let log = shell_quote(&out.join("netpath.log").display().to_string());
    // Through a file, not `| tee`: the guest's sh (dash) has no pipefail to keep netpath's status.
    let line = format!(
        "{} run --jobs {guest_jobs} --junit {} --json {} {} > {log} 2>&1; status=$?; cat {log}; exit $status",
        shell_quote(&netpath.display().to_string()),
        shell_quote(&out.join("junit.xml").display().to_string()),
        shell_quote(&json.display().to_string()),
        quoted(files),
    );
    let ran = r.boot(out, timeout, echo).run(&line)?;
    let text = std::fs::read_to_string(&json).map_err(|e| {
        format!(
            "kernel {}: netpath wrote no results ({}: {e}); its output:\n{}",
            r.tree.release,
            json.display(),
            cmd::last_lines(&ran.stdout, 20)
        )
    })?;
    let results = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", json.display()))?;
    Ok((ran, results))
}

fn run_scenarios(cache: &Cache, vm: &VmArgs, files: &[PathBuf], guest_jobs: usize) -> Result<ExitCode, String> {
    let files = scenario_args(files)?;
    let r = ready(cache, &vm.kernel)?;
    let out = fresh_out(vm.out.as_deref(), &format!("scenarios-{}", vm.kernel))?;
    let (ran, results) = scenarios_in(&r, &out, vm.timeout, &files, guest_jobs, true)?;
    report_missing(&ran);
    eprintln!(
        "netpath-vm: kernel {} ({}); report {}, JUnit {}, JSON {}",
        results.kernel,
        r.mode(),
        out.join("netpath.log").display(),
        out.join("junit.xml").display(),
        out.join("results.json").display()
    );
    Ok(exit_code(ran.code))
}

/// One kernel's column: on the host directly, or in a guest.
fn column(cache: &Cache, alias: &Alias, out: &Path, timeout: u64, files: &[String], guest_jobs: usize) -> Column {
    let start = Instant::now();
    let name = alias.to_string();
    let dir = out.join(&name);
    let _ = std::fs::create_dir_all(&dir);
    if *alias == Alias::Host {
        return host_column(&dir, timeout, files, guest_jobs, start);
    }
    let r = match ready(cache, alias) {
        Ok(r) => r,
        Err(e) => return Column::failed(&name, "-".into(), start.elapsed().as_secs_f64(), e),
    };
    let config = r.tree.config().and_then(|p| std::fs::read_to_string(p).ok());
    match scenarios_in(&r, &dir, timeout, files, guest_jobs, false) {
        Ok((ran, results)) => Column {
            alias: name,
            release: results.kernel,
            version: results.version,
            boot: r.mode(),
            seconds: start.elapsed().as_secs_f64(),
            error: None,
            config: matrix::config_values(config.as_deref()),
            drops: results.drops,
            missing_modules: ran.missing_modules,
            runs: results.runs,
        },
        Err(e) => Column::failed(&name, r.mode(), start.elapsed().as_secs_f64(), e),
    }
}

fn host_column(dir: &Path, timeout: u64, files: &[String], jobs: usize, start: Instant) -> Column {
    let fail = |e: String| Column::failed("host", "host (no VM)".into(), start.elapsed().as_secs_f64(), e);
    let netpath = match netpath_binary() {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    let json = dir.join("results.json");
    let mut c = Command::new(&netpath);
    c.args(["run", "--jobs", &jobs.to_string(), "--json"])
        .arg(&json)
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .args(files);
    c.env("NETPATH_ARTIFACTS", dir.join("artifacts"));
    let ran = netpath::tool::run(c, None, Duration::from_secs(timeout));
    if let Ok(o) = &ran {
        let _ = std::fs::write(dir.join("netpath.log"), format!("{}{}", o.stdout, o.stderr));
    }
    let results: Results = match std::fs::read_to_string(&json)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => return fail(format!("netpath on the host wrote no results ({}: {e}); {ran:?}", json.display())),
    };
    let config = host_config();
    Column {
        alias: "host".into(),
        release: results.kernel,
        version: results.version,
        boot: "host (no VM)".into(),
        seconds: start.elapsed().as_secs_f64(),
        error: None,
        config: matrix::config_values(config.as_deref()),
        drops: results.drops,
        missing_modules: vec![],
        runs: results.runs,
    }
}

/// The host kernel's config: /proc/config.gz, else Debian's /boot/config-RELEASE.
fn host_config() -> Option<String> {
    let mut c = Command::new("zcat");
    c.arg("/proc/config.gz");
    cmd::output(c, "zcat /proc/config.gz", Duration::from_secs(20), "")
        .ok()
        .or_else(|| std::fs::read_to_string(format!("/boot/config-{}", netpath::kernel::running_release())).ok())
}

fn stamp() -> (String, String) {
    let run = |program: &str, args: &[&str]| {
        let mut c = Command::new(program);
        c.args(args).current_dir(workspace());
        cmd::output(c, &cmd::line(program, args), Duration::from_secs(20), "").map(|s| s.trim().to_string())
    };
    let date = run("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default();
    let commit = run("git", &["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|_| "unknown".into());
    let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"]).is_ok_and(|s| !s.is_empty());
    (date, if dirty { format!("{commit} (with uncommitted changes)") } else { commit })
}

fn write_matrix(m: &Matrix, out: &Path) -> Result<(), String> {
    let md = out.join("matrix.md");
    let json = out.join("matrix.json");
    std::fs::write(&md, m.markdown()).map_err(|e| format!("write {}: {e}", md.display()))?;
    // Compact: a k8s-service column alone holds the paths of 280 connections.
    let text = serde_json::to_string(m).map_err(|e| e.to_string())?;
    std::fs::write(&json, text + "\n").map_err(|e| format!("write {}: {e}", json.display()))?;
    for s in m.summary() {
        println!("{s}");
    }
    println!("matrix: {} and {}", md.display(), json.display());
    Ok(())
}

fn run_matrix(
    cache: &Cache,
    kernels: &[Alias],
    jobs: usize,
    guest_jobs: usize,
    timeout: u64,
    out: Option<&Path>,
    files: &[PathBuf],
) -> Result<ExitCode, String> {
    let files = scenario_args(files)?;
    let out = fresh_out(out, "matrix")?;
    let (date, commit) = stamp();
    // Fetch first, one after the other: parallel apt runs would fight over the private lists.
    for k in kernels.iter().filter(|k| **k != Alias::Host) {
        if let Err(e) = cache.fetch(k) {
            eprintln!("netpath-vm: {e}");
        }
    }
    let next = Mutex::new(0usize);
    let columns: Mutex<Vec<(usize, Column)>> = Mutex::new(vec![]);
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, kernels.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(|p| p.into_inner());
                        *n += 1;
                        *n - 1
                    };
                    let Some(alias) = kernels.get(i) else { break };
                    eprintln!("netpath-vm: matrix: kernel {alias} ...");
                    let c = column(cache, alias, &out, timeout, &files, guest_jobs);
                    eprintln!(
                        "netpath-vm: matrix: kernel {alias} done in {:.0} s{}",
                        c.seconds,
                        c.error.as_ref().map(|e| format!(": {e}")).unwrap_or_default()
                    );
                    columns.lock().unwrap_or_else(|p| p.into_inner()).push((i, c));
                }
            });
        }
    });
    let mut columns = columns.into_inner().unwrap_or_else(|p| p.into_inner());
    columns.sort_by_key(|(i, _)| *i);
    let m = Matrix::new(date, commit, columns.into_iter().map(|(_, c)| c).collect());
    write_matrix(&m, &out)?;
    Ok(if m.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn join(inputs: &[PathBuf], expect: &[String], dead: &[String], out: Option<&Path>) -> Result<ExitCode, String> {
    let mut legs = vec![];
    for i in inputs {
        let text = std::fs::read_to_string(i).map_err(|e| format!("{}: {e}", i.display()))?;
        let m: Matrix = serde_json::from_str(&text).map_err(|e| format!("{}: not a matrix.json: {e}", i.display()))?;
        legs.push((i.display().to_string(), m));
    }
    let m = matrix::join(legs, expect, dead)?;
    match out {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            write_matrix(&m, dir)?;
        }
        None => print!("{}", m.markdown()),
    }
    Ok(if m.failed() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn kernels(cache: &Cache) -> Result<ExitCode, String> {
    println!("cache {}", cache.root.display());
    for t in cache.trees() {
        println!("  cached {:<24} {}", t.release, t.packages.join(" "));
    }
    cache.update(false)?;
    for s in kernels::KNOWN_SERIES {
        let alias: Alias = s.parse()?;
        let offers = cache.offers(&alias)?;
        let list: Vec<String> = offers.iter().take(3).map(|o| o.release.clone()).collect();
        println!("  apt {s:<6} {}", if list.is_empty() { "(none)".to_string() } else { list.join(", ") });
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cache = Cache::from_env();
    let result = match cli.command {
        Cmd::Kernels => kernels(&cache),
        Cmd::Fetch { aliases, newest } => aliases
            .iter()
            .try_for_each(|a| {
                if *a == Alias::Host {
                    return Err("kernel host: the host's own kernel is not fetched (it runs without a VM)".into());
                }
                let t = if newest { cache.fetch_newest(a)? } else { cache.fetch(a)? };
                println!("{a}: {} in {}", t.release, t.dir.display());
                Ok(())
            })
            .map(|()| ExitCode::SUCCESS),
        Cmd::Run { vm, command } => run_command(&cache, &vm, &command),
        Cmd::Test { vm, args } => run_tests(&cache, &vm, &args),
        Cmd::Scenarios { vm, files, guest_jobs } => run_scenarios(&cache, &vm, &files, guest_jobs),
        Cmd::Matrix { kernels, jobs, guest_jobs, timeout, out, files } => {
            run_matrix(&cache, &kernels, jobs, guest_jobs, timeout, out.as_deref(), &files)
        }
        Cmd::Join { inputs, expect, dead, out } => join(&inputs, &expect, &dead, out.as_deref()),
        Cmd::Resolve { aliases } => aliases
            .iter()
            .try_for_each(|a| {
                if *a == Alias::Host {
                    return Err("kernel host: the host's own kernel is not resolved (it runs without a VM)".into());
                }
                println!("{}", cache.resolve(a)?);
                Ok(())
            })
            .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netpath-vm: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_executable_is_named_by_its_target() {
        assert_eq!(target_name("/t/debug/deps/wireguard_teardown-0123abcd"), "wireguard_teardown");
        assert_eq!(target_name("/t/debug/deps/netpath_vm-99"), "netpath_vm");
    }

    /// A skip whose binary or test was renamed would stop skipping without a word.
    #[test]
    fn every_guest_skip_names_a_test_file_and_test_that_exist() {
        let tests = workspace().join("cases/tests");
        for (bin, _) in GUEST_SKIPS {
            let file = format!("{bin}.rs");
            assert!(
                tests.join(&file).is_file() || workspace().join("vm/tests").join(&file).is_file(),
                "GUEST_SKIPS names {bin}, which is no test file"
            );
        }
        for (bin, test, _) in GUEST_TEST_SKIPS {
            let text = std::fs::read_to_string(tests.join(format!("{bin}.rs"))).unwrap_or_default();
            assert!(text.contains(&format!("fn {test}(")), "GUEST_TEST_SKIPS names {bin}::{test}, which is not there");
        }
    }
}
