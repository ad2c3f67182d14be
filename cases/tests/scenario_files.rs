//! Every bundled scenario file, under every backend it names.

use std::path::PathBuf;

use rstest::rstest;

#[rstest]
fn scenario_file(#[files("scenarios/*.toml")] path: PathBuf) {
    let sc = netpath::Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
    for backend in &sc.backends {
        netpath_cases::assert_passes(&sc, *backend);
    }
}
