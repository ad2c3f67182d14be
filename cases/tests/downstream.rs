//! netpath as a downstream crate uses it: a throwaway crate outside this workspace depends on
//! `netpath` by path and tests its own scenario (two netns, a veth, a ping) with rstest and
//! `netpath::testing`. Its `cargo test` must pass; with its twin switched on (a DROP rule in
//! the answering netns) it must fail, in `assert_passes` after the failure was found by kind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MANIFEST: &str = r#"[package]
name = "netpath-downstream"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
netpath = { path = "NETPATH" }

[dev-dependencies]
rstest = "0.28.0"

# The workspace's build of netpath, so the shared target folder already holds it.
[profile.dev.package.netpath]
opt-level = 2

[workspace]
"#;

const TEST: &str = r##"//! One case of a crate that tests its own datapath with netpath.

use netpath::verdict::expect::FailureKind;
use netpath::testing::{assert_passes, run_or_skip, want};
use netpath::{Backend, Scenario};
use rstest::rstest;

// Arrays of inline tables: the same file format, written compactly.
const LAB: &str = r#"
name = "downstream-ping"
netns = [{ name = "client" }, { name = "server", iptables = "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n" }]
veth = [{ a = { netns = "client", name = "eth0", addresses = ["10.7.0.1/24"] }, b = { netns = "server", name = "eth0", addresses = ["10.7.0.2/24"] } }]

[[probe]]
name = "ping"
kind = "icmp"
from = "client"
to = "10.7.0.2"
path = [{ netns = "server", includes = ["filter:INPUT:policy:1"] }]
addr = [{ at = "server/eth0", src = "10.7.0.1", dst = "10.7.0.2" }]
"#;

#[rstest]
fn the_server_answers_the_clients_ping(#[values(Backend::Legacy, Backend::Nft)] backend: Backend) {
    let mut sc = Scenario::from_toml(LAB, "downstream.toml".as_ref()).unwrap();
    if std::env::var_os("DOWNSTREAM_TWIN").is_some() {
        // The twin: the server drops the echo. The run must say so by kind, then the case fails.
        let server = sc.netns_mut("server").unwrap();
        server.iptables = Some("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p icmp -j DROP\nCOMMIT\n".into());
        let Some(o) = run_or_skip(&sc, backend) else { return };
        let lost = want(FailureKind::NoReply).packet(1).netns("client").find(&o.probes[0].failures);
        assert_eq!(lost.last_hooks["server"].to_string(), "filter:INPUT:rule:1", "{lost:#?}");
    }
    assert_passes(&sc, backend);
}
"##;

/// The target folder this test runs from (TARGET/PROFILE/deps/NAME-HASH).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("where this test is");
    exe.ancestors().nth(3).expect("the test is in a target folder").to_path_buf()
}

/// The throwaway crate, in a folder of its own outside the workspace.
fn downstream_crate() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("netpath-downstream-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    let netpath = Path::new(env!("CARGO_MANIFEST_DIR")).join("../harness").canonicalize().unwrap();
    std::fs::write(dir.join("Cargo.toml"), MANIFEST.replace("NETPATH", &netpath.display().to_string())).unwrap();
    std::fs::write(dir.join("src/lib.rs"), "//! Nothing but its tests.\n").unwrap();
    std::fs::write(dir.join("tests/ping.rs"), TEST).unwrap();
    // The workspace's lock file pins the versions this machine has, offline.
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.lock");
    std::fs::copy(lock, dir.join("Cargo.lock")).unwrap();
    dir
}

fn cargo_test(dir: &Path, twin: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["test", "--offline", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("NETPATH_STRICT", "1")
        .env_remove("DOWNSTREAM_TWIN");
    if twin {
        cmd.env("DOWNSTREAM_TWIN", "1");
    }
    cmd.output().expect("run cargo test in the downstream crate")
}

#[test]
fn a_downstream_crate_tests_its_own_scenario_with_netpath_testing() {
    netpath_cases::require_root();
    let dir = downstream_crate();
    let out = cargo_test(&dir, false);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the downstream case failed:\n{text}");
    assert!(text.contains("test result: ok. 2 passed"), "both backends' cases ran:\n{text}");

    let out = cargo_test(&dir, true);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "the twin passed:\n{text}");
    // It failed where assert_passes reports, not earlier at the kind matcher.
    assert!(text.contains("FAILED") && text.contains("2 failed"), "{text}");
    assert!(!text.contains("no failure Want"), "the twin's failure was not found by its kind:\n{text}");
    let _ = std::fs::remove_dir_all(dir);
}
