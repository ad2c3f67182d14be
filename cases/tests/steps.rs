//! `[[step]]` entries on the real kernel: where they run, what placeholders become, what a
//! failing or hanging step reports, and that teardown steps run after a failure too.

use std::path::Path;
use std::time::{Duration, Instant};

use netpath::lab::step::{Phase, StepSpec};
use netpath::observe::TraceChoice;
use netpath::{Backend, Error, RunOptions, Scenario};
use netpath_cases::processes::{
    gone_within, kill, sleep_marker, spawn_run, sweep, wait_for_marker, wait_for_markers, with_marker,
};
use netpath_cases::step_stdout;
use serial_test::serial;

/// Two namespaces on a link, a ping between them, and `steps`.
fn with_steps(steps: Vec<StepSpec>) -> Scenario {
    with_steps_and(steps, "")
}

/// [`with_steps`], the ping's tables followed by `more`.
fn with_steps_and(steps: Vec<StepSpec>, more: &str) -> Scenario {
    // The steps are in the file the path entries load with: what they name in a netns a step
    // writes is checked after the steps, not when the file loads.
    let mut base = Scenario::from_toml(
        r#"
name = "steps"
[[netns]]
name = "a"
[[netns]]
name = "b"
[[veth]]
a = { netns = "a", name = "eth0", addresses = ["10.9.0.1/24"] }
b = { netns = "b", name = "eth0", addresses = ["10.9.0.2/24"] }
[[probe]]
name = "ping"
from = "a"
to = "10.9.0.2"
"#,
        Path::new("steps.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    base.step = steps;
    let sc = Scenario::from_toml(&(base.to_toml() + more), Path::new("steps.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sc.validate(), Vec::<String>::new());
    sc
}

fn sh(name: &str, netns: &str, script: &str) -> StepSpec {
    StepSpec::new(name, netns, "sh", &["-c", script])
}

// `#[serial(leftovers)]`: the tests that count what a run left take turns, or the others' labs
// would be counted too.

#[test]
#[serial(leftovers)]
fn a_step_runs_in_its_netns_with_placeholders_env_and_stdin() {
    let mut step = sh(
        "look",
        "b",
        "cat; echo \"$GREETING\"; echo {netns:a} {run_id}; test -d {run_dir} && echo {run_dir}; ip -br link | cut -d' ' -f1 | cut -d@ -f1 | sort | tr '\\n' ' '",
    );
    step.env.insert("GREETING".into(), "hello from {netns:b}".into());
    step.stdin = Some("stdin of {run_id}\n".into());
    let sc = with_steps(vec![step]);
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    let r = &o.setup.steps[0];
    assert_eq!((r.name.as_str(), r.netns.as_str(), r.phase, r.exit), ("look", "b", Phase::BeforeRules, Some(0)));
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", r.stdout);
    let run_id = lines[0].strip_prefix("stdin of ").expect("stdin expanded");
    assert_eq!(lines[1], format!("hello from /run/netns/netpath-{run_id}-b"));
    assert_eq!(lines[2], format!("/run/netns/netpath-{run_id}-a {run_id}"));
    assert_eq!(lines[3], std::env::temp_dir().join(format!("netpath-run-{run_id}")).display().to_string());
    // Inside netns b: its own links, none of the init netns's.
    assert_eq!(lines[4].trim(), "eth0 lo");
    // The run folder went with the lab.
    assert!(!Path::new(lines[3]).exists());
}

#[test]
#[serial(leftovers)]
fn a_failing_step_is_an_error_naming_it_and_the_lab_is_torn_down() {
    netpath_cases::require_root();
    let marker = std::env::temp_dir().join(format!("netpath-teardown-ran-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let mut teardown = sh("mark", "a", &format!("echo ran > {}", marker.display()));
    teardown.phase = Phase::Teardown;
    let sc = with_steps(vec![
        sh(
            "fails",
            "a",
            "echo starting; for i in 1 2 3; do echo noise $i >&2; done; echo 'plugin: no such bridge' >&2; exit 3",
        ),
        teardown,
    ]);
    let e = netpath::run(&sc, Backend::Legacy, &RunOptions::default()).expect_err("the step fails").to_string();
    assert!(e.starts_with("step `fails` (netns a): `sh -c '"), "{e}");
    assert!(e.contains("exit status: 3"), "{e}");
    assert!(e.ends_with("noise 3\nplugin: no such bridge"), "{e}");
    assert!(marker.exists(), "the teardown step did not run after the failure");
    let _ = std::fs::remove_file(&marker);
    assert_eq!(netpath_cases::namespaces_of(std::process::id()), Vec::<String>::new());
    assert_eq!(netpath_cases::run_dirs_of(std::process::id()), Vec::<String>::new());
}

/// netavark writes its errors on stdout (as JSON) and nothing on stderr: the error shows the
/// tails of both.
#[test]
#[serial(leftovers)]
fn a_failing_step_shows_the_tails_of_its_stdout_and_stderr() {
    netpath_cases::require_root();
    let sc = with_steps(vec![sh(
        "netavark-like",
        "a",
        r#"echo '{"error":"create bridge: Netlink error: File exists (os error 17)"}'; echo 'a warning' >&2; exit 1"#,
    )]);
    let e = netpath::run(&sc, Backend::Legacy, &RunOptions::default()).expect_err("the step fails").to_string();
    assert!(
        e.ends_with(
            "exit status: 1\nits stdout ends:\n{\"error\":\"create bridge: Netlink error: File exists (os error 17)\"}\n\
             its stderr ends:\na warning"
        ),
        "{e}"
    );
    assert_eq!(netpath_cases::namespaces_of(std::process::id()), Vec::<String>::new());
}

#[test]
#[serial(leftovers)]
fn a_hanging_step_is_killed_at_its_deadline_with_everything_it_started() {
    netpath_cases::require_root();
    // A unique argument finds the background sleep if it survived.
    let tag = format!("6{}.25", std::process::id());
    let mut step = sh("hangs", "b", &format!("sleep {tag} & echo waiting >&2; wait"));
    step.timeout_ms = 300;
    let sc = with_steps(vec![step]);
    let started = std::time::Instant::now();
    let e = netpath::run(&sc, Backend::Legacy, &RunOptions::default()).expect_err("the step hangs").to_string();
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "{:?}", started.elapsed());
    assert!(e.starts_with("step `hangs` (netns b): "), "{e}");
    assert!(e.contains(&netpath_cases::killed_after(300)), "{e}");
    assert!(e.ends_with("waiting"), "{e}");
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&tag))
        .collect();
    assert_eq!(survivors, Vec::<String>::new());
    assert_eq!(netpath_cases::namespaces_of(std::process::id()), Vec::<String>::new());
}

#[test]
#[serial(leftovers)]
fn a_missing_program_says_so() {
    netpath_cases::require_root();
    let sc = with_steps(vec![StepSpec::new("plugin", "a", "/usr/lib/cni/no-such-plugin", &["x"])]);
    let e = netpath::run(&sc, Backend::Legacy, &RunOptions::default()).expect_err("no such program").to_string();
    assert!(e.starts_with("step `plugin` (netns a): `/usr/lib/cni/no-such-plugin x`: could not start: "), "{e}");
}

#[test]
#[serial(leftovers)]
fn teardown_steps_run_after_a_failed_probe_and_their_output_is_kept() {
    let mut sc = with_steps(vec![]);
    let mut t = StepSpec::new("links-at-teardown", "a", "ip", &["-br", "link"]);
    t.phase = Phase::Teardown;
    sc.step.push(t);
    sc.probe[0].to = "10.9.0.3".parse().unwrap();
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    assert!(!o.passed());
    assert!(step_stdout(&o, "links-at-teardown").contains("eth0@"), "{:?}", o.setup.steps);
    let dir = o.artifacts.as_ref().expect("a failed run keeps artifacts");
    assert!(dir.join("steps.json").exists() && dir.join("step-0-links-at-teardown.stdout").exists());
}

#[test]
#[serial(leftovers)]
fn a_probe_may_go_to_the_address_a_step_gave_an_interface() {
    let mut sc =
        with_steps(vec![sh("readdress", "b", "ip addr del 10.9.0.2/24 dev eth0 && ip addr add 10.9.0.77/24 dev eth0")]);
    sc.probe[0].to = "@b/eth0".parse().unwrap();
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    let at_b = &o.probes[0].exchanges[0].request.seen[&"b/eth0".parse().unwrap()];
    assert_eq!(at_b.dst, Some("10.9.0.77".parse().unwrap()));
    // A target that has no address after the steps is an error naming it.
    let mut sc = with_steps(vec![sh("unaddress", "b", "ip addr flush dev eth0")]);
    sc.probe[0].to = "@b/eth0".parse().unwrap();
    let e = netpath::run(&sc, Backend::Legacy, &RunOptions::default()).expect_err("no address").to_string();
    assert!(e.contains("probe ping: to = \"@b/eth0\": b/eth0 has no IPv4 address after the steps"), "{e}");
}

/// `with_steps` plus an expectation on the ping's path in netns b.
fn with_path_in_b(steps: Vec<StepSpec>, exact: &[&str]) -> Scenario {
    with_steps_and(steps, &format!("[[probe.path]]\nnetns = \"b\"\nexact = {exact:?}\n"))
}

/// Rules a step wrote with iptables-legacy are traced through NFLOG even in a run whose own
/// backend is nft (whose TRACE rule would show as `raw:PREROUTING:rule:1`), and the other way
/// round: the trace source follows the backend the tool wrote to.
#[test]
#[serial(leftovers)]
fn the_trace_source_follows_the_backend_a_step_wrote_to() {
    let legacy = StepSpec::new("legacy-rule", "b", "iptables-legacy", &["-A", "INPUT", "-p", "icmp", "-j", "ACCEPT"]);
    let sc = with_path_in_b(vec![legacy], &["raw:PREROUTING:policy:2", "filter:INPUT:rule:1"]);
    let o = netpath_cases::run_or_return!(&sc, Backend::Nft);
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    assert_eq!((o.setup.backends["b"].legacy, o.setup.backends["b"].nft), (1, 0));
    let nft = StepSpec::new("nft-rule", "b", "iptables-nft", &["-A", "INPUT", "-p", "icmp", "-j", "ACCEPT"]);
    let sc = with_path_in_b(vec![nft], &["raw:PREROUTING:rule:1", "raw:PREROUTING:policy:2", "filter:INPUT:rule:1"]);
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    assert_eq!((o.setup.backends["b"].legacy, o.setup.backends["b"].nft), (0, 1));
}

/// Rules in both backends are reported as such, unless the scenario pins which one to trace.
#[test]
#[serial(leftovers)]
fn rules_in_both_backends_are_reported_unless_pinned() {
    let steps = vec![
        StepSpec::new("legacy-rule", "b", "iptables-legacy", &["-A", "INPUT", "-p", "icmp", "-j", "ACCEPT"]),
        StepSpec::new("nft-rule", "b", "iptables-nft", &["-A", "INPUT", "-p", "udp", "-j", "ACCEPT"]),
    ];
    let sc = with_path_in_b(steps, &["raw:PREROUTING:rule:1", "raw:PREROUTING:policy:2", "filter:INPUT:policy:2"]);
    netpath_cases::require_root();
    let e = netpath::run(&sc, Backend::Nft, &RunOptions::default()).expect_err("both backends").to_string();
    assert!(e.contains("netns b has iptables rules in both backends (x_tables: 1 rules in iptables-legacy-save, nf_tables: 1 rules in iptables-nft-save)"), "{e}");
    assert!(e.contains("traced_backend"), "{e}");
    let mut pinned = sc.clone();
    pinned.netns_mut("b").unwrap().traced_backend = Some(Backend::Nft);
    let o = netpath_cases::run_or_return!(&pinned, Backend::Nft);
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
}

/// Issue 24 item 9: the kernel log never sees nf_tables TRACE, and a kernel-log run reads no
/// other source. Rules a step wrote with iptables-nft make such a run an error naming nftrace,
/// once the steps revealed them; pinned with `traced_backend = "nft"` the file says so, and the
/// run is refused before anything is built. The twins: the same step under the run's own
/// source (nftrace then reads netns b), and a step that writes iptables-legacy rules, which the
/// kernel log sees.
#[test]
#[serial(leftovers)]
fn a_kernel_log_run_refuses_the_nf_tables_rules_a_step_wrote() {
    netpath_cases::require_root();
    let kmsg = RunOptions { trace: Some(TraceChoice::Kmsg), ..RunOptions::default() };
    let rule = ["-A", "INPUT", "-p", "icmp", "-j", "ACCEPT"];
    let nft = with_path_in_b(
        vec![StepSpec::new("nft-rule", "b", "iptables-nft", &rule)],
        &["raw:PREROUTING:rule:1", "raw:PREROUTING:policy:2", "filter:INPUT:rule:1"],
    );
    let e = netpath::run(&nft, Backend::Legacy, &kmsg).expect_err("the kernel log cannot trace netns b");
    assert!(matches!(&e, Error::Trace { netns, .. } if netns == "b"), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(
            "netns b: trace: its steps wrote its iptables rules to nft (x_tables: 0 rules in iptables-legacy-save, \
             nf_tables: 1 rules in iptables-nft-save): the kernel log does not see nf_tables TRACE"
        ),
        "{text}"
    );
    assert!(text.ends_with("(without --trace kmsg, netpath traces this netns with nftrace)"), "{text}");

    let mut pinned = nft.clone();
    pinned.netns_mut("b").unwrap().traced_backend = Some(Backend::Nft);
    // Refused by the file's word (after the steps the message would say what they wrote).
    let e = netpath::run(&pinned, Backend::Legacy, &kmsg).expect_err("refused from the file").to_string();
    assert!(
        e.starts_with("netns b: trace: traced_backend = \"nft\": the kernel log does not see nf_tables TRACE"),
        "{e}"
    );

    // Twins: the run's own source reads the nf_tables rules; the kernel log reads legacy ones.
    let o = netpath_cases::run_or_return!(&nft, Backend::Legacy);
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    let legacy = with_path_in_b(
        vec![StepSpec::new("legacy-rule", "b", "iptables-legacy", &rule)],
        &["raw:PREROUTING:policy:2", "filter:INPUT:rule:1"],
    );
    let o = netpath::run(&legacy, Backend::Legacy, &kmsg).unwrap_or_else(|e| panic!("{e}"));
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    let hooks = &o.probes[0].exchanges[0].request.path["b"];
    assert!(hooks.iter().all(|e| e.source == Some(TraceChoice::Kmsg)), "{hooks:?}");
}

/// The issue's reproduction: a step that leaves a setsid'd daemon behind and exits. The run
/// neither waits for the daemon (it held the step's stdout: the run lasted 40 s) nor leaves it
/// running in a netns whose name is gone.
#[test]
#[serial(leftovers)]
fn a_daemon_a_step_leaves_ends_with_the_step() {
    netpath_cases::require_root();
    let held = sleep_marker(40);
    let redirected = sleep_marker(41);
    let mut step = sh(
        "daemonize",
        "b",
        &format!("setsid sleep {held} & setsid sleep {redirected} >/dev/null 2>&1 & sleep 0.5; echo started"),
    );
    step.timeout_ms = 5000;
    let sc = with_steps(vec![step]);
    let started = Instant::now();
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    let took = started.elapsed();
    assert!(o.passed(), "{}", netpath::output::report::outcome(&o, true));
    assert!(took < Duration::from_secs(20), "the run waited for the daemon: {took:?}");
    let r = &o.setup.steps[0];
    assert_eq!((r.exit, r.stdout.as_str()), (Some(0), "started\n"));
    assert_eq!(r.incomplete, Vec::<String>::new(), "every pipe closed when the step's namespace ended");
    // The wait for the step returns once its namespace is empty: nothing to poll for.
    assert_eq!(with_marker(&held), vec![]);
    assert_eq!(with_marker(&redirected), vec![]);
}

/// A step past its deadline whose daemons setsid()ed away from it: killed with all of them.
#[test]
#[serial(leftovers)]
fn a_step_past_its_deadline_takes_its_setsid_daemons_along() {
    netpath_cases::require_root();
    let daemon = sleep_marker(42);
    let mut step =
        sh("hangs", "b", &format!("setsid sleep {daemon} >/dev/null 2>&1 & echo forked; exec sleep {daemon}0"));
    step.timeout_ms = 500;
    let sc = with_steps(vec![step]);
    let started = Instant::now();
    let e = netpath::run(&sc, Backend::Legacy, &RunOptions::default()).expect_err("the step hangs").to_string();
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert!(e.contains(&netpath_cases::killed_after(500)), "{e}");
    assert_eq!(with_marker(&daemon), vec![]);
    assert_eq!(netpath_cases::namespaces_of(std::process::id()), Vec::<String>::new());
}

/// Something outside the step's reach (here: this test, through /proc/PID/fd/1) holds its stdout
/// after it exited: the run does not wait for it past the grace, keeps what arrived and says so.
#[test]
#[serial(leftovers)]
fn a_pipe_held_from_outside_does_not_hold_the_run() {
    netpath_cases::require_root();
    let tag = sleep_marker(1);
    let sc = with_steps(vec![sh("chatty", "b", &format!("echo first; sleep {tag}; echo last"))]);
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let (pid, _) = wait_for_marker(&tag, Duration::from_secs(60))[0].clone();
        // The sleep's stdout is the step's stdout pipe: a second writer on it.
        let pipe = std::fs::OpenOptions::new().write(true).open(format!("/proc/{pid}/fd/1"));
        let _ = done_rx.recv_timeout(Duration::from_secs(120));
        pipe.map(|_| ()).map_err(|e| e.to_string())
    });
    let o = netpath_cases::run_or_return!(&sc, Backend::Legacy);
    done_tx.send(()).unwrap();
    holder.join().unwrap().expect("open the step's stdout through /proc");
    let r = &o.setup.steps[0];
    assert_eq!((r.exit, r.stdout.as_str()), (Some(0), "first\nlast\n"));
    assert_eq!(r.incomplete.len(), 1, "{:?}", r.incomplete);
    assert!(r.incomplete[0].starts_with("its stdout was still held open 1s after it exited"), "{:?}", r.incomplete);
    assert!(r.millis < 10_000, "{} ms", r.millis);
}

/// netpath SIGKILLed while a step runs: the step and the daemon it started die with it (PID 1
/// of their namespace gets SIGKILL when netpath's thread dies), and `netpath sweep` removes the
/// namespaces and the `{run_dir}` folder the run left.
#[test]
#[serial(leftovers)]
fn a_killed_netpath_leaves_no_step_process_and_sweep_removes_the_rest() {
    netpath_cases::require_root();
    let daemon = sleep_marker(43);
    let step = sh(
        "long",
        "b",
        &format!("echo state > {{run_dir}}/ipam; setsid sleep {daemon} >/dev/null 2>&1 & exec sleep {daemon}1"),
    );
    let dir = std::env::temp_dir().join(format!("netpath-steps-killed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("killed.toml");
    std::fs::write(&file, with_steps(vec![step]).to_toml()).unwrap();
    let run = spawn_run(&file, &dir.join("artifacts"));
    let pid = run.id();
    let found = wait_for_markers(&daemon, 2, Duration::from_secs(120));
    assert_eq!(found.len(), 2, "the step and its daemon: {found:?}");
    assert_eq!(netpath_cases::run_dirs_of(pid).len(), 1, "the run folder is there while it runs");
    kill(run);
    assert_eq!(gone_within(&daemon, Duration::from_secs(10)), vec![], "step processes outlived netpath");
    let swept = sweep();
    assert_eq!(netpath_cases::namespaces_of(pid), Vec::<String>::new(), "{swept}");
    assert_eq!(netpath_cases::run_dirs_of(pid), Vec::<String>::new(), "{swept}");
    assert!(
        swept.contains(&format!("removed {}", std::env::temp_dir().join(format!("netpath-run-{pid}x")).display())),
        "{swept}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
