//! Finding the processes a test started by a unique marker in their command line, waiting for
//! them to appear or to be gone, and running the `netpath` command to kill it mid-run: what the
//! tests of "nothing a run starts outlives it" share.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `sleep` length of about `seconds` no other process on the machine has: the fraction holds
/// this test process's pid and a count (`40.72345619003`), so `sleep MARKER` can be found again.
pub fn sleep_marker(seconds: u32) -> String {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{seconds}.{}{seq:03}", std::process::id())
}

/// Every process whose command line holds `tag`, as (pid, command line).
pub fn with_marker(tag: &str) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .map(|d| d.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let line = String::from_utf8_lossy(&cmdline).replace('\0', " ").trim_end().to_string();
            line.contains(tag).then_some((pid, line))
        })
        .collect()
}

/// Poll until a process with `tag` in its command line runs; panics after `within`.
pub fn wait_for_marker(tag: &str, within: Duration) -> Vec<(u32, String)> {
    wait_for_markers(tag, 1, within)
}

/// Poll until `n` processes with `tag` in their command lines run; panics after `within`.
pub fn wait_for_markers(tag: &str, n: usize, within: Duration) -> Vec<(u32, String)> {
    let deadline = Instant::now() + within;
    loop {
        let found = with_marker(tag);
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "not {n} processes with `{tag}` in their command lines within {within:?}: {found:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Poll until no process has `tag` in its command line, at most `within` (the kernel kills a
/// PID namespace's processes asynchronously); returns those still there then.
pub fn gone_within(tag: &str, within: Duration) -> Vec<(u32, String)> {
    let deadline = Instant::now() + within;
    loop {
        let found = with_marker(tag);
        if found.is_empty() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` is still there (a zombie counts as gone).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // "PID (COMM) STATE ...": COMM may hold spaces and parentheses.
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()).is_some_and(|state| state != 'Z')
}

/// Poll until none of `pids` is [`alive`], at most `within` (a process SIGKILLed a moment ago
/// may still be exiting); returns those still alive then.
pub fn pids_gone_within(pids: &[u32], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `netpath run FILE` in the background, artifacts under `artifacts`, its output discarded.
pub fn spawn_run(file: &Path, artifacts: &Path) -> Child {
    Command::new(crate::netpath_bin())
        .arg("run")
        .arg(file)
        .env("NETPATH_ARTIFACTS", artifacts)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("run netpath: {e}"))
}

/// SIGKILL a netpath that [`spawn_run`] started and reap it.
pub fn kill(mut run: Child) {
    run.kill().unwrap_or_else(|e| panic!("kill netpath {}: {e}", run.id()));
    let _ = run.wait();
}

/// `netpath sweep`: its stdout, after checking it succeeded.
pub fn sweep() -> String {
    let out = Command::new(crate::netpath_bin()).arg("sweep").output().unwrap_or_else(|e| panic!("sweep: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "netpath sweep failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}
