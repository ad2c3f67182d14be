//! What a mutant costs: `netpath mutate` of bundled scenarios, two at a time, beside the
//! baseline of running the same scenario as many times as mutants ran, two at a time, with no
//! mutation (what `netpath run -j 2` would take for that many runs). A ratio near 1 says a
//! mutant costs a scenario run and nothing more; where it is above, the rest is the unmutated
//! runs mutate makes first and the mutants that fail (a failed run writes and reads more).
//!
//! `cargo bench -p netpath-cases --bench mutate` (as root). Speed is measured here, never
//! asserted in tests.

use std::num::NonZeroUsize;
use std::time::Instant;

use netpath::mutate::{Settings, mutate_scenario};
use netpath::{Backend, RunOptions};

const SCENARIOS: &[&str] = &["docker-masquerade", "snat-reverse-forward-drop", "ipv6-forward-drop"];

fn main() {
    netpath_cases::require_root();
    let opts = RunOptions { artifacts_root: std::env::temp_dir().join("netpath-bench"), ..RunOptions::default() };
    let jobs = NonZeroUsize::new(2).unwrap();
    println!(
        "{:<28} {:>7} {:>5} {:>9} {:>10} {:>10} {:>6}",
        "scenario", "mutants", "ran", "mutate s", "mutants/s", "runs s", "ratio"
    );
    for name in SCENARIOS {
        let sc = netpath_cases::load(name);
        let settings = Settings { opts: opts.clone(), jobs, shard: None };
        let started = Instant::now();
        let score = mutate_scenario(&sc, &[Backend::Legacy], &settings);
        let mutate = started.elapsed().as_secs_f64();
        let ran = score.mutants.iter().filter(|m| m.seconds > 0.0).count();
        // The baseline: as many plain runs (plus the unmutated one mutate makes), two at a time.
        let runs = ran + 1;
        let started = Instant::now();
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < runs {
                        let o = netpath::run(&sc, Backend::Legacy, &opts).unwrap();
                        assert!(o.passed(), "{}", netpath::output::report::outcome(&o, false));
                    }
                });
            }
        });
        let baseline = started.elapsed().as_secs_f64();
        println!(
            "{:<28} {:>7} {:>5} {:>9.2} {:>10.1} {:>10.2} {:>6.2}",
            name,
            score.mutants.len(),
            ran,
            mutate,
            ran as f64 / mutate,
            baseline,
            mutate / baseline
        );
    }
}
