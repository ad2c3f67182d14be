//! The local dry run of the workflow (.ci/dry-run) on fixture workflows: it must fail where
//! GitHub would (a tool installed under sudo into root's HOME, then looked for in runner's), and
//! pass the same job done right. Runs as root (it creates the `runner` user); takes the dry
//! run's lock, so it waits for a dry run in progress.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// Runs the fixture's `job`: (succeeded, output).
fn dry_run(job: &str) -> (bool, String) {
    let out = std::env::temp_dir().join(format!("netpath-dry-run-test-{}-{job}", std::process::id()));
    let o = Command::new("bash")
        .arg(repo().join(".ci/dry-run"))
        .args(["--workflow", "vm/tests/dry-run/home.yml", "--job", job, "--out"])
        .arg(&out)
        .current_dir(repo())
        .output()
        .expect("run .ci/dry-run");
    let _ = std::fs::remove_dir_all(&out);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.success(), text)
}

#[test]
fn a_tool_installed_into_roots_home_under_sudo_fails_the_dry_run() {
    let (ok, text) = dry_run("sudo-home");
    assert!(!ok, "the dry run passed a job whose second step cannot find the tool:\n{text}");
    assert!(text.contains("step 2 `Use the tool as runner`: FAILED"), "{text}");
    assert!(text.contains("result: sudo-home failure"), "{text}");
}

#[test]
fn the_same_job_with_home_passed_to_sudo_passes_with_outputs_env_and_artifacts() {
    let (ok, text) = dry_run("runner-home");
    assert!(ok, "{text}");
    assert!(text.contains("upload-artifact out: 1 files"), "{text}");
}

#[test]
fn a_failed_step_skips_the_next_and_always_uploads_but_a_missing_path_fails() {
    let (ok, text) = dry_run("missing-artifact");
    assert!(!ok, "{text}");
    assert!(text.contains("step 2 `Skipped after a failure`: skipped"), "{text}");
    assert!(text.contains("upload-artifact nothing: no files at target/never-written/"), "{text}");
}
