//! `netpath sweep`: remove what runs that died before their teardown (SIGKILL, a power cut of a
//! test VM) left on the machine, and nothing of a run still alive.
//!
//! A run leaves, at most:
//! - its namespaces, `/run/netns/netpath-<run id>-NAME` ([`netns`]);
//! - processes still living in them: a wireguard-go, a step's process started by a netpath
//!   before steps had PID namespaces, anything a step handed over to a daemon of the netns;
//! - its temp folders, `$TMPDIR/<prefix><run id>` ([`RunFolder`]): a step's `{run_dir}` (CNI
//!   IPAM state), the WireGuard run folder (wireguard-go's sockets and log);
//! - `net.netfilter.nf_log_all_netns` set to 1 ([`global_sysctl::recover_stale`]).
//!
//! Every run id is `<pid>x<random>` ([`netns::new_run_id`]): a run is dead when no process has
//! its pid. Processes are found by their network namespace: the inode of `/proc/PID/ns/net`
//! equals that of the leftover `/run/netns` file, and a process is signalled through a pidfd
//! opened before its netns is checked again, so a pid reused in between is never hit.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::lab::{global_sysctl, netns};

/// How long the sweep waits for the processes it SIGKILLed to be gone.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A temp folder a run makes under `$TMPDIR`, named by its run id: every kind is listed in
/// [`RunFolder::ALL`], which is how the sweep knows them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFolder {
    /// The steps' private folder, `{run_dir}` ([`crate::lab::step::Steps`]).
    Steps,
    /// The WireGuard interfaces' folder: wireguard-go's run folders and logs
    /// ([`crate::lab::wireguard::Tunnels`]).
    WireGuard,
}

impl RunFolder {
    /// Every kind of run folder.
    pub const ALL: [RunFolder; 2] = [RunFolder::Steps, RunFolder::WireGuard];

    /// What its name starts with, before the run id.
    pub fn prefix(self) -> &'static str {
        match self {
            RunFolder::Steps => "netpath-run-",
            RunFolder::WireGuard => "netpath-wg-",
        }
    }

    /// Its path for run `run_id`: `$TMPDIR/<prefix><run id>`.
    pub fn path(self, run_id: &str) -> PathBuf {
        std::env::temp_dir().join(format!("{}{run_id}", self.prefix()))
    }
}

/// The pid in a run id `<pid>x<6 hex digits>`, or `None` when `id` is not one (a test's folder
/// that happens to share a prefix is not a run's).
pub fn run_pid(id: &str) -> Option<u32> {
    let (pid, random) = id.split_once('x')?;
    let hex = random.len() == 6 && random.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (hex && digits).then(|| pid.parse().ok()).flatten()
}

/// Whether a process with this pid exists (the run that made a thing may still be using it).
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A process the sweep killed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Killed {
    pub pid: u32,
    /// Its command name (`wireguard-go`).
    pub comm: String,
    /// The leftover netns it lived in.
    pub netns: String,
}

/// What one sweep removed, and what it could not.
#[derive(Debug, Default)]
pub struct Swept {
    /// Processes living in the removed namespaces, SIGKILLed.
    pub killed: Vec<Killed>,
    /// The namespaces removed (names under `/run/netns`).
    pub namespaces: Vec<String>,
    /// The temp folders removed.
    pub folders: Vec<PathBuf>,
    /// The value `nf_log_all_netns` was restored to, if a killed run had left it set.
    pub restored: Option<String>,
    /// What failed; the rest was still swept.
    pub errors: Vec<Error>,
}

/// Remove what killed runs left; with `all`, also what runs still alive use (they will fail).
pub fn sweep(all: bool) -> Swept {
    let mut swept = Swept::default();
    let leftovers = match netns::list_leftovers() {
        Ok(l) => l.into_iter().filter(|l| all || !l.alive).collect::<Vec<_>>(),
        Err(e) => {
            swept.errors.push(e);
            vec![]
        }
    };
    // First the processes, while their namespaces can still be told by the files' inodes.
    let inodes: Vec<(u64, String)> = leftovers
        .iter()
        .filter_map(|l| Some((netns_inode(&Path::new(netns::NETNS_DIR).join(&l.name))?, l.name.clone())))
        .collect();
    swept.killed = kill_processes_in(&inodes);
    for left in leftovers {
        match netns::remove_path(&Path::new(netns::NETNS_DIR).join(&left.name)) {
            Ok(()) => swept.namespaces.push(left.name),
            Err(e) => swept.errors.push(Error::netns(&left.name, "sweep", e)),
        }
    }
    let (folders, errors) = remove_run_folders(&std::env::temp_dir(), all);
    swept.folders = folders;
    swept.errors.extend(errors);
    match global_sysctl::recover_stale() {
        Ok(v) => swept.restored = v,
        Err(e) => swept.errors.push(e),
    }
    swept
}

/// The inode of the network namespace a `/run/netns` file is bound to; `None` for a file that is
/// no namespace (not mounted: a run killed while it made it).
fn netns_inode(path: &Path) -> Option<u64> {
    let nsfs = fs::metadata("/proc/self/ns/net").ok()?.dev();
    let m = fs::metadata(path).ok()?;
    (m.dev() == nsfs).then_some(m.ino())
}

/// The netns inode of process `pid`, from `/proc/PID/ns/net` (`net:[4026532281]`).
fn netns_of(pid: u32) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    link.to_str()?.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// SIGKILL every process whose netns is one of `inodes` (inode, netns name) and wait, up to
/// [`KILL_WAIT`], until they are gone.
fn kill_processes_in(inodes: &[(u64, String)]) -> Vec<Killed> {
    if inodes.is_empty() {
        return vec![];
    }
    let pids: Vec<u32> = fs::read_dir("/proc")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    let mut killed = vec![];
    let mut handles = vec![];
    for pid in pids {
        let Some(ino) = netns_of(pid) else { continue };
        let Some((_, name)) = inodes.iter().find(|(i, _)| *i == ino) else { continue };
        // Pinned first, checked again, then signalled through the pin: a pid reused in between
        // fails the check or the signal, and no other process is hit.
        let Some(pin) = crate::contain::pidfd_open(pid) else { continue };
        if netns_of(pid) != Some(ino) {
            continue;
        }
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string();
        // SAFETY: a plain syscall on a pidfd owned here.
        let sent = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, pin.as_raw_fd(), libc::SIGKILL, std::ptr::null::<u8>(), 0)
        };
        if sent == 0 {
            killed.push(Killed { pid, comm, netns: name.clone() });
            handles.push(pin);
        }
    }
    // A pidfd polls readable once its process has exited.
    let deadline = Instant::now() + KILL_WAIT;
    for pin in &handles {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = libc::pollfd { fd: pin.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
    }
    killed
}

/// Remove the run folders ([`RunFolder`]) under `tmp` of dead runs (all with `all`): only
/// folders (never a symlink) owned by this user.
fn remove_run_folders(tmp: &Path, all: bool) -> (Vec<PathBuf>, Vec<Error>) {
    let (mut removed, mut errors) = (vec![], vec![]);
    let Ok(entries) = fs::read_dir(tmp) else { return (removed, errors) };
    let me = nix::unistd::geteuid().as_raw();
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let Some(name) = name.to_str() else { return false };
            let Some(pid) = RunFolder::ALL.iter().find_map(|f| run_pid(name.strip_prefix(f.prefix())?)) else {
                return false;
            };
            // The entry itself, not what a link points to.
            let ours = e.metadata().is_ok_and(|m| m.is_dir() && m.uid() == me);
            ours && (all || !alive(pid))
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    for dir in found {
        match fs::remove_dir_all(&dir) {
            Ok(()) => removed.push(dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => errors.push(Error::io(format!("sweep: remove {}", dir.display()), e)),
        }
    }
    (removed, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_told_from_lookalikes() {
        assert_eq!(run_pid("1234x00beef"), Some(1234));
        assert_eq!(run_pid(&netns::new_run_id()), Some(std::process::id()));
        for not in ["test-1234", "1234", "1234x00beeg", "1234x00beef0", "x00beef", "12a4x00beef", "1234x00beef-c1"] {
            assert_eq!(run_pid(not), None, "{not}");
        }
    }

    #[test]
    fn only_dead_runs_folders_of_this_user_go() {
        let tmp = std::env::temp_dir().join(format!("netpath-sweep-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        // A pid no process can have: above the kernel's PID_MAX_LIMIT (2^22).
        let dead = (1u32 << 22) + 1;
        let me = std::process::id();
        let make = |name: &str| {
            let p = tmp.join(name);
            fs::create_dir_all(&p).unwrap();
            fs::write(p.join("0.key"), "secret").unwrap();
            p
        };
        let dead_run = make(&format!("netpath-run-{dead}x00abcd"));
        let dead_wg = make(&format!("netpath-wg-{dead}x00abcd"));
        let live = make(&format!("netpath-run-{me}x00abcd"));
        let lookalike = make(&format!("netpath-wg-test-{dead}"));
        let target = make("elsewhere");
        std::os::unix::fs::symlink(&target, tmp.join(format!("netpath-run-{dead}x00beef"))).unwrap();
        let (removed, errors) = remove_run_folders(&tmp, false);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(removed, vec![dead_run.clone(), dead_wg.clone()]);
        assert!(!dead_run.exists() && !dead_wg.exists());
        assert!(live.exists() && lookalike.exists() && target.join("0.key").exists());
        // `--all` takes the live run's too, still not the lookalike or what the link points to.
        let (removed, _) = remove_run_folders(&tmp, true);
        assert_eq!(removed, vec![live]);
        assert!(lookalike.exists() && target.join("0.key").exists());
        fs::remove_dir_all(&tmp).unwrap();
    }
}
