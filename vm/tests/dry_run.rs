//! The local dry run of the workflow (.ci/dry-run) on fixture workflows: it must fail where
//! GitHub would (a tool installed under sudo into root's HOME, then looked for in runner's), and
//! pass the same job done right. Runs as root (it creates the `runner` user); takes the dry
//! run's lock, so it waits for a dry run in progress.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// The ancestor process that is a workflow runner (GitHub's Runner.Worker, or a dry run whose
/// host job runs this test): a dry run there would reset that runner's HOME and wait for its lock.
fn inside_a_runner() -> Option<String> {
    let mut pid = std::os::unix::process::parent_id();
    while pid > 1 {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("Runner.Worker") || cmd.contains("dry_run.py") {
            return Some(cmd);
        }
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        pid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
    }
    None
}

/// Runs the fixture's `job`: (succeeded, output), or None (with the reason printed) inside a
/// workflow runner.
fn dry_run(job: &str) -> Option<(bool, String)> {
    if let Some(runner) = inside_a_runner() {
        eprintln!("SKIP dry run of {job}: this test runs inside a workflow runner ({runner})");
        return None;
    }
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
    Some((o.status.success(), text))
}

#[test]
fn a_tool_installed_into_roots_home_under_sudo_fails_the_dry_run() {
    let Some((ok, text)) = dry_run("sudo-home") else { return };
    assert!(!ok, "the dry run passed a job whose second step cannot find the tool:\n{text}");
    assert!(text.contains("step 2 `Use the tool as runner`: FAILED"), "{text}");
    assert!(text.contains("result: sudo-home failure"), "{text}");
}

#[test]
fn the_same_job_with_home_passed_to_sudo_passes_with_outputs_env_and_artifacts() {
    let Some((ok, text)) = dry_run("runner-home") else { return };
    assert!(ok, "{text}");
    assert!(text.contains("upload-artifact out: 1 files"), "{text}");
    assert!(text.contains("cache: saved fixture-"), "{text}");
}

#[test]
fn a_failed_step_skips_the_next_and_always_uploads_but_a_missing_path_fails() {
    let Some((ok, text)) = dry_run("missing-artifact") else { return };
    assert!(!ok, "{text}");
    assert!(text.contains("step 2 `Skipped after a failure`: skipped"), "{text}");
    assert!(text.contains("upload-artifact nothing: no files at target/never-written/"), "{text}");
}
