//! Running the userspace tools netpath drives (iptables-restore, nft, conntrack, wg, ...) and the
//! scenario's steps: never longer than a deadline, with stdin written and stdout/stderr read by
//! one poll loop, so a chatty tool cannot block on a full pipe while it is waited for, and a pipe
//! something else still holds cannot keep netpath waiting past the deadline.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a firewall, conntrack or WireGuard tool may run in a lab: each does a few netlink or
/// setsockopt calls, so one still running after this is stuck (a held xtables lock, a kernel
/// call that never returns) and must fail the run, not hang it.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// How long, after a program exited, its stdout and stderr are still read when something else
/// holds them open (a process it left that is out of reach): what arrived by then is kept.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How much of each stream is kept; the rest is read and dropped, so a step that writes without
/// end cannot fill netpath's memory before its deadline.
pub const MAX_OUTPUT: usize = 64 << 20;

/// How long a process killed at its deadline may take to be gone (for a step, every process of
/// its PID namespace) before netpath stops waiting for it.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// What a finished tool left.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Why the output may be incomplete (`stdout was still held open 1s after ...`): empty when
    /// both streams were read to their end.
    pub incomplete: Vec<String>,
}

/// Why a tool has no [`Output`].
#[derive(Debug)]
pub enum Failure {
    /// It could not be started (not installed, not executable, the pre-exec setns failed).
    Spawn(io::Error),
    /// Waiting for it failed.
    Wait(io::Error),
    /// It was killed at the deadline; what it had written by then.
    TimedOut { after: Duration, stdout: String, stderr: String },
}

/// Run `cmd` (its args set, stdio left to this function), feed it `stdin`, and wait at most
/// `timeout` for it to exit.
pub fn run(cmd: Command, stdin: Option<&str>, timeout: Duration) -> Result<Output, Failure> {
    run_with(cmd, stdin, timeout)
}

/// [`run`] for a command that may start processes of its own (a user's script, a plugin that
/// forks, a daemon that double-forks and setsid()s): it runs as PID 1 of a PID namespace of its
/// own ([`crate::contain`]), so everything it started is killed when it exits, at the deadline,
/// and when netpath dies.
pub fn run_contained(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Result<Output, Failure> {
    crate::contain::prepare(&mut cmd);
    let stdin = stdin.map(str::to_string);
    crate::contain::in_new_pid_namespace(move || run_with(cmd, stdin.as_deref(), timeout)).map_err(Failure::Spawn)?
}

fn run_with(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Result<Output, Failure> {
    let deadline = Instant::now() + timeout;
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(Failure::Spawn)?;
    let mut io = match Pipes::new(&mut child, stdin) {
        Ok(io) => io,
        Err(e) => {
            let _ = child.kill();
            wait_gone(&mut child, None);
            return Err(Failure::Wait(e));
        }
    };
    let exit = crate::contain::pidfd_open(child.id());
    let mut exited: Option<(ExitStatus, Instant)> = None;
    loop {
        io.pump();
        if exited.is_none() {
            exited = child.try_wait().map_err(Failure::Wait)?.map(|s| (s, Instant::now()));
        }
        let now = Instant::now();
        match exited {
            None if now >= deadline => {
                let _ = child.kill();
                wait_gone(&mut child, exit.as_ref());
                // What was written before the kill is still in the pipes.
                io.pump();
                let (stdout, stderr) = io.text();
                return Err(Failure::TimedOut { after: timeout, stdout, stderr });
            }
            None => io.wait(deadline, exit.as_ref(), true),
            Some((status, _)) if io.outputs_closed() => return Ok(io.output(status, vec![])),
            Some((status, at)) => {
                let until = deadline.min(at + DRAIN_GRACE).max(at);
                if now >= until {
                    let held = io.open_outputs();
                    let why = format!(
                        "its {held} {} still held open {:?} after it exited (by a process out of netpath's \
                         reach): what arrived until then is kept",
                        if held.contains(" and ") { "were" } else { "was" },
                        until - at,
                    );
                    return Ok(io.output(status, vec![why]));
                }
                io.wait(until, None, false);
            }
        }
    }
}

/// After a SIGKILL: wait until `child` is gone, at most [`REAP_TIMEOUT`] (a process stuck in the
/// kernel cannot be waited for without end).
fn wait_gone(child: &mut Child, exit: Option<&OwnedFd>) {
    let deadline = Instant::now() + REAP_TIMEOUT;
    while let Ok(None) = child.try_wait() {
        if Instant::now() >= deadline {
            return;
        }
        poll(&mut vec![], exit, true, deadline);
    }
}

/// One output stream of a child: its pipe until its end, and what was read.
struct Stream {
    name: &'static str,
    fd: Option<OwnedFd>,
    data: Vec<u8>,
    dropped: usize,
}

/// The child's stdin (with what is left to write) and its stdout and stderr, non-blocking.
struct Pipes {
    stdin: Option<(OwnedFd, Vec<u8>, usize)>,
    out: [Stream; 2],
}

impl Pipes {
    fn new(child: &mut Child, stdin: Option<&str>) -> io::Result<Pipes> {
        let stdin = match (child.stdin.take(), stdin) {
            (Some(pipe), Some(text)) => Some((nonblocking(pipe.into())?, text.as_bytes().to_vec(), 0)),
            _ => None,
        };
        let stream = |name, fd: Option<OwnedFd>| -> io::Result<Stream> {
            Ok(Stream { name, fd: fd.map(nonblocking).transpose()?, data: vec![], dropped: 0 })
        };
        Ok(Pipes {
            stdin,
            out: [
                stream("stdout", child.stdout.take().map(Into::into))?,
                stream("stderr", child.stderr.take().map(Into::into))?,
            ],
        })
    }

    /// Write what the stdin pipe takes and read what the output pipes hold, without blocking.
    fn pump(&mut self) {
        if let Some((fd, text, done)) = &mut self.stdin {
            loop {
                if *done == text.len() {
                    // Closing it is the end of input.
                    self.stdin = None;
                    break;
                }
                // SAFETY: writing from a live buffer of the given length.
                let n = unsafe { libc::write(fd.as_raw_fd(), text[*done..].as_ptr().cast(), text.len() - *done) };
                match n {
                    n if n > 0 => *done += n as usize,
                    _ if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => {}
                    // Full (EAGAIN) waits for the next round; a tool that exits early closes the
                    // pipe (EPIPE), and its stderr says why, so the write error is not the story.
                    _ if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock => break,
                    _ => {
                        self.stdin = None;
                        break;
                    }
                }
            }
        }
        let mut buf = vec![0u8; 64 << 10];
        for s in &mut self.out {
            let Some(fd) = &s.fd else { continue };
            loop {
                // SAFETY: reading into a buffer of its length.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n > 0 {
                    let n = n as usize;
                    let keep = n.min(MAX_OUTPUT.saturating_sub(s.data.len()));
                    s.data.extend_from_slice(&buf[..keep]);
                    s.dropped += n - keep;
                    continue;
                }
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted if n < 0 => continue,
                    io::ErrorKind::WouldBlock if n < 0 => {}
                    // The end (0), or an error that ends the stream just as well.
                    _ => s.fd = None,
                }
                break;
            }
        }
    }

    /// Wait until a pipe is ready, the child exits (if `running`; `exit` polls readable then), or
    /// `until`.
    fn wait(&self, until: Instant, exit: Option<&OwnedFd>, running: bool) {
        let mut fds: Vec<libc::pollfd> = vec![];
        if let Some((fd, ..)) = &self.stdin {
            fds.push(libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 });
        }
        for s in &self.out {
            if let Some(fd) = &s.fd {
                fds.push(libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
            }
        }
        poll(&mut fds, exit, running, until);
    }

    fn outputs_closed(&self) -> bool {
        self.out.iter().all(|s| s.fd.is_none())
    }

    /// `stdout`, `stderr` or `stdout and stderr`: the streams not read to their end.
    fn open_outputs(&self) -> String {
        self.out.iter().filter(|s| s.fd.is_some()).map(|s| s.name).collect::<Vec<_>>().join(" and ")
    }

    fn text(&self) -> (String, String) {
        let text = |s: &Stream| String::from_utf8_lossy(&s.data).into_owned();
        (text(&self.out[0]), text(&self.out[1]))
    }

    fn output(&self, status: ExitStatus, mut incomplete: Vec<String>) -> Output {
        for s in self.out.iter().filter(|s| s.dropped > 0) {
            incomplete.push(format!(
                "its {} went past {} MiB: the first {} MiB are kept, {} more bytes were dropped",
                s.name,
                MAX_OUTPUT >> 20,
                MAX_OUTPUT >> 20,
                s.dropped
            ));
        }
        let (stdout, stderr) = self.text();
        Output { status, stdout, stderr, incomplete }
    }
}

fn nonblocking(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on a descriptor owned here.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// poll(2) on `fds` and `exit` (a pidfd, readable once the child exited) until one is ready or
/// `until`; while a child `running` has no pidfd (before Linux 5.3), at most 5 ms at a time, so
/// its exit is seen soon.
fn poll(fds: &mut Vec<libc::pollfd>, exit: Option<&OwnedFd>, running: bool, until: Instant) {
    let mut left = until.saturating_duration_since(Instant::now());
    match exit {
        Some(p) => fds.push(libc::pollfd { fd: p.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 }),
        None if running => left = left.min(Duration::from_millis(5)),
        None => {}
    }
    let ms = (left.as_micros().div_ceil(1000)).min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid array of its length for the call; EINTR and the rest are seen by
    // the caller's next round.
    unsafe {
        libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms);
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
        Err(Failure::TimedOut { after, stderr, .. }) => {
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
    fn a_tool_past_its_deadline_is_killed_with_its_output_so_far() {
        // Long enough for `sh` to start and write under QEMU's TCG, where 300 ms was not.
        match run(sh("echo half; echo waiting for the lock >&2; exec sleep 600"), None, Duration::from_secs(3)) {
            Err(Failure::TimedOut { after, stdout, stderr }) => {
                assert_eq!(after, Duration::from_secs(3));
                assert_eq!((stdout.as_str(), stderr.as_str()), ("half\n", "waiting for the lock\n"));
            }
            other => panic!("{other:?}"),
        }
    }

    /// The processes whose command line holds `tag`.
    fn processes_with(tag: &str) -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(tag))
            .collect()
    }

    #[test]
    fn a_contained_command_takes_its_setsid_daemons_with_it_at_exit_and_at_the_deadline() {
        crate::testing::require_root();
        // Unique sleep lengths find the daemons if they survived; `setsid` puts them out of the
        // command's process group and session, which a group kill would miss.
        let tag = format!("7{}.125", std::process::id());
        let started = Instant::now();
        let script = format!("setsid sleep {tag} & setsid sh -c 'sleep {tag}1 >/dev/null 2>&1 &'; echo started");
        let out = run_contained(sh(&script), None, Duration::from_secs(20)).unwrap();
        assert_eq!((out.stdout.as_str(), out.status.code()), ("started\n", Some(0)));
        assert_eq!(out.incomplete, Vec::<String>::new());
        assert_eq!(processes_with(&tag), Vec::<String>::new());
        match run_contained(sh(&format!("setsid sleep {tag} & echo up; sleep 600")), None, Duration::from_secs(3)) {
            Err(Failure::TimedOut { stdout, .. }) => assert_eq!(stdout, "up\n"),
            other => panic!("{other:?}"),
        }
        assert_eq!(processes_with(&tag), Vec::<String>::new());
        assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
        // The twin: not contained, the same daemon outlives its command, and the check sees it.
        let out = run(sh(&format!("setsid sleep {tag} >/dev/null 2>&1 & echo $!")), None, TIMEOUT).unwrap();
        // Poll: while a process is inside execve its cmdline reads empty (the new mm has no
        // arguments yet), and the daemon execs twice (`setsid`, then `sleep`). A CI run read
        // the survivor in that window once and saw nothing.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut survivors = processes_with(&tag);
        while survivors.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            survivors = processes_with(&tag);
        }
        if let Ok(pid) = out.stdout.trim().parse::<i32>() {
            // SAFETY: kill has no memory effects; the sleep is this test's own.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        // Read while `setsid` may not have exec'd `sleep` yet: one process, either name.
        assert_eq!(survivors.len(), 1, "{survivors:?}");
    }

    #[test]
    fn a_contained_command_sees_its_own_pid_namespace_in_proc() {
        crate::testing::require_root();
        // What a CNI plugin's Go code opens: /proc/<getpid()>/task/<gettid()>/ns/net.
        let out = run_contained(sh("echo $$; test -e /proc/$$/ns/net && echo /proc/[0-9]*"), None, TIMEOUT).unwrap();
        assert_eq!(out.stdout, "1\n/proc/1\n", "PID 1, and in its /proc the shell alone");
    }

    #[test]
    fn a_pipe_held_by_a_process_left_behind_ends_the_wait_after_the_grace() {
        // Not contained: the background sleep survives `sh` and holds stdout open.
        let tag = format!("8{}.375", std::process::id());
        let started = Instant::now();
        let out = run(sh(&format!("sleep {tag} & echo $!")), None, Duration::from_secs(30)).unwrap();
        let waited = started.elapsed();
        if let Ok(pid) = out.stdout.trim().parse::<i32>() {
            // SAFETY: kill has no memory effects; the sleep is this test's own.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        assert!(waited >= DRAIN_GRACE && waited < DRAIN_GRACE * 5, "{waited:?}");
        assert!(out.stdout.trim().parse::<i32>().is_ok(), "what arrived is kept: {:?}", out.stdout);
        assert_eq!(out.incomplete.len(), 1, "{:?}", out.incomplete);
        assert!(out.incomplete[0].starts_with("its stdout and stderr were still held open 1s after it exited"));
    }

    #[test]
    fn endless_output_is_kept_up_to_the_bound() {
        let out = run(sh("head -c 70000000 /dev/zero; echo done >&2"), None, TIMEOUT).unwrap();
        assert_eq!((out.stdout.len(), out.stderr.as_str()), (MAX_OUTPUT, "done\n"));
        assert_eq!(
            out.incomplete,
            [format!(
                "its stdout went past 64 MiB: the first 64 MiB are kept, {} more bytes were dropped",
                70_000_000 - MAX_OUTPUT
            )]
        );
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
