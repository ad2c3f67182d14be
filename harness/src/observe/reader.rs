//! A source read by a thread inside a netns until stopped: the one mechanism behind interface
//! captures, NFLOG and nf_tables trace collection.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::lab::netns::NetnsEntry;

/// How long opening a source may take: it is a handful of syscalls, so anything near this is a
/// hang, which must fail the run rather than block it forever.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// How a [`Source::drain`] error starts when the kernel reported a loss (a full ring or socket
/// buffer) rather than a failure: the observers turn these into
/// [`crate::Error::EvidenceIncomplete`].
pub const LOST: &str = "lost ";

/// Whether a reader's error is a loss (see [`LOST`]).
pub fn is_loss(message: &str) -> bool {
    message.starts_with(LOST)
}

/// Something a reader thread drains: a non-blocking fd and a way to take what is queued.
pub trait Source {
    type Item: Send + 'static;
    fn fd(&self) -> RawFd;
    /// Append everything queued now, without waiting for more.
    fn drain(&mut self, out: &mut Vec<Self::Item>) -> Result<(), String>;
    /// The longest the reader sleeps between drains when poll reports nothing: a stop and new
    /// data wake it at once; this bounds a wake-up the fd does not give.
    fn idle(&self) -> Duration {
        Duration::from_millis(200)
    }
}

/// Called on the reader's thread with each batch as it is read (see [`crate::observe::drops`]).
pub type Watch<T> = Box<dyn FnMut(&[T]) + Send>;

/// A running reader; `stop` returns everything it read.
pub struct ReaderThread<T> {
    stop: Arc<AtomicBool>,
    /// Written to by `stop`: the thread polls it beside its source, so a stop is seen at once
    /// rather than at the end of a poll interval (a run stops a dozen readers one after another).
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<Result<Vec<T>, String>>>,
}

fn eventfd() -> Result<OwnedFd, String> {
    // SAFETY: plain eventfd(2); the fd is owned right away.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(format!("eventfd: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A reader that falls behind loses evidence (a full ring or socket buffer), so on a busy
/// machine it must be scheduled before the threads sending probes and before other processes:
/// [`read_in_real_time`], or nice -10 for this thread where real-time scheduling is refused
/// (Linux's setpriority on a thread id affects that thread alone). nice -10 alone was not
/// enough: with the machine's two cores busy (a QEMU guest, a build), k8s-service's 200
/// connections overflowed ep1/eth0's ring (326 frames) in `cargo test`. Without CAP_SYS_NICE it
/// keeps its priority; any loss is still reported.
fn favour_this_thread() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid parameter.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0 {
        return;
    }
    // SAFETY: gettid and setpriority on the calling thread, no pointers.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, -10);
    }
}

/// For a reader that a burst fills faster than nice -10 lets it drain (the kernel log's ring,
/// an nf_tables trace socket): the lowest real-time priority, so the calling thread runs as soon
/// as data arrives, ahead of every normal process. The thread only sleeps in poll and copies, so
/// it takes no CPU from others beyond its reads. Where that is not allowed it keeps its priority.
pub fn read_in_real_time() {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sched_setscheduler on the calling thread (pid 0) with a valid parameter.
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
}

fn wake(fd: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: an 8-byte write to an eventfd we own; EAGAIN (counter full) still wakes the poll.
    unsafe { libc::write(std::os::fd::AsRawFd::as_raw_fd(fd), one.as_ptr().cast(), one.len()) };
}

/// A reader whose thread is opening its source: [`Starting::ready`] waits for it. Opening
/// several before waiting for any lets their set-up overlap (a packet socket's ring set-up and
/// close each wait out an RCU grace period, ~25 ms, in the kernel).
pub struct Starting<T, E> {
    reader: ReaderThread<T>,
    name: String,
    ready: mpsc::Receiver<Result<E, String>>,
}

impl<T: Send + 'static> ReaderThread<T> {
    /// Run `open` on a thread inside `ns` and return once it succeeded (with what it reports,
    /// e.g. a linktype), so nothing sent after this returns can be missed.
    pub fn start<S, E, F>(ns: NetnsEntry, name: String, open: F) -> Result<(ReaderThread<T>, E), String>
    where
        S: Source<Item = T>,
        E: Send + 'static,
        F: FnOnce() -> Result<(S, E), String> + Send + 'static,
    {
        Self::spawn(ns, name, open, None)?.ready()
    }

    /// Start opening: the thread runs `open` inside `ns`, then reads until stopped, showing
    /// each batch to `watch`.
    pub fn spawn<S, E, F>(
        ns: NetnsEntry,
        name: String,
        open: F,
        watch: Option<Watch<T>>,
    ) -> Result<Starting<T, E>, String>
    where
        S: Source<Item = T>,
        E: Send + 'static,
        F: FnOnce() -> Result<(S, E), String> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let wake_fd = Arc::new(eventfd()?);
        let (ready_tx, ready_rx) = mpsc::channel();
        let (flag, woken) = (stop.clone(), wake_fd.clone());
        let thread = std::thread::Builder::new()
            .name(thread_name(&name))
            .spawn(move || {
                favour_this_thread();
                let opened = ns.enter_current_thread().map_err(|e| e.to_string()).and_then(|()| open());
                let mut source = match opened {
                    Ok((source, info)) => {
                        let _ = ready_tx.send(Ok(info));
                        source
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.clone()));
                        return Err(e);
                    }
                };
                read_until_stopped(&mut source, &flag, &woken, watch)
            })
            .map_err(|e| format!("spawn {name} thread: {e}"))?;
        Ok(Starting { reader: ReaderThread { stop, wake: wake_fd, thread: Some(thread) }, name, ready: ready_rx })
    }

    /// Ask the thread to stop once it has drained what is queued; [`ReaderThread::stop`] then
    /// collects. Signalling every reader first lets their closes overlap.
    pub fn signal(&self) {
        self.stop.store(true, Ordering::SeqCst);
        wake(&self.wake);
    }

    /// Stop reading after draining everything the kernel has already queued.
    pub fn stop(mut self) -> Result<Vec<T>, String> {
        self.signal();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("reader thread panicked".into()),
            None => Ok(vec![]),
        }
    }
}

impl<T: Send + 'static, E> Starting<T, E> {
    /// Wait until the source is open (at most [`OPEN_TIMEOUT`]).
    pub fn ready(mut self) -> Result<(ReaderThread<T>, E), String> {
        let name = &self.name;
        match self.ready.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(info)) => Ok((self.reader, info)),
            Ok(Err(e)) => {
                if let Some(t) = self.reader.thread.take() {
                    let _ = t.join();
                }
                Err(e)
            }
            // The thread is stuck in a call that cannot be interrupted from here; it is left
            // behind (with its socket) so the run fails with a reason instead of hanging.
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.reader.stop.store(true, Ordering::SeqCst);
                drop(self.reader.thread.take());
                Err(format!("opening {name} did not finish within {OPEN_TIMEOUT:?} (blocked in the kernel or libpcap)"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!("{name} thread ended before it was ready")),
        }
    }
}

impl<T> Drop for ReaderThread<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        wake(&self.wake);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_until_stopped<S: Source>(
    source: &mut S,
    stop: &AtomicBool,
    wake: &OwnedFd,
    mut watch: Option<Watch<S::Item>>,
) -> Result<Vec<S::Item>, String> {
    let mut out = vec![];
    loop {
        // Read the flag before draining: a stop seen here means everything queued before it
        // is drained below, and nothing after it matters.
        let stopping = stop.load(Ordering::SeqCst);
        let before = out.len();
        source.drain(&mut out)?;
        if let Some(w) = watch.as_mut()
            && out.len() > before
        {
            w(&out[before..]);
        }
        if stopping {
            return Ok(out);
        }
        // SAFETY: the fd belongs to `source`, which outlives this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(source.fd()) };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN), PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
        // The timeout only bounds a missed wake-up; data and stops wake the poll themselves.
        let idle = PollTimeout::try_from(source.idle().as_millis() as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, idle) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
    }
}

/// A thread name made of `name`: std panics on a NUL in one, and names come from scenario
/// files (interfaces), so every control character becomes `?`.
fn thread_name(name: &str) -> String {
    name.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn any_text_makes_a_thread_name() {
        let name = super::thread_name("pcap eth\0x\n");
        assert_eq!(name, "pcap eth?x?");
        let t = std::thread::Builder::new().name(name).spawn(|| std::thread::current().name().map(str::to_string));
        assert_eq!(t.unwrap().join().unwrap().as_deref(), Some("pcap eth?x?"));
    }
}
