//! Running the userspace tools netpath drives (iptables-restore, nft, conntrack, wg, ...):
//! never longer than a deadline, with stdin written and stdout/stderr read on their own threads
//! so a chatty tool cannot block on a full pipe while it is waited for.

use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a firewall, conntrack or WireGuard tool may run in a lab: each does a few netlink or
/// setsockopt calls, so one still running after this is stuck (a held xtables lock, a kernel
/// call that never returns) and must fail the run, not hang it.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// What a finished tool left.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Why a tool has no [`Output`].
#[derive(Debug)]
pub enum Failure {
    /// It could not be started (not installed, not executable, the pre-exec setns failed).
    Spawn(io::Error),
    /// Waiting for it failed.
    Wait(io::Error),
    /// It was killed at the deadline; what it had written to stderr by then.
    TimedOut { after: Duration, stderr: String },
}

/// Run `cmd` (its args set, stdio left to this function), feed it `stdin`, and wait at most
/// `timeout` for it to exit.
pub fn run(cmd: Command, stdin: Option<&str>, timeout: Duration) -> Result<Output, Failure> {
    run_with(cmd, stdin, timeout, false)
}

/// [`run`] for a command that may start processes of its own (a user's script, a plugin that
/// forks): it leads a process group, and the whole group is killed at the deadline and when the
/// command exits, so nothing it started outlives it or holds its pipes open.
pub fn run_group(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Result<Output, Failure> {
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    run_with(cmd, stdin, timeout, true)
}

fn run_with(mut cmd: Command, stdin: Option<&str>, timeout: Duration, group: bool) -> Result<Output, Failure> {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(Failure::Spawn)?;
    let feeder = match (stdin, child.stdin.take()) {
        (Some(text), Some(mut pipe)) => {
            let text = text.to_string();
            // A tool that exits early closes the pipe; its stderr says why, so the write error
            // is not the story.
            Some(std::thread::spawn(move || drop(pipe.write_all(text.as_bytes()))))
        }
        _ => None,
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_until(&mut child, Instant::now() + timeout, group).map_err(Failure::Wait)?;
    if group {
        // What the command left running would keep the pipes open and the drains waiting.
        kill_group(child.id());
    }
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let text = |h: JoinHandle<Vec<u8>>| String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned();
    match status {
        Some(status) => Ok(Output { status, stdout: text(stdout), stderr: text(stderr) }),
        None => Err(Failure::TimedOut { after: timeout, stderr: text(stderr) }),
    }
}

/// Where `program` is on PATH, as the shell would find it (an executable file).
pub fn on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(program)).find(|p| {
        std::fs::metadata(p)
            .is_ok_and(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
    })
}

/// [`run`] `cmd` (the command `program` as `command` shows it, inside `netns`) and return its
/// stdout, or an [`Error`](crate::Error) that names the netns, the command and what the tool said,
/// with a hint where one helps (not installed, not root, the xtables lock).
pub fn checked(cmd: Command, netns: &str, program: &str, command: &str, stdin: Option<&str>) -> crate::Result<String> {
    use crate::Error;
    let failed = |status: String, stderr: &str, hint: &str| Error::Command {
        netns: netns.to_string(),
        command: command.to_string(),
        status,
        stderr: stderr.trim().to_string(),
        hint: hint.to_string(),
    };
    match run(cmd, stdin, TIMEOUT) {
        Ok(out) if out.status.success() => Ok(out.stdout),
        Ok(out) => {
            let denied = out.stderr.contains("Permission denied") || out.stderr.contains("Operation not permitted");
            let hint = if denied { " (needs CAP_NET_ADMIN: run as root)" } else { "" };
            Err(failed(out.status.to_string(), &out.stderr, hint))
        }
        Err(Failure::TimedOut { after, stderr }) => {
            let hint = if program.starts_with("iptables") {
                " (is another process holding /run/xtables.lock? `fuser -v /run/xtables.lock` names it)"
            } else {
                ""
            };
            Err(failed(format!("killed after {after:?} without finishing"), &stderr, hint))
        }
        Err(Failure::Spawn(source)) => Err(Error::Spawn {
            netns: netns.to_string(),
            program: program.to_string(),
            hint: if source.kind() == io::ErrorKind::NotFound { install_hint(program) } else { "" }.to_string(),
            source,
        }),
        Err(Failure::Wait(e)) => Err(Error::netns(netns, format!("wait for `{command}`"), e)),
    }
}

/// `PROGRAM ARG...` as a user would type it, for messages.
pub fn command_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program).chain(args.iter().copied()).collect::<Vec<_>>().join(" ")
}

/// Where a missing tool comes from: ` (not installed: apt-get install PACKAGE)`, or "".
pub fn install_hint(program: &str) -> &'static str {
    match program {
        p if p.starts_with("iptables") || p.starts_with("xtables") => " (not installed: apt-get install iptables)",
        p if p.starts_with("ebtables") => " (not installed: apt-get install ebtables)",
        "nft" => " (not installed: apt-get install nftables)",
        "conntrack" => " (not installed: apt-get install conntrack)",
        "ip" => " (not installed: apt-get install iproute2)",
        "wg" => " (not installed: apt-get install wireguard-tools)",
        "wireguard-go" => " (not installed: apt-get install wireguard-go)",
        "boringtun-cli" => " (not installed: cargo install boringtun-cli)",
        "zcat" => " (not installed: apt-get install gzip)",
        _ => "",
    }
}

/// SIGKILL every process of the group `pgid` (one [`run_group`] started); none left is fine.
fn kill_group(pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        // SAFETY: kill has no memory effects; a negative pid names the process group.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut out);
        }
        out
    })
}

/// The exit status, or None after killing a child that outlived `deadline`. Polls instead of
/// killing by pid from another thread, which could hit a reused pid.
fn wait_until(child: &mut Child, deadline: Instant, group: bool) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            if group {
                kill_group(child.id());
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    #[test]
    fn feeds_stdin_and_collects_both_streams() {
        let out = run(sh("cat; echo oops >&2; exit 3"), Some("rules\n"), TIMEOUT).unwrap();
        assert_eq!(out.stdout, "rules\n");
        assert_eq!(out.stderr, "oops\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_tool_past_its_deadline_is_killed_with_its_stderr_so_far() {
        match run(sh("echo waiting for the lock >&2; exec sleep 600"), None, Duration::from_millis(300)) {
            Err(Failure::TimedOut { after, stderr }) => {
                assert_eq!(after, Duration::from_millis(300));
                assert_eq!(stderr, "waiting for the lock\n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_group_is_killed_whole_at_the_deadline_and_at_exit() {
        // The background sleep holds stdout open: without the group kill the drain would wait
        // for it, past any deadline.
        let started = Instant::now();
        let out = run_group(sh("sleep 600 & echo started"), None, Duration::from_secs(20)).unwrap();
        assert_eq!(out.stdout, "started\n");
        match run_group(sh("sleep 600 & sleep 600"), None, Duration::from_millis(300)) {
            Err(Failure::TimedOut { .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    }

    #[test]
    fn large_input_and_output_do_not_deadlock() {
        // More than a pipe holds in each direction, written before anything is read.
        let big = "x".repeat(1 << 20) + "\n";
        let out = run(sh("cat; cat /dev/null"), Some(&big), TIMEOUT).unwrap();
        assert_eq!(out.stdout.len(), big.len());
    }

    #[test]
    fn a_missing_program_is_a_spawn_failure_with_a_hint() {
        assert!(
            matches!(run(Command::new("iptables-surely-missing"), None, TIMEOUT), Err(Failure::Spawn(e)) if e.kind() == io::ErrorKind::NotFound)
        );
        assert_eq!(install_hint("iptables-legacy-restore"), " (not installed: apt-get install iptables)");
        assert_eq!(install_hint("frobnicate"), "");
    }
}
