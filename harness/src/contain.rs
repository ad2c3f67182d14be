//! Programs whose every process ends with them: a step (a user's script, a CNI plugin, netavark)
//! runs as PID 1 of a PID namespace of its own, so the kernel kills everything it started (setsid'd
//! and double-forked daemons included, whatever they did with their output) when it exits, when it
//! is killed at its deadline, and when netpath dies.
//!
//! How the three ends are reached:
//! - the kernel kills every process of a PID namespace when its PID 1 exits, and the wait for
//!   PID 1 returns only after they are all gone;
//! - at the deadline netpath SIGKILLs PID 1, which brings down the rest the same way;
//! - PID 1 has `PR_SET_PDEATHSIG(SIGKILL)`, which the kernel sends when the *thread* that forked
//!   it exits: [`in_new_pid_namespace`] forks and waits on one dedicated thread, so that thread
//!   ends only when netpath does (or when the wait is over).
//!
//! The namespace is made by `unshare(CLONE_NEWPID)` on that dedicated thread: it changes the
//! namespace of the thread's *children* only, and is thrown away with the thread.
//!
//! A process of the namespace sees itself as PID 1..N, which a `/proc` of the init namespace does
//! not know: a Go program that opens `/proc/<getpid()>/task/<gettid()>/ns/net` (the CNI plugins'
//! `ns` package does) would read another process's entry. So PID 1 also gets a mount namespace of
//! its own (a slave of the machine's: mounts it makes reach nobody else and go with it) with a
//! `/proc` of its PID namespace, as `unshare --pid --fork --mount-proc` does.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Arrange for `cmd`, spawned on the thread [`in_new_pid_namespace`] runs, to die with that
/// thread and to see a `/proc` of its own PID namespace.
pub fn prepare(cmd: &mut Command) {
    // A pidfd of netpath itself: readable once netpath has exited. PDEATHSIG set after netpath
    // died would never fire, so the child looks (None before Linux 5.3: a window of a few
    // instructions stays open there).
    let netpath = pidfd_open(std::process::id());
    // SAFETY: between fork and exec this calls only prctl, poll, unshare and mount, which are
    // async-signal-safe, on constants and a descriptor opened before the fork; it allocates
    // nothing (only an errno reaches the parent anyway).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            if let Some(fd) = &netpath {
                let mut p = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                if libc::poll(&mut p, 1, 0) > 0 && p.revents & libc::POLLIN != 0 {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
            }
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return Err(io::Error::last_os_error());
            }
            // Nothing mounted here may reach the machine's mount namespace.
            let slave = libc::MS_REC | libc::MS_SLAVE;
            if libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), slave, std::ptr::null()) != 0 {
                return Err(io::Error::last_os_error());
            }
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            if libc::mount(c"proc".as_ptr(), c"/proc".as_ptr(), c"proc".as_ptr(), flags, std::ptr::null()) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Run `f` on a thread of its own whose children are born into a fresh PID namespace; `f` must
/// spawn at most one process (the namespace's PID 1; once it is gone the namespace takes no
/// other) and wait for it. `Err` when the kernel refused the namespace.
pub fn in_new_pid_namespace<T: Send>(f: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare changes only this thread's namespace for its future children.
            if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
                let e = io::Error::last_os_error();
                return Err(with_context(e, "unshare(CLONE_NEWPID) (needs CONFIG_PID_NS and CAP_SYS_ADMIN)"));
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the thread of a step's PID namespace panicked")))
    })
}

/// A pidfd of process `pid` (`None` where the kernel has no pidfd_open, before 5.3).
pub fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: a plain syscall; the fd is owned right after.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a fresh descriptor nobody else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn with_context(e: io::Error, what: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}
