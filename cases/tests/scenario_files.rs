//! Every bundled scenario file, under every backend it names. A backend the kernel cannot run
//! the scenario under (a missing feature) is skipped with the reason, or fails under
//! `NETPATH_STRICT=1`; the other backends still run.

use std::path::PathBuf;

use rstest::rstest;

#[rstest]
fn scenario_file(#[files("scenarios/*.toml")] path: PathBuf) {
    let sc = netpath::Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut failed = vec![];
    for backend in &sc.backends {
        if let Some(o) = netpath_cases::run_or_skip(&sc, *backend)
            && !o.passed()
        {
            failed.push(netpath::output::report::outcome(&o, true));
        }
    }
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
}
