//! WireGuard interfaces of a scenario (seed 001): keys, bring-up and teardown.
//!
//! Each `[[wireguard]]` entry becomes an interface in its netns, made by one of two
//! implementations, chosen per run ([`choose`]): the kernel's, where it can make a link of kind
//! `wireguard` (CONFIG_WIREGUARD), else `wireguard-go`, the userspace implementation, over a TUN
//! device. `NETPATH_WIREGUARD=kernel|userspace` forces one (default `auto`).
//!
//! Bring-up ([`Tunnels::up`]), after the veths have their addresses and before the routes:
//!
//! 1. keys: `wg genkey` and `wg pubkey` per entry, kept in netpath's memory: a private key never
//!    touches a disk, so a killed run leaves none behind;
//! 2. the device: `ip link add IFACE type wireguard` over rtnetlink in the netns, or
//!    `wireguard-go IFACE` started inside the netns with `WG_PROCESS_FOREGROUND=1`, so it stays a
//!    child netpath stops, waited for until its control socket and interface exist (inotify and a
//!    pidfd, up to a deadline);
//! 3. `wg set IFACE private-key /proc/self/fd/0 [listen-port N] peer PUB [endpoint IP:PORT]
//!    [allowed-ips A,B] [persistent-keepalive S] ...` inside the netns, the private key written
//!    to its stdin (a pipe: `wg` reads the key file to its end, as wg-quick's `<(...)` has it);
//! 4. MTU, addresses and up over the lab's rtnetlink.
//!
//! wireguard-go and `wg` find each other through `/var/run/wireguard/IFACE.sock`, one path for
//! the whole machine: two `wg0` of two namespaces (or of two runs) would take each other's. Each
//! wireguard-go and each `wg` it is configured with therefore runs in a mount namespace of its
//! own where the run's directory for that interface is bind-mounted on `/run`; nothing is made or
//! mounted in the machine's own mount namespace.
//!
//! Teardown ([`Tunnels::stop`], and [`Drop`] on failure or panic): every wireguard-go gets
//! SIGTERM, then SIGKILL if it has not exited within [`STOP_TIMEOUT`], and is waited for; a
//! wireguard-go that died during the run makes `stop` fail with the end of its log. The process
//! also gets SIGKILL if the thread that started it dies (`PR_SET_PDEATHSIG`), so a killed run
//! leaves none behind. Kernel interfaces go with their netns.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::caps::Skip;
use crate::error::{Error, Result};
use crate::lab::Lab;
use crate::lab::netns::Netns;
use crate::scenario::{Scenario, WireGuardSpec};
use crate::tool;

/// How long a wireguard-go gets to make its interface and control socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a wireguard-go gets to exit on SIGTERM before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// The environment variable that forces an implementation.
pub const PREFERENCE_ENV: &str = "NETPATH_WIREGUARD";

/// The kind of implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Kernel,
    Userspace,
}

/// The implementation a run used, as its outcome reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Implementation {
    /// The kernel's WireGuard: links of kind `wireguard`.
    Kernel { release: String },
    /// `wireguard-go`, one process per interface, over /dev/net/tun.
    Userspace { program: PathBuf, version: String },
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Implementation::Kernel { release } => write!(f, "kernel (Linux {release})"),
            Implementation::Userspace { version, .. } => write!(f, "userspace (wireguard-go {version})"),
        }
    }
}

impl Implementation {
    pub fn kind(&self) -> Kind {
        match self {
            Implementation::Kernel { .. } => Kind::Kernel,
            Implementation::Userspace { .. } => Kind::Userspace,
        }
    }

    /// Find the programs `kind` needs (`wg` always, `wireguard-go` for userspace) and their
    /// versions; `Err` says what is missing and how to install it.
    pub fn find(kind: Kind) -> std::result::Result<Implementation, String> {
        tool::on_path("wg").ok_or_else(|| {
            "`wg` is not on PATH: it configures the interfaces (apt-get install wireguard-tools)".to_string()
        })?;
        match kind {
            Kind::Kernel => Ok(Implementation::Kernel {
                release: nix::sys::utsname::uname()
                    .map(|u| u.release().to_string_lossy().into_owned())
                    .unwrap_or_else(|e| format!("unknown (uname: {e})")),
            }),
            Kind::Userspace => {
                let program = tool::on_path("wireguard-go").ok_or_else(|| {
                    "`wireguard-go` is not on PATH: netpath's userspace WireGuard is wireguard-go \
                     (apt-get install wireguard-go)"
                        .to_string()
                })?;
                let mut version = Command::new(&program);
                version.arg("--version");
                let out = tool::run(version, None, tool::TIMEOUT)
                    .map_err(|e| format!("run `{} --version`: {e:?}", program.display()))?;
                let version = parse_version(&out.stdout).unwrap_or_else(|| "of unknown version".to_string());
                Ok(Implementation::Userspace { program, version })
            }
        }
    }
}

/// `0.0.20220316` from `wireguard-go v0.0.20220316` (the first line of `wireguard-go --version`).
pub fn parse_version(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let word = line.split_whitespace().nth(1)?;
    Some(word.trim_start_matches('v').to_string())
}

/// Which implementation a run may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// The kernel's where it has one, else wireguard-go.
    Auto,
    Kernel,
    Userspace,
}

impl Preference {
    /// From [`PREFERENCE_ENV`]: unset or empty is `auto`.
    pub fn from_env() -> std::result::Result<Preference, String> {
        match std::env::var(PREFERENCE_ENV) {
            Ok(v) => v.parse(),
            Err(std::env::VarError::NotPresent) => Ok(Preference::Auto),
            Err(e) => Err(format!("{PREFERENCE_ENV}: {e}")),
        }
    }
}

impl std::str::FromStr for Preference {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Preference, String> {
        match s.trim() {
            "" | "auto" => Ok(Preference::Auto),
            "kernel" => Ok(Preference::Kernel),
            "userspace" => Ok(Preference::Userspace),
            other => Err(format!("{PREFERENCE_ENV}=`{other}`: want auto, kernel or userspace")),
        }
    }
}

/// The implementation to use, given the preference and what [`crate::caps::require`] said of
/// `Feature::WireGuard` (`kernel`) and `Feature::WireGuardUserspace` (`userspace`); `Err` names
/// each missing feature and why it is missing.
pub fn choose(
    preference: Preference,
    kernel: std::result::Result<(), Skip>,
    userspace: std::result::Result<(), Skip>,
) -> std::result::Result<Kind, String> {
    let why = |s: Skip| format!("{}: {}", s.feature.name(), s.reason);
    match (preference, kernel, userspace) {
        (Preference::Auto | Preference::Kernel, Ok(()), _) => Ok(Kind::Kernel),
        (Preference::Auto | Preference::Userspace, _, Ok(())) => Ok(Kind::Userspace),
        (Preference::Kernel, Err(k), _) => {
            Err(format!("needs {} ({PREFERENCE_ENV}=kernel): {}", k.feature.name(), k.reason))
        }
        (Preference::Userspace, _, Err(u)) => {
            Err(format!("needs {} ({PREFERENCE_ENV}=userspace): {}", u.feature.name(), u.reason))
        }
        (Preference::Auto, Err(k), Err(u)) => Err(format!(
            "needs {} or {} for its [[wireguard]] interfaces, and this machine has neither: {}; {}",
            k.feature.name(),
            u.feature.name(),
            why(k),
            why(u)
        )),
    }
}

/// The arguments of the `wg set` that configures `w`: its private key file, listen port, and
/// each peer with the public key `public_of` gives for its `netns/iface`.
pub fn set_args(
    w: &WireGuardSpec,
    private_key: &Path,
    public_of: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Vec<String>, String> {
    let mut args = vec!["set".to_string(), w.iface.clone(), "private-key".into(), private_key.display().to_string()];
    if let Some(port) = w.listen_port {
        args.extend(["listen-port".to_string(), port.to_string()]);
    }
    for p in &w.peers {
        let key = public_of(&p.peer).ok_or_else(|| format!("peer `{}` is no [[wireguard]] entry", p.peer))?;
        args.extend(["peer".to_string(), key]);
        if let Some(e) = p.endpoint {
            args.extend(["endpoint".to_string(), e.to_string()]);
        }
        if !p.allowed_ips.is_empty() {
            let ips: Vec<String> = p.allowed_ips.iter().map(ToString::to_string).collect();
            args.extend(["allowed-ips".to_string(), ips.join(",")]);
        }
        if let Some(k) = p.persistent_keepalive {
            args.extend(["persistent-keepalive".to_string(), k.to_string()]);
        }
    }
    Ok(args)
}

/// The WireGuard interfaces of one run, and the wireguard-go processes behind them: stopped by
/// [`Tunnels::stop`], or killed on drop (a failure or a panic).
pub struct Tunnels {
    kind: Kind,
    /// Each userspace interface's run directory (its control socket and log); removed at the
    /// end, and by `netpath sweep` after a killed run ([`crate::lab::sweep::RunFolder`]).
    dir: PathBuf,
    daemons: Vec<Daemon>,
}

/// The path `wg set ... private-key` reads the private key from: its stdin, a pipe netpath writes
/// the key into.
pub const KEY_FROM_STDIN: &str = "/proc/self/fd/0";

/// One key pair, in memory only.
struct Keys {
    private: String,
    public: String,
}

impl Tunnels {
    /// Make, configure and bring up every `[[wireguard]]` interface of `sc` in `lab`.
    pub fn up(lab: &Lab, sc: &Scenario, implementation: &Implementation) -> Result<Tunnels> {
        let dir = crate::lab::sweep::RunFolder::WireGuard.path(lab.run_id());
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(format!("create {} for the WireGuard keys", dir.display()), e))?;
        // From here on, drop removes the directory and stops what was started.
        let mut t = Tunnels { kind: implementation.kind(), dir, daemons: vec![] };
        let mut keys = vec![];
        for _ in &sc.wireguard {
            keys.push(t.keys()?);
        }
        let public: BTreeMap<String, String> =
            sc.wireguard.iter().zip(&keys).map(|(w, k)| (w.id(), k.public.clone())).collect();

        match implementation {
            Implementation::Kernel { .. } => {
                for w in &sc.wireguard {
                    lab.add_wireguard(&w.netns, &w.iface)?;
                }
            }
            Implementation::Userspace { program, .. } => {
                // Start them all, then wait for each: they come up side by side.
                for (i, w) in sc.wireguard.iter().enumerate() {
                    let run_dir = t.run_dir(i);
                    let daemon = Daemon::start(lab.netns(&w.netns)?, program, w, &run_dir)?;
                    t.daemons.push(daemon);
                }
                for (d, w) in t.daemons.iter_mut().zip(&sc.wireguard) {
                    d.wait_ready(lab, w)?;
                }
            }
        }

        for (i, (w, k)) in sc.wireguard.iter().zip(&keys).enumerate() {
            let ns = lab.netns(&w.netns)?;
            let args = set_args(w, Path::new(KEY_FROM_STDIN), &|id| public.get(id).cloned())
                .map_err(|message| Error::Scenario { scenario: sc.name.clone(), message })?;
            t.wg(Some(ns), Some(i), &args, Some(&format!("{}\n", k.private)))?;
            if let Some(mtu) = w.mtu {
                lab.set_mtu(&w.netns, &w.iface, mtu)?;
            }
            for a in &w.addresses {
                lab.add_address(&w.netns, &w.iface, *a)?;
            }
            lab.set_up(&w.netns, &w.iface)?;
        }
        Ok(t)
    }

    /// The pids of the running wireguard-go processes.
    #[cfg(test)]
    fn pids(&self) -> Vec<u32> {
        self.daemons.iter().map(|d| d.child.id()).collect()
    }

    /// Stop every wireguard-go (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]), wait for it, and
    /// remove the keys; `Err` if one died during the run or would not stop.
    pub fn stop(mut self) -> Result<()> {
        let mut errors: Vec<Error> =
            std::mem::take(&mut self.daemons).into_iter().filter_map(|d| d.stop().err()).collect();
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            errors.push(Error::io(format!("remove {}", self.dir.display()), e));
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Many(errors)),
        }
    }

    /// The run directory of userspace interface `i`, bind-mounted on `/run` for its
    /// wireguard-go and every `wg` that talks to it.
    fn run_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("{i}.run"))
    }

    /// A fresh key pair: `wg genkey`, then `wg pubkey` of it.
    fn keys(&self) -> Result<Keys> {
        let private = self.wg(None, None, &["genkey".to_string()], None)?.trim().to_string();
        let public = self.wg(None, None, &["pubkey".to_string()], Some(&private))?.trim().to_string();
        Ok(Keys { private, public })
    }

    /// Run `wg ARGS` (inside `ns` if given; for userspace interface `iface` with its run
    /// directory on /run) and return its stdout.
    fn wg(&self, ns: Option<&Netns>, iface: Option<usize>, args: &[String], stdin: Option<&str>) -> Result<String> {
        let mut cmd = match ns {
            Some(ns) => ns.command("wg"),
            None => Command::new("wg"),
        };
        if let (Some(i), Kind::Userspace) = (iface, self.kind) {
            private_run_dir(&mut cmd, &self.run_dir(i))
                .map_err(|e| Error::io(format!("prepare the run directory of `wg {}`", args.join(" ")), e))?;
        }
        let netns = ns.map_or("(none)", Netns::name);
        // The private key is a secret: show `genkey`/`pubkey`, never their input or output.
        let command = format!("wg {}", args.join(" "));
        cmd.args(args);
        tool::checked(cmd, netns, "wg", &command, stdin)
    }
}

impl Drop for Tunnels {
    fn drop(&mut self) {
        for mut d in self.daemons.drain(..) {
            d.kill();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// One wireguard-go process.
struct Daemon {
    /// `netns/iface`, for messages.
    id: String,
    netns: String,
    child: Child,
    run_dir: PathBuf,
    log: PathBuf,
    /// Whether it has been waited for.
    reaped: bool,
}

impl Daemon {
    /// Start `wireguard-go IFACE` inside `ns`, in the foreground, with `run_dir` on /run.
    fn start(ns: &Netns, program: &Path, w: &WireGuardSpec, run_dir: &Path) -> Result<Daemon> {
        let io_err = |what: String| move |e: io::Error| Error::io(what, e);
        // wireguard-go makes `wireguard/` itself; made here so its socket can be watched for.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(run_dir.join("wireguard"))
            .map_err(io_err(format!("create {}", run_dir.display())))?;
        let log = run_dir.join("wireguard-go.log");
        let out = File::create(&log).map_err(io_err(format!("create {}", log.display())))?;
        let err = out.try_clone().map_err(io_err(format!("open {}", log.display())))?;
        let mut cmd = ns.command(&program.to_string_lossy());
        cmd.arg(&w.iface)
            .env("WG_PROCESS_FOREGROUND", "1")
            .env("LOG_LEVEL", "verbose")
            .env_remove("WG_TUN_FD")
            .env_remove("WG_UAPI_FD")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        private_run_dir(&mut cmd, run_dir).map_err(io_err(format!("prepare {}", run_dir.display())))?;
        die_with_parent(&mut cmd);
        let child = cmd.spawn().map_err(|e| Error::Spawn {
            netns: ns.name().to_string(),
            program: program.display().to_string(),
            hint: if e.kind() == io::ErrorKind::NotFound { tool::install_hint("wireguard-go") } else { "" }.to_string(),
            source: e,
        })?;
        Ok(Daemon {
            id: w.id(),
            netns: ns.name().to_string(),
            child,
            run_dir: run_dir.to_path_buf(),
            log,
            reaped: false,
        })
    }

    /// Wait until its control socket and interface exist, or fail with why (it exited, or the
    /// deadline passed) and the end of its log.
    fn wait_ready(&mut self, lab: &Lab, w: &WireGuardSpec) -> Result<()> {
        let sock = self.run_dir.join("wireguard").join(format!("{}.sock", w.iface));
        let deadline = Instant::now() + START_TIMEOUT;
        match wait_for_file(&sock, &mut self.child, deadline) {
            Ok(()) => {}
            Err(Ended::Exited(status)) => {
                self.reaped = true;
                return Err(self.error(format!("exited before its interface was up ({status})")));
            }
            Err(Ended::Timeout) => {
                return Err(self.error(format!("made no control socket {} within {START_TIMEOUT:?}", sock.display())));
            }
            Err(Ended::Io(e)) => return Err(self.error(format!("waiting for {}: {e}", sock.display()))),
        }
        // wireguard-go opens its control socket after it made the TUN device.
        if !lab.links(&w.netns)?.values().any(|n| *n == w.iface) {
            return Err(self.error(format!("made its control socket, but netns {} has no {}", w.netns, w.iface)));
        }
        Ok(())
    }

    fn error(&self, what: String) -> Error {
        Error::Command {
            netns: self.netns.clone(),
            command: format!("wireguard-go {} (for {})", self.id.rsplit('/').next().unwrap_or_default(), self.id),
            status: what,
            stderr: log_tail(&self.log),
            hint: String::new(),
        }
    }

    /// SIGTERM, wait up to [`STOP_TIMEOUT`], then SIGKILL; `Err` if it had already exited.
    fn stop(mut self) -> Result<()> {
        if self.reaped {
            return Ok(());
        }
        match self.child.try_wait() {
            Ok(Some(status)) => {
                self.reaped = true;
                return Err(self.error(format!("exited during the run ({status})")));
            }
            Ok(None) => {}
            Err(e) => return Err(self.error(format!("cannot tell whether it runs: {e}"))),
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        match wait_exit(&mut self.child, deadline) {
            Ok(Some(_)) => {
                self.reaped = true;
                Ok(())
            }
            _ => {
                self.kill();
                Err(self.error(format!("did not exit within {STOP_TIMEOUT:?} of SIGTERM: killed")))
            }
        }
    }

    /// SIGKILL and wait.
    fn kill(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
            self.reaped = true;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last lines of a log file, for an error.
fn log_tail(path: &Path) -> String {
    let mut text = String::new();
    let _ = File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n");
    if tail.is_empty() { "(its log is empty)".into() } else { format!("its log ends:\n{tail}") }
}

/// Make `cmd` run in a mount namespace of its own in which `dir` is bind-mounted on the run
/// state directory (`/run`, which `/var/run` leads to), so its `/var/run/wireguard` is `dir/wireguard`.
fn private_run_dir(cmd: &mut Command, dir: &Path) -> io::Result<()> {
    let src = CString::new(dir.as_os_str().as_bytes())?;
    let mut targets: Vec<PathBuf> = ["/var/run", "/run"].iter().filter_map(|p| fs::canonicalize(p).ok()).collect();
    targets.dedup();
    if targets.is_empty() {
        return Err(io::Error::other("neither /var/run nor /run exists"));
    }
    let targets: Vec<CString> =
        targets.iter().map(|t| CString::new(t.as_os_str().as_bytes())).collect::<std::result::Result<_, _>>()?;
    // SAFETY: between fork and exec this calls only unshare and mount, which are async-signal-
    // safe, on strings made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Nothing mounted here may reach the machine's mount namespace.
            let flags = libc::MS_REC | libc::MS_PRIVATE;
            if libc::mount(c"none".as_ptr(), c"/".as_ptr(), std::ptr::null(), flags, std::ptr::null()) != 0 {
                return Err(io::Error::last_os_error());
            }
            for t in &targets {
                if libc::mount(src.as_ptr(), t.as_ptr(), std::ptr::null(), libc::MS_BIND, std::ptr::null()) != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(())
}

/// Have the kernel SIGKILL the child when the thread that spawned it dies (a killed run).
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: prctl and getppid are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the prctl took effect.
            if libc::getppid() != parent {
                return Err(io::Error::other("the parent exited"));
            }
            Ok(())
        });
    }
}

/// Why a wait ended without what it waited for.
#[derive(Debug)]
enum Ended {
    Exited(ExitStatus),
    Timeout,
    Io(io::Error),
}

/// A pidfd of `child`, which polls readable once it exits; `None` where the kernel has none
/// (before 5.3): then waits poll at short intervals.
fn pidfd(child: &Child) -> Option<OwnedFd> {
    // SAFETY: a plain syscall; the fd is owned right after.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    // SAFETY: a fresh descriptor nobody else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// poll(2) on `fds` until one is readable or `deadline`; with no pidfd, at most 20 ms at a time.
fn poll_until(fds: &[&OwnedFd], deadline: Instant, capped: bool) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    let left = if capped { left.min(Duration::from_millis(20)) } else { left };
    let mut pfds: Vec<libc::pollfd> =
        fds.iter().map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
    let ms = left.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pfds` is a valid array of its length for the call.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms.max(1)) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// Wait until `path` exists, `child` exits, or `deadline`: inotify on the file's directory
/// wakes on its creation, a pidfd on the child's exit; no fixed sleep.
fn wait_for_file(path: &Path, child: &mut Child, deadline: Instant) -> std::result::Result<(), Ended> {
    let dir = path.parent().ok_or_else(|| Ended::Io(io::Error::other("no directory")))?;
    // SAFETY: a plain syscall; the fd is owned right after.
    let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
    if raw < 0 {
        return Err(Ended::Io(io::Error::last_os_error()));
    }
    // SAFETY: a fresh descriptor nobody else owns.
    let inotify = unsafe { OwnedFd::from_raw_fd(raw) };
    let cdir = CString::new(dir.as_os_str().as_bytes()).map_err(|e| Ended::Io(e.into()))?;
    // SAFETY: valid fd and NUL-terminated path.
    if unsafe { libc::inotify_add_watch(raw, cdir.as_ptr(), libc::IN_CREATE | libc::IN_MOVED_TO) } < 0 {
        return Err(Ended::Io(io::Error::last_os_error()));
    }
    let exit = pidfd(child);
    loop {
        // Checked after the watch is in place, so a creation in between is not missed.
        if path.exists() {
            return Ok(());
        }
        match child.try_wait() {
            Ok(Some(status)) => return Err(Ended::Exited(status)),
            Ok(None) => {}
            Err(e) => return Err(Ended::Io(e)),
        }
        if Instant::now() >= deadline {
            return Err(Ended::Timeout);
        }
        let mut fds = vec![&inotify];
        if let Some(p) = &exit {
            fds.push(p);
        }
        poll_until(&fds, deadline, exit.is_none()).map_err(Ended::Io)?;
        // Drain the events: what matters is re-checking the path.
        let mut buf = [0u8; 4096];
        // SAFETY: reading into a buffer of its size.
        while unsafe { libc::read(raw, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

/// Wait until `child` exits or `deadline`; `Some` with its status if it did.
fn wait_exit(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    let exit = pidfd(child);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        match &exit {
            Some(p) => poll_until(&[p], deadline, false)?,
            None => poll_until(&[], deadline, true)?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::Feature;
    use crate::scenario::WireGuardPeerSpec;

    fn skip(feature: Feature) -> std::result::Result<(), Skip> {
        Err(Skip { feature, reason: "not here".into() })
    }

    #[test]
    fn choose_prefers_the_kernel_and_names_what_is_missing() {
        use Preference::*;
        assert_eq!(choose(Auto, Ok(()), Ok(())), Ok(Kind::Kernel));
        assert_eq!(choose(Auto, skip(Feature::WireGuard), Ok(())), Ok(Kind::Userspace));
        assert_eq!(choose(Userspace, Ok(()), Ok(())), Ok(Kind::Userspace));
        let e = choose(Auto, skip(Feature::WireGuard), skip(Feature::WireGuardUserspace)).unwrap_err();
        assert!(e.starts_with("needs WireGuard (kernel) or WireGuard (userspace)"), "{e}");
        assert!(e.contains("WireGuard (kernel): not here; WireGuard (userspace): not here"), "{e}");
        let e = choose(Kernel, skip(Feature::WireGuard), Ok(())).unwrap_err();
        assert_eq!(e, "needs WireGuard (kernel) (NETPATH_WIREGUARD=kernel): not here");
        assert!("bogus".parse::<Preference>().is_err());
        assert_eq!("".parse::<Preference>(), Ok(Auto));
    }

    #[test]
    fn versions_and_names() {
        assert_eq!(parse_version("wireguard-go v0.0.20220316\n\nUserspace ...").as_deref(), Some("0.0.20220316"));
        assert_eq!(parse_version(""), None);
        let u = Implementation::Userspace { program: "/usr/bin/wireguard-go".into(), version: "0.0.20220316".into() };
        assert_eq!(u.to_string(), "userspace (wireguard-go 0.0.20220316)");
        assert_eq!(Implementation::Kernel { release: "6.18.0".into() }.to_string(), "kernel (Linux 6.18.0)");
    }

    #[test]
    fn set_args_mirror_a_wg0_conf() {
        let w = WireGuardSpec {
            netns: "peer1".into(),
            iface: "wg0".into(),
            addresses: vec!["10.0.0.1/32".parse().unwrap()],
            listen_port: Some(51820),
            mtu: None,
            peers: vec![WireGuardPeerSpec {
                peer: "peer2/wg0".into(),
                endpoint: Some("172.21.0.6:51820".parse().unwrap()),
                allowed_ips: vec!["10.0.0.2/32".parse().unwrap(), "192.168.1.0/24".parse().unwrap()],
                persistent_keepalive: Some(25),
            }],
        };
        let public = |id: &str| (id == "peer2/wg0").then(|| "PUB2".to_string());
        let args = set_args(&w, Path::new("/k/0.key"), &public).unwrap();
        assert_eq!(
            args.join(" "),
            "set wg0 private-key /k/0.key listen-port 51820 peer PUB2 endpoint 172.21.0.6:51820 \
             allowed-ips 10.0.0.2/32,192.168.1.0/24 persistent-keepalive 25"
        );
        let mut lone = w.clone();
        lone.listen_port = None;
        lone.peers[0].endpoint = None;
        lone.peers[0].allowed_ips.clear();
        lone.peers[0].persistent_keepalive = None;
        assert_eq!(set_args(&lone, Path::new("k"), &public).unwrap().join(" "), "set wg0 private-key k peer PUB2");
        lone.peers[0].peer = "nope/wg0".into();
        assert!(set_args(&lone, Path::new("k"), &public).is_err());
    }

    /// The guard's promise: a process it holds is killed and reaped when it is dropped, also
    /// without `stop` (a failed or panicking run), and its directory goes.
    #[test]
    fn drop_kills_and_reaps_and_removes_the_directory() {
        let dir = std::env::temp_dir().join(format!("netpath-wg-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("600");
        die_with_parent(&mut cmd);
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        let daemon = Daemon {
            id: "t/wg0".into(),
            netns: "t".into(),
            child,
            run_dir: dir.clone(),
            log: dir.join("log"),
            reaped: false,
        };
        let t = Tunnels { kind: Kind::Kernel, dir: dir.clone(), daemons: vec![daemon] };
        assert_eq!(t.pids(), vec![pid]);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _t = t;
            panic!("a run fails");
        }));
        assert!(r.is_err());
        // Reaped: no /proc entry, not even a zombie.
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "process {pid} is still there");
        assert!(!dir.exists());
    }

    #[test]
    fn stop_reports_a_process_that_died_and_waits_for_a_running_one() {
        let dir = std::env::temp_dir().join(format!("netpath-wg-test-stop-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("log"), "line 1\nfatal: boom\n").unwrap();
        let daemon = |program: &str, args: &[&str]| Daemon {
            id: "t/wg0".into(),
            netns: "t".into(),
            child: Command::new(program).args(args).spawn().unwrap(),
            run_dir: dir.clone(),
            log: dir.join("log"),
            reaped: false,
        };
        let mut dead = daemon("true", &[]);
        let pid = dead.child.id();
        let _ = wait_exit(&mut dead.child, Instant::now() + Duration::from_secs(5)).unwrap();
        // wait_exit reaped it through try_wait; stop must still say it had exited.
        let running = daemon("sleep", &["600"]);
        let running_pid = running.child.id();
        let t = Tunnels { kind: Kind::Kernel, dir: dir.clone(), daemons: vec![dead, running] };
        let e = t.stop().unwrap_err().to_string();
        assert!(e.contains("exited during the run"), "{e}");
        assert!(e.contains("fatal: boom"), "{e}");
        assert!(!Path::new(&format!("/proc/{running_pid}")).exists());
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        assert!(!dir.exists());
    }

    #[test]
    fn waits_for_a_file_without_sleeping_and_sees_an_exit() {
        let dir = std::env::temp_dir().join(format!("netpath-wg-test-wait-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("x.sock");
        let mut child = Command::new("sh")
            .args(["-c", &format!("sleep 0.2; touch {}; sleep 600", file.display())])
            .spawn()
            .unwrap();
        // Ok only once the file is there; the deadline would be an error.
        wait_for_file(&file, &mut child, Instant::now() + Duration::from_secs(10)).unwrap();
        assert!(file.exists());
        let _ = child.kill();
        let _ = child.wait();
        let mut quitter = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let r = wait_for_file(&dir.join("never"), &mut quitter, Instant::now() + Duration::from_secs(10));
        assert!(matches!(r, Err(Ended::Exited(s)) if s.code() == Some(3)), "{r:?}");
        let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
        let r = wait_for_file(&dir.join("never"), &mut sleeper, Instant::now() + Duration::from_millis(100));
        assert!(matches!(r, Err(Ended::Timeout)), "{r:?}");
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        fs::remove_dir_all(&dir).unwrap();
    }
}
