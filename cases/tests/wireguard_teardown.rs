//! WireGuard teardown: after a run, passed or failed, no wireguard-go process, WireGuard folder or
//! namespace of it is left; after a killed run, no private key, and nothing once swept. A test binary of its own, so that no other run of this process has
//! wireguard-go children while it counts them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use netpath::lab::step::{Phase, StepSpec};
use netpath::{Backend, RunOptions};
use netpath_cases::processes::{gone_within, kill, pids_gone_within, sleep_marker, spawn_run, sweep, wait_for_marker};
use netpath_cases::{load, require_root};

/// The children of this process that run wireguard-go.
fn wireguard_go_children() -> Vec<u32> {
    let me = std::process::id().to_string();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // stat: "PID (COMM) STATE PPID ..."
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some((head, rest)) = stat.rsplit_once(") ") else { return false };
            head.ends_with("(wireguard-go") && rest.split_whitespace().nth(1) == Some(me.as_str())
        })
        .collect()
}

/// What this process's runs left in /tmp and /run/netns.
fn leftovers() -> Vec<String> {
    let run_prefix = format!("{}x", std::process::id());
    let wg_dirs = fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("netpath-wg-{run_prefix}")));
    let netns = fs::read_dir("/run/netns")
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with(&format!("netpath-{run_prefix}")));
    wg_dirs.chain(netns).collect()
}

#[test]
fn nothing_is_left_after_a_run_that_passed_or_failed() {
    require_root();
    let sc = load("wireguard-peer-to-peer");
    let o = netpath::run(&sc, Backend::Legacy, &RunOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.passed(), "\n{}", netpath::output::report::outcome(&o, true));
    assert_eq!(wireguard_go_children(), Vec::<u32>::new());
    assert_eq!(leftovers(), Vec::<String>::new());

    // A run that fails once the tunnels are up (a sysctl this kernel does not have is written
    // after them): the error comes back, and the processes, keys and namespaces are gone too.
    let mut broken = sc.clone();
    broken.netns_mut("peer2").unwrap().sysctls.insert("net.ipv4.no_such_sysctl".into(), "1".into());
    let e = netpath::run(&broken, Backend::Legacy, &RunOptions::default()).expect_err("the sysctl must fail the run");
    assert!(e.to_string().contains("no_such_sysctl"), "{e}");
    assert_eq!(wireguard_go_children(), Vec::<u32>::new());
    assert_eq!(leftovers(), Vec::<String>::new());
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    for e in fs::read_dir(dir).map(|d| d.flatten().collect::<Vec<_>>()).unwrap_or_default() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            out.extend(files_under(&e.path()));
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    out
}

/// A run SIGKILLed once its tunnels are up (a step after the rules waits for it): no private
/// key was ever on disk, its wireguard-go processes die with it, and `netpath sweep` removes
/// its WireGuard folder and namespaces.
#[test]
fn a_killed_run_leaves_no_key_and_sweep_removes_the_rest() {
    require_root();
    let mut sc = load("wireguard-peer-to-peer");
    let marker = sleep_marker(45);
    let mut wait = StepSpec::new("hold", "peer1", "sleep", &[&marker]);
    wait.phase = Phase::AfterRules;
    wait.timeout_ms = 300_000;
    sc.step.push(wait);
    let dir = std::env::temp_dir().join(format!("netpath-wg-teardown-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("killed.toml");
    fs::write(&file, sc.to_toml()).unwrap();
    let run = spawn_run(&file, &dir.join("artifacts"));
    let pid = run.id();
    wait_for_marker(&marker, Duration::from_secs(120));

    // The tunnels are up: the run's WireGuard folder holds wireguard-go's logs and sockets, no key.
    let wg_dirs = netpath_cases::entries_starting(&std::env::temp_dir(), &format!("netpath-wg-{pid}x"));
    let daemons = children_named(pid, "wireguard-go");
    let files: Vec<PathBuf> = wg_dirs.iter().flat_map(|d| files_under(&std::env::temp_dir().join(d))).collect();
    kill(run);
    assert_eq!(wg_dirs.len(), 1, "{wg_dirs:?}");
    if daemons.is_empty() {
        // The kernel's WireGuard: no process and no folder content to look at.
        assert_eq!(files, Vec::<PathBuf>::new());
    } else {
        assert_eq!(daemons.len(), 2, "one wireguard-go per interface");
        assert!(!files.is_empty() && files.iter().all(|f| f.ends_with("wireguard-go.log")), "{files:?}");
    }
    assert_eq!(gone_within(&marker, Duration::from_secs(10)), vec![], "the step outlived netpath");

    let swept = sweep();
    // PR_SET_PDEATHSIG killed them with netpath; the sweep kills what would still be in the
    // namespaces. Either way they are gone or on their way out.
    let left = pids_gone_within(&daemons, Duration::from_secs(10));
    assert_eq!(left, Vec::<u32>::new(), "wireguard-go outlived netpath and the sweep:\n{swept}");
    let left = netpath_cases::entries_starting(&std::env::temp_dir(), &format!("netpath-wg-{pid}x"));
    assert_eq!(left, Vec::<String>::new(), "{swept}");
    assert_eq!(netpath_cases::namespaces_of(pid), Vec::<String>::new(), "{swept}");
    let _ = fs::remove_dir_all(&dir);
}

/// The pids of the children of `parent` whose command name is `comm`.
fn children_named(parent: u32, comm: &str) -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let Some((head, rest)) = stat.rsplit_once(") ") else { return false };
            head.ends_with(&format!("({comm}")) && rest.split_whitespace().nth(1) == Some(parent.to_string().as_str())
        })
        .collect()
}
