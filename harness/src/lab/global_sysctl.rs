//! The one global change netpath makes, and how it is undone.
//!
//! Everything else netpath does stays inside the namespaces of its lab. The kernel-log trace
//! source ([`crate::observe::trace::kmsg`]) cannot: the kernel writes the `TRACE:` lines of iptables-legacy
//! and the lines of ebtables `--log` rules of a netns other than the init netns to the kernel log
//! only while the init netns's `net.netfilter.nf_log_all_netns` is 1, and that sysctl exists only
//! in the init netns. [`KernelLogGuard`] sets it to 1 and puts the previous value back when it is
//! released or dropped (also when the run fails or panics), and holds an exclusive `flock` on
//! [`LOCK_FILE`] all that time, so that every netpath run that reads the kernel log, whether a
//! test thread of the same process or another process, waits for the one before it: each run
//! then sees its own lines and restores the value it found, never a value another run set.
//!
//! A run killed while it held the guard (SIGKILL, a power cut of the test VM aside) cannot restore
//! the value; the lock file keeps it (`nf_log_all_netns=0 pid=1234`), the kernel drops the dead
//! holder's lock, and the next holder (or [`recover_stale`], which `netpath sweep` can call) takes
//! that saved value as the one to restore.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// The global sysctl the kernel-log source needs.
pub const KEY: &str = "net.netfilter.nf_log_all_netns";
/// The folder of the lock file.
pub const LOCK_DIR: &str = "/run/netpath";
/// The lock every netpath run that reads the kernel log holds while it observes; while held, it
/// holds the value to restore.
pub const LOCK_FILE: &str = "/run/netpath/kmsg.lock";
/// How long a run waits for the other kernel-log runs before it gives up.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);

/// `nf_log_all_netns` set to 1 for as long as this lives, under the kernel-log lock.
#[derive(Debug)]
pub struct KernelLogGuard {
    lock: Flock<File>,
    previous: String,
    restored: bool,
}

impl KernelLogGuard {
    /// Take the lock (waiting up to [`DEFAULT_WAIT`] for the runs before), remember the value,
    /// set it to 1.
    pub fn acquire() -> Result<KernelLogGuard> {
        Self::acquire_within(DEFAULT_WAIT)
    }

    /// [`Self::acquire`], waiting at most `wait` for the lock.
    pub fn acquire_within(wait: Duration) -> Result<KernelLogGuard> {
        let mut lock = lock(wait)?;
        // A value saved in the file was left by a holder that died before restoring it: that is
        // the value the machine had, the current 1 is that run's.
        let saved = saved_value(&read_state(&mut lock)?);
        let previous = match saved {
            Some(v) => v,
            None => read()?,
        };
        write_state(&mut lock, &format!("{KEY}={previous} pid={}\n", std::process::id()))?;
        let mut guard = KernelLogGuard { lock, previous, restored: false };
        if let Err(e) = write("1") {
            // Nothing changed: forget the saved value, report why.
            let _ = guard.restore();
            return Err(e);
        }
        Ok(guard)
    }

    /// The value found before this run (restored on release).
    pub fn previous(&self) -> &str {
        &self.previous
    }

    /// Restore the value now and release the lock, reporting a failure to restore.
    pub fn release(mut self) -> Result<()> {
        self.restore()
    }

    fn restore(&mut self) -> Result<()> {
        if self.restored {
            return Ok(());
        }
        if read().ok().as_deref() != Some(self.previous.as_str()) {
            write(&self.previous)?;
        }
        // Restored: nothing for the next holder to recover.
        write_state(&mut self.lock, "")?;
        self.restored = true;
        Ok(())
    }
}

impl Drop for KernelLogGuard {
    fn drop(&mut self) {
        // Also on unwinding: a failure here cannot be reported, the lock file keeps the value for
        // the next holder.
        let _ = self.restore();
    }
}

/// The kernel-log lock alone, changing nothing: for a check that reads `nf_log_all_netns` and
/// must not see the 1 of a kernel-log run in progress (a test comparing the init netns before and
/// after its own runs, which must then not read the kernel log themselves: they would wait for
/// this lock forever).
#[derive(Debug)]
pub struct KernelLogLock(#[allow(dead_code)] Flock<File>);

impl KernelLogLock {
    pub fn acquire_within(wait: Duration) -> Result<KernelLogLock> {
        lock(wait).map(KernelLogLock)
    }
}

/// Restore what a killed kernel-log run left set, if no run holds the lock now; returns the
/// value restored, `None` when there was nothing to do (or another run holds the lock).
pub fn recover_stale() -> Result<Option<String>> {
    let Some(mut lock) = try_lock()? else { return Ok(None) };
    let Some(value) = saved_value(&read_state(&mut lock)?) else { return Ok(None) };
    write(&value)?;
    write_state(&mut lock, "")?;
    Ok(Some(value))
}

/// The current value (`0` or `1`).
pub fn read() -> Result<String> {
    // Resolved in the netns of the calling thread, which must be the init netns.
    fs::read_to_string(crate::lab::sysctl::path_of(KEY))
        .map(|s| s.trim().to_string())
        .map_err(|e| sysctl_error(e, "read"))
}

fn write(value: &str) -> Result<()> {
    fs::write(crate::lab::sysctl::path_of(KEY), format!("{value}\n")).map_err(|e| sysctl_error(e, "write"))
}

fn sysctl_error(source: io::Error, what: &str) -> Error {
    let hint = match source.kind() {
        io::ErrorKind::NotFound => {
            " (it exists only in the init netns: the kernel-log trace source needs netpath to run there)"
        }
        io::ErrorKind::PermissionDenied => " (needs root)",
        _ => "",
    };
    Error::Sysctl { netns: "init".into(), key: format!("{KEY} ({what}){hint}"), source }
}

fn open_lock_file() -> Result<File> {
    fs::create_dir_all(LOCK_DIR).map_err(|e| Error::io(format!("create {LOCK_DIR}"), e))?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(LOCK_FILE)
        .map_err(|e| Error::io(format!("open the kernel-log lock {LOCK_FILE}"), e))
}

/// An exclusive flock on a fresh open of the lock file: separate opens exclude each other also
/// inside one process, so parallel test threads queue like separate processes do.
fn lock(wait: Duration) -> Result<Flock<File>> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(lock) = try_lock()? {
            return Ok(lock);
        }
        if Instant::now() >= deadline {
            let holder = fs::read_to_string(LOCK_FILE).unwrap_or_default();
            let holder = holder.trim();
            let holder = if holder.is_empty() { String::new() } else { format!(" (holder: {holder})") };
            return Err(Error::io(
                format!("wait for the kernel-log lock {LOCK_FILE}{holder}"),
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("another netpath run has read the kernel log for more than {wait:?}"),
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn try_lock() -> Result<Option<Flock<File>>> {
    match Flock::lock(open_lock_file()?, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, nix::Error::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(Error::io(format!("flock {LOCK_FILE}"), e.into())),
    }
}

fn read_state(file: &mut File) -> Result<String> {
    let mut text = String::new();
    file.rewind()
        .and_then(|()| file.read_to_string(&mut text))
        .map_err(|e| Error::io(format!("read {}", Path::new(LOCK_FILE).display()), e))?;
    Ok(text)
}

fn write_state(file: &mut File, text: &str) -> Result<()> {
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_data())
        .map_err(|e| Error::io(format!("write {LOCK_FILE}"), e))
}

/// The value a holder saved (`nf_log_all_netns=0 pid=1234`), if the file holds one.
fn saved_value(state: &str) -> Option<String> {
    let value = state.split_whitespace().find_map(|w| w.strip_prefix(KEY)?.strip_prefix('='))?;
    (!value.is_empty() && value.chars().all(|c| c.is_ascii_digit())).then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_value_a_holder_saved() {
        assert_eq!(saved_value("net.netfilter.nf_log_all_netns=0 pid=42\n").as_deref(), Some("0"));
        assert_eq!(saved_value("net.netfilter.nf_log_all_netns=1 pid=42").as_deref(), Some("1"));
        assert_eq!(saved_value(""), None);
        assert_eq!(saved_value("net.netfilter.nf_log_all_netns= pid=42"), None);
        assert_eq!(saved_value("garbage"), None);
    }
}
