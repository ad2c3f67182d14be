//! The bound on a whole run (`--max-duration`, `RunOptions::max_duration`,
//! `NETPATH_MAX_DURATION`): a scenario that would wait 1,000 × 60 s for a silent address stops
//! with an error that names where it was, its worst case and how to allow more; the same
//! scenario within its bound runs to a verdict; a step past the bound is stopped the same way.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use netpath::lab::step::{Phase, StepSpec};
use netpath::{Backend, Error, RunOptions, Scenario};

/// Two namespaces on a link; a ping from a to 10.77.0.3, which no one has (ARP goes unanswered:
/// the trace sees no drop that would end the wait early).
fn silent(count: u16, timeout_ms: u64) -> Scenario {
    let mut sc = Scenario::from_toml(
        r#"
name = "silent"
backends = ["legacy"]
[[netns]]
name = "a"
[[netns]]
name = "b"
[[veth]]
a = { netns = "a", name = "eth0", addresses = ["10.77.0.1/24"] }
b = { netns = "b", name = "eth0", addresses = ["10.77.0.2/24"] }
[[probe]]
name = "silent"
from = "a"
to = "10.77.0.3"
"#,
        Path::new("silent.toml"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    sc.probe[0].count = count;
    sc.probe[0].timeout_ms = timeout_ms;
    sc
}

fn bounded(max: Duration) -> RunOptions {
    RunOptions { max_duration: Some(max), ..RunOptions::default() }
}

#[test]
fn a_runaway_probe_stops_at_the_bound_with_where_and_why() {
    netpath_cases::require_root();
    let sc = silent(1000, 60_000);
    let started = Instant::now();
    let e = netpath::run(&sc, Backend::Legacy, &bounded(Duration::from_secs(3))).expect_err("past the bound");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert!(matches!(e, Error::RunBound { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "run exceeded its 3 s bound during probe silent, packet 1 of 1000: its worst case is 16 h 42 min \
         (probe silent: 1000 × 60 s, setup allowance: 2 min); raise --max-duration (or NETPATH_MAX_DURATION) \
         or lower the probes' count or timeout_ms"
    );
    assert_eq!(netpath_cases::namespaces_of(std::process::id()), Vec::<String>::new());

    // The twin: within its bound the same silent address is a verdict, not an error.
    let o = netpath::run(&silent(2, 300), Backend::Legacy, &bounded(Duration::from_secs(60)))
        .unwrap_or_else(|e| panic!("{e}"));
    netpath_cases::want(netpath::FailureKind::NoReply).packet(2).find(&o.probes[0].failures);
}

#[test]
fn a_step_past_the_bound_is_stopped_and_the_teardown_still_runs() {
    netpath_cases::require_root();
    let marker = std::env::temp_dir().join(format!("netpath-bound-teardown-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let mut sc = silent(1, 300);
    let mut slow = StepSpec::new("slow", "a", "sleep", &["60"]);
    slow.timeout_ms = 60_000;
    let mut teardown = StepSpec::new("mark", "a", "touch", &[marker.to_str().unwrap()]);
    teardown.phase = Phase::Teardown;
    sc.step = vec![slow, teardown];
    let started = Instant::now();
    let e = netpath::run(&sc, Backend::Legacy, &bounded(Duration::from_secs(2))).expect_err("past the bound");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    let text = e.to_string();
    assert!(text.starts_with("run exceeded its 2 s bound during step slow: its worst case is "), "{text}");
    assert!(marker.exists(), "the teardown step did not run");
    let _ = std::fs::remove_file(&marker);
}

/// `netpath run` with the bound from the flag or the environment, and a wrong value refused.
#[test]
fn the_command_takes_the_bound_from_the_flag_or_the_environment() {
    netpath_cases::require_root();
    let dir = std::env::temp_dir().join(format!("netpath-bound-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("silent.toml");
    std::fs::write(&file, silent(1000, 60_000).to_toml()).unwrap();
    let run = |args: &[&str], env: Option<&str>| {
        let mut cmd = Command::new(netpath_cases::netpath_bin());
        cmd.arg("run").arg(&file).args(args).env("NETPATH_ARTIFACTS", dir.join("artifacts"));
        match env {
            Some(v) => cmd.env("NETPATH_MAX_DURATION", v),
            None => cmd.env_remove("NETPATH_MAX_DURATION"),
        };
        let started = Instant::now();
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text, started.elapsed())
    };
    let (code, text, took) = run(&["--max-duration", "2s"], Some("1h"));
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("ERROR silent [legacy]: run exceeded its 2 s bound during probe silent, packet 1 of 1000"),
        "{text}"
    );
    assert!(took < Duration::from_secs(30), "{took:?}");
    let (code, text, _) = run(&[], Some("2s"));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("run exceeded its 2 s bound during probe silent"), "{text}");
    let (code, text, _) = run(&[], Some("soon"));
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("NETPATH_MAX_DURATION: `soon` is not a duration"), "{text}");
    let (code, text, _) = run(&["--max-duration", "0"], None);
    assert_eq!(code, Some(2), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
