//! Named network namespaces made without spawning a process, as `ip netns add` makes them:
//! a thread unshares its netns and bind-mounts it on `/run/netns/NAME`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

use crate::error::{Error, Result};

/// Where iproute2 keeps named namespaces; `ip netns list` and `ip netns exec` see ours.
pub const NETNS_DIR: &str = "/run/netns";

/// Every namespace netpath makes starts with this, so the sweep removes netpath's and nothing else.
pub const PREFIX: &str = "netpath-";

/// A named network namespace, removed when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
    file: File,
}

impl Netns {
    /// Mirrors `ip netns add NAME`.
    pub fn create(name: &str) -> Result<Netns> {
        fs::create_dir_all(NETNS_DIR).map_err(|e| Error::netns(name, format!("create {NETNS_DIR}"), e))?;
        let path = Path::new(NETNS_DIR).join(name);
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::netns(name, format!("create {}", path.display()), e))?;
        let target = path.clone();
        // unshare() changes only the calling thread's netns: do it on a thread that then ends.
        let made = std::thread::spawn(move || -> io::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(Some("/proc/thread-self/ns/net"), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")));
        if let Err(e) = made {
            let _ = fs::remove_file(&path);
            return Err(Error::netns(name, "unshare(CLONE_NEWNET) + bind mount", e));
        }
        let file = File::open(&path).map_err(|e| Error::netns(name, "open", e))?;
        Ok(Netns { name: name.to_string(), path, file })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// An owned handle on this netns for a thread that outlives the borrow (a capture).
    pub fn entry(&self) -> Result<NetnsEntry> {
        let file = self.file.try_clone().map_err(|e| Error::netns(&self.name, "dup netns fd", e))?;
        Ok(NetnsEntry { name: self.name.clone(), file })
    }

    /// Move the calling thread into this netns (for threads that stay there).
    pub fn enter_current_thread(&self) -> Result<()> {
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::netns(&self.name, "setns", io::Error::from(e)))
    }

    /// Run `f` on a thread inside this netns and return its result, like `ip netns exec`
    /// for a closure. Sockets `f` opens stay bound to this netns after it returns.
    pub fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> Result<T> + Send,
    {
        std::thread::scope(|s| {
            s.spawn(|| {
                self.enter_current_thread()?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(Error::netns(&self.name, "closure", io::Error::other("panicked inside the netns"))))
        })
    }

    /// A command that will run inside this netns (`ip netns exec NAME PROGRAM`), without
    /// `ip`'s remount of /sys: the tools netpath runs need only the netns.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let fd = self.file.as_raw_fd();
        // SAFETY: setns is async-signal-safe; the fd stays open while `self` lives, which
        // outlives the spawn that runs this hook.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Remove this namespace now, reporting what failed (drop does the same silently).
    pub fn remove(self) -> Result<()> {
        // Drop runs too, and finds the path gone.
        remove_path(&self.path).map_err(|e| Error::netns(&self.name, "remove", e))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = remove_path(&self.path);
    }
}

/// A netns handle that can move to another thread.
#[derive(Debug)]
pub struct NetnsEntry {
    name: String,
    file: File,
}

impl NetnsEntry {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Move the calling thread into the netns.
    pub fn enter_current_thread(&self) -> Result<()> {
        setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::netns(&self.name, "setns", io::Error::from(e)))
    }
}

/// Unmount and remove a `/run/netns` file; one already gone is fine.
pub fn remove_path(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A run id unique on this machine that names its process, so the sweep can tell whether the
/// run that made a namespace is still alive: `<pid>x<random>`.
pub fn new_run_id() -> String {
    format!("{}x{:06x}", std::process::id(), crate::random::u64() & 0xff_ffff)
}

/// One namespace the sweep found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub name: String,
    /// The pid of the run that made it, when the name carries one.
    pub pid: Option<u32>,
    pub alive: bool,
}

/// netpath's namespaces on this machine, and whether the run that made each is alive.
pub fn list_leftovers() -> Result<Vec<Leftover>> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(Error::io(format!("list {NETNS_DIR}"), e)),
    };
    let mut out = vec![];
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else { continue };
        let pid = rest.split('x').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        out.push(Leftover { name, pid, alive });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
