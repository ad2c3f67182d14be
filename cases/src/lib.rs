//! Helpers shared by the scenario tests.

use std::path::{Path, PathBuf};

use netpath::{Backend, Outcome, RunOptions, Scenario};

/// The folder of the bundled scenario files.
pub fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// Load a bundled scenario by file stem, failing the test with the loader's message.
pub fn load(stem: &str) -> Scenario {
    let path = scenarios_dir().join(format!("{stem}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// netpath needs root: say so once, clearly, instead of a wall of EPERMs.
pub fn require_root() {
    if !nix_is_root() {
        panic!("netpath cases need CAP_NET_ADMIN and CAP_SYS_ADMIN: run `cargo test` as root");
    }
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Run a scenario under one backend; an `Err` of the engine fails the test with its message.
pub fn run(sc: &Scenario, backend: Backend) -> Outcome {
    require_root();
    netpath::run(sc, backend, &RunOptions::default())
        .unwrap_or_else(|e| panic!("{} [{}] did not run: {e}", sc.name, backend.name()))
}

/// Run and require every expectation to hold, showing the report otherwise.
pub fn assert_passes(sc: &Scenario, backend: Backend) -> Outcome {
    let o = run(sc, backend);
    assert!(o.passed(), "\n{}", netpath::report::outcome(&o, true));
    o
}
