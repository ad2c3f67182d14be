//! WireGuard teardown: after a run, passed or failed, no wireguard-go process, key directory or
//! namespace of it is left. A test binary of its own, so that no other run of this process has
//! wireguard-go children while it counts them.

use std::fs;

use netpath::{Backend, RunOptions};
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
