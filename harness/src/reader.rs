//! A source read by a thread inside a netns until stopped: the one mechanism behind interface
//! captures, NFLOG and nf_tables trace collection.

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::netns::NetnsEntry;

/// How long opening a source may take: it is a handful of syscalls, so anything near this is a
/// hang, which must fail the run rather than block it forever.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Something a reader thread drains: a non-blocking fd and a way to take what is queued.
pub trait Source {
    type Item: Send + 'static;
    fn fd(&self) -> RawFd;
    /// Append everything queued now, without waiting for more.
    fn drain(&mut self, out: &mut Vec<Self::Item>) -> Result<(), String>;
}

/// A running reader; `stop` returns everything it read.
pub struct ReaderThread<T> {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<T>, String>>>,
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
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
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
                read_until_stopped(&mut source, &flag)
            })
            .map_err(|e| format!("spawn {name} thread: {e}"))?;
        match ready_rx.recv_timeout(OPEN_TIMEOUT) {
            Ok(Ok(info)) => Ok((ReaderThread { stop, thread: Some(thread) }, info)),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            // The thread is stuck in a call that cannot be interrupted from here; it is left
            // behind (with its socket) so the run fails with a reason instead of hanging.
            Err(mpsc::RecvTimeoutError::Timeout) => {
                stop.store(true, Ordering::SeqCst);
                Err(format!("opening {name} did not finish within {OPEN_TIMEOUT:?} (blocked in the kernel or libpcap)"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(format!("{name} thread ended before it was ready")),
        }
    }

    /// Stop reading after draining everything the kernel has already queued.
    pub fn stop(mut self) -> Result<Vec<T>, String> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("reader thread panicked".into()),
            None => Ok(vec![]),
        }
    }
}

impl<T> Drop for ReaderThread<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_until_stopped<S: Source>(source: &mut S, stop: &AtomicBool) -> Result<Vec<S::Item>, String> {
    let mut out = vec![];
    loop {
        // Read the flag before draining: a stop seen here means everything queued before it
        // is drained below, and nothing after it matters.
        let stopping = stop.load(Ordering::SeqCst);
        source.drain(&mut out)?;
        if stopping {
            return Ok(out);
        }
        // SAFETY: the fd belongs to `source`, which outlives this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(source.fd()) };
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(20u16)) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
    }
}
