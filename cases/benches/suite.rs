//! The bundled suite's wall time with and without the kernel's drops ending the probes' waits:
//! `netpath run --backend all -j 2 cases/scenarios`, the way a user runs it, each way in turn in
//! the same bench run, so that the ratio holds on a machine whose load drifts.
//!
//! `cargo bench -p netpath-cases --bench suite` (as root; `NETPATH_SUITE_ROUNDS` rounds, 3 by
//! default). The baseline is the same binary under `NETPATH_DROPS=evidence-only`: the drop
//! source still loads and its drops are still evidence, but they end no wait, so probes wait as
//! they did before the drop source (only a trace's DROP ends an ICMP or UDP wait: main before
//! the drops merge). Prints each round's wall times, then min / median of each and the ratio of
//! medians. Both ways must pass: a failing run writes artifacts, which would skew its time.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    netpath_cases::require_root();
    let rounds: usize = std::env::var("NETPATH_SUITE_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(3);
    let bin = netpath_cases::netpath_bin();
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let run = |baseline: bool| {
        let mut cmd = Command::new(&bin);
        cmd.args(["run", "--backend", "all", "-j", "2"]).arg(&folder);
        if baseline {
            cmd.env("NETPATH_DROPS", netpath::observe::drops::EVIDENCE_ONLY);
        } else {
            cmd.env_remove("NETPATH_DROPS");
        }
        let t = Instant::now();
        let out = cmd.output().expect("run netpath");
        let took = t.elapsed();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "netpath run failed (baseline: {baseline}):\n{text}");
        took
    };
    let (mut now, mut before) = (vec![], vec![]);
    for round in 1..=rounds {
        // Alternating which goes first: neither always meets a cold cache or a busier minute.
        let (a, b) = if round % 2 == 1 {
            let a = run(false);
            (a, run(true))
        } else {
            let b = run(true);
            (run(false), b)
        };
        println!("round {round}/{rounds}: drops end waits {:.2} s, baseline (evidence only) {:.2} s", secs(a), secs(b));
        now.push(a);
        before.push(b);
    }
    let (n, b) = (median(&mut now), median(&mut before));
    println!(
        "bundled suite, --backend all -j 2: drops end waits: min {:.2} s, median {:.2} s; baseline: min {:.2} s, median {:.2} s; baseline / now = {:.2}x",
        secs(now[0]),
        secs(n),
        secs(before[0]),
        secs(b),
        b.as_secs_f64() / n.as_secs_f64()
    );
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Sorts `v` and returns its median.
fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
