//! Trace sources: the kernel log (`/dev/kmsg`) reports the same paths as NFLOG under
//! iptables-legacy, fails the same way when the datapath breaks, and puts the one global sysctl
//! it needs back; a source that cannot see a backend's TRACE is refused, not run.

use std::collections::BTreeMap;
use std::time::Duration;

use netpath::lab::global_sysctl::{self, KernelLogGuard};
use netpath::observe::TraceChoice;
use netpath::scenario::Direction;
use netpath::{Backend, Outcome, RunOptions, Scenario};
use netpath_cases::load;
use serial_test::serial;

// `#[serial(kernel_log)]`: the tests of this file read and change `nf_log_all_netns`, one at a
// time, so that one's before/after never sees another's run in progress.

fn run_with(sc: &Scenario, backend: Backend, trace: Option<TraceChoice>) -> netpath::Result<Outcome> {
    netpath_cases::require_root();
    netpath::run(sc, backend, &RunOptions { trace, ..RunOptions::default() })
}

fn passes(sc: &Scenario, backend: Backend, trace: Option<TraceChoice>) -> Outcome {
    let o = run_with(sc, backend, trace)
        .unwrap_or_else(|e| panic!("{} [{}, {trace:?}] did not run: {e}", sc.name, backend.name()));
    assert!(o.passed(), "[{trace:?}]\n{}", netpath::output::report::outcome(&o, true));
    o
}

/// Every packet's hooks per netns, request and reply: `probe/packet/direction/netns` -> hooks.
fn paths(o: &Outcome) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for p in &o.probes {
        for ex in &p.exchanges {
            for d in [Direction::Request, Direction::Reply] {
                for (netns, events) in &ex.of(d).path {
                    let key = format!("{}/{}/{d:?}/{netns}", p.name, ex.packet);
                    out.insert(key, events.iter().map(|e| e.hook.to_string()).collect());
                }
            }
        }
    }
    out
}

/// The packets whose request was sent more than once (a TCP SYN retransmitted), by probe.
fn sent_again(o: &Outcome) -> Vec<String> {
    let mut out = vec![];
    for p in &o.probes {
        out.extend(
            p.exchanges.iter().filter(|x| !x.retransmissions.is_empty()).map(|x| format!("{}/{}", p.name, x.packet)),
        );
    }
    out
}

/// The distinct paths per probe, direction and netns, whichever packet took them.
fn distinct_paths(o: &Outcome) -> std::collections::BTreeSet<(String, String)> {
    paths(o)
        .into_iter()
        .map(|(key, hooks)| {
            let mut parts = key.split('/');
            let (probe, _packet, rest) = (parts.next().unwrap(), parts.next(), parts.collect::<Vec<_>>().join("/"));
            (format!("{probe}/{rest}"), hooks.join(" "))
        })
        .collect()
}

fn all_netns() -> String {
    global_sysctl::read().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
#[serial(kernel_log)]
fn kmsg_under_legacy_passes_the_nflog_expectations_with_the_same_paths() {
    let sc = load("docker-masquerade");
    let before = all_netns();
    let kmsg = passes(&sc, Backend::Legacy, Some(TraceChoice::Kmsg));
    assert_eq!(all_netns(), before, "nf_log_all_netns was not restored");
    let nflog = passes(&sc, Backend::Legacy, None);

    let (kmsg_paths, nflog_paths) = (paths(&kmsg), paths(&nflog));
    for (key, hooks) in &kmsg_paths {
        eprintln!("kmsg  {key}: {}", hooks.join(" "));
    }
    for (key, hooks) in &nflog_paths {
        eprintln!("nflog {key}: {}", hooks.join(" "));
    }
    assert!(kmsg_paths.contains_key("c1-to-external/1/Request/host"), "{kmsg_paths:#?}");
    assert_eq!(kmsg_paths, nflog_paths, "the kernel log and NFLOG saw different paths");

    let events: Vec<_> =
        kmsg.probes.iter().flat_map(|p| &p.exchanges).flat_map(|x| x.request.path.values()).flatten().collect();
    assert!(events.iter().all(|e| e.source == Some(TraceChoice::Kmsg)), "{events:#?}");
    // ebtables lines carry no IP id: their events were joined to the packet's iptables lines.
    assert!(events.iter().any(|e| e.hook.to_string().starts_with("eb:") && e.packet.ip_id.is_some()));
}

#[test]
#[serial(kernel_log)]
fn kmsg_without_masquerade_fails_on_the_path_and_the_uplink_address() {
    let mut sc = load("docker-masquerade");
    netpath_cases::edit_iptables(&mut sc, "host", |r| netpath_cases::without_lines(r, "-j MASQUERADE"));

    let before = all_netns();
    let o = run_with(&sc, Backend::Legacy, Some(TraceChoice::Kmsg)).unwrap_or_else(|e| panic!("did not run: {e}"));
    assert_eq!(all_netns(), before, "nf_log_all_netns was not restored after a failing run");
    netpath_cases::assert_masquerade_missing(&o);
}

#[test]
#[serial(kernel_log)]
fn a_source_that_cannot_see_the_backends_trace_is_refused() {
    let sc = load("docker-masquerade");
    let before = all_netns();
    let err = run_with(&sc, Backend::Legacy, Some(TraceChoice::Nftrace)).expect_err("legacy + nftrace must not run");
    assert!(err.to_string().contains("iptables-legacy TRACE is never reported as nf_tables trace events"), "{err}");
    for choice in [TraceChoice::Kmsg, TraceChoice::Nflog] {
        let err = run_with(&sc, Backend::Nft, Some(choice)).expect_err("nft + nf_log source must not run");
        assert!(err.to_string().contains("iptables-nft TRACE is reported only as nf_tables trace events"), "{err}");
    }
    assert_eq!(all_netns(), before);
}

#[test]
#[serial(kernel_log)]
fn nft_with_nftrace_forced_is_the_default() {
    let sc = load("docker-masquerade");
    let forced = passes(&sc, Backend::Nft, Some(TraceChoice::Nftrace));
    let default = passes(&sc, Backend::Nft, None);
    assert_eq!(paths(&forced), paths(&default));
}

#[test]
#[serial(kernel_log)]
fn the_guard_sets_the_sysctl_and_restores_it_on_drop_and_on_panic() {
    netpath_cases::require_root();
    let before = all_netns();
    {
        let guard = KernelLogGuard::acquire().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(guard.previous(), before);
        assert_eq!(all_netns(), "1");
    }
    assert_eq!(all_netns(), before);
    let panicked = std::panic::catch_unwind(|| {
        let _guard = KernelLogGuard::acquire().unwrap_or_else(|e| panic!("{e}"));
        panic!("a run failing half way");
    });
    assert!(panicked.is_err());
    assert_eq!(all_netns(), before);
}

#[test]
#[serial(kernel_log)]
fn kernel_log_runs_take_turns() {
    netpath_cases::require_root();
    let first = KernelLogGuard::acquire().unwrap_or_else(|e| panic!("{e}"));
    let second =
        std::thread::spawn(|| KernelLogGuard::acquire_within(Duration::from_millis(300)).map(drop)).join().unwrap();
    let err = second.expect_err("a second kernel-log run must wait for the first");
    assert!(err.to_string().contains(global_sysctl::LOCK_FILE), "{err}");
    first.release().unwrap_or_else(|e| panic!("{e}"));
    KernelLogGuard::acquire_within(Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"));
}

/// A run killed while it held the guard leaves the sysctl at 1 and its saved value in the lock
/// file; the next holder restores that value, not the 1 it finds.
#[test]
#[serial(kernel_log)]
fn the_next_run_restores_what_a_killed_run_left() {
    netpath_cases::require_root();
    let before = all_netns();
    let script = format!(
        "printf 'net.netfilter.nf_log_all_netns={before} pid=%s\\n' $$ > {lock}; \
         echo 1 > /proc/sys/net/netfilter/nf_log_all_netns; kill -9 $$",
        lock = global_sysctl::LOCK_FILE
    );
    let status = std::process::Command::new("flock")
        .args([global_sysctl::LOCK_FILE, "sh", "-c", &script])
        .status()
        .expect("run flock");
    assert!(!status.success(), "the holder was meant to die");
    assert_eq!(all_netns(), "1", "the killed holder left it set");
    let guard = KernelLogGuard::acquire().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(guard.previous(), before);
    drop(guard);
    assert_eq!(all_netns(), before);
    assert_eq!(global_sysctl::recover_stale().unwrap_or_else(|e| panic!("{e}")), None);
}

/// Every bundled scenario that runs under iptables-legacy: the kernel log sees what NFLOG sees.
#[test]
#[serial(kernel_log)]
fn kmsg_and_nflog_agree_on_every_bundled_legacy_scenario() {
    let mut files: Vec<_> = std::fs::read_dir(netpath_cases::scenarios_dir())
        .expect("list the scenarios")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut compared = 0;
    for path in files {
        // Every probe, docker-host-to-container's host-to-own-address included: the kernel
        // log's lines are joined to packets by what the captures saw, and netpath captures lo
        // where a probe never leaves it.
        let sc = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        if !sc.backends.contains(&Backend::Legacy) {
            continue;
        }
        // This compares the sources: a scenario that does not run with NFLOG is another test's failure.
        let nflog = match std::panic::catch_unwind(|| run_with(&sc, Backend::Legacy, None)) {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                eprintln!("{}: skipped, it does not run with NFLOG: {e}", sc.name);
                continue;
            }
            Err(_) => {
                eprintln!("{}: skipped, its NFLOG run panicked", sc.name);
                continue;
            }
        };
        let before = all_netns();
        let kmsg = run_with(&sc, Backend::Legacy, Some(TraceChoice::Kmsg))
            .unwrap_or_else(|e| panic!("{} [kmsg]: {e}", sc.name));
        assert_eq!(all_netns(), before, "{}: nf_log_all_netns was not restored", sc.name);
        if sc.probe.iter().all(|p| p.answered_by.is_empty()) {
            assert_eq!(paths(&kmsg), paths(&nflog), "{}: the kernel log and NFLOG saw different paths", sc.name);
        } else {
            // Load-balanced: each run picks its own endpoint per connection; the paths each
            // probe took must be the same ones.
            let (k, n) = (distinct_paths(&kmsg), distinct_paths(&nflog));
            let only_kmsg: Vec<_> = k.difference(&n).collect();
            let only_nflog: Vec<_> = n.difference(&k).collect();
            assert!(
                only_kmsg.is_empty() && only_nflog.is_empty(),
                "{}: the kernel log and NFLOG saw different paths\nonly kmsg: {only_kmsg:#?}\nonly nflog: {only_nflog:#?}\n\
                 packets sent again: kmsg {:?}, nflog {:?}\nkmsg:\n{}",
                sc.name,
                sent_again(&kmsg),
                sent_again(&nflog),
                netpath::output::report::outcome(&kmsg, true)
            );
        }
        assert_eq!(
            kmsg.passed(),
            nflog.passed(),
            "{}:\nkmsg:\n{}\nnflog:\n{}",
            sc.name,
            netpath::output::report::outcome(&kmsg, true),
            netpath::output::report::outcome(&nflog, true)
        );
        eprintln!("{}: {} packet paths agree", sc.name, paths(&kmsg).len());
        compared += 1;
    }
    assert!(compared > 0);
}
