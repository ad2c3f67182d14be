//! Waiting for a probe packet's answer: one loop for every kind, polling the probe's socket
//! until the answer comes, the deadline passes, or the trace or the kernel proves the packet
//! dropped ([`crate::observe::drops`]), so a packet that can no longer be answered does not wait
//! out its timeout.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// What one read of the socket found.
pub enum Read<T> {
    /// The wait is over: the answer, or `None` when the network said none will come (an ICMP
    /// port unreachable for a UDP probe).
    Done(Option<T>),
    /// Nothing for us yet.
    Again,
}

/// How often the drops learnt on the trace readers' threads are looked at while waiting.
const SLICE: Duration = Duration::from_millis(5);

/// How long a wait goes on once the packet is known dropped: the kernel that drops a packet
/// may refuse it first (an ICMP port unreachable before a `NO_SOCKET` drop, a REJECT rule's
/// error, ip_error's unreachable when forwarding is on), and that answer, already on its way
/// across a few veths, must still count as what the sender heard.
pub const AFTER_DROP: Duration = Duration::from_millis(100);

/// Poll `fd` and call `read` (which must not block) whenever it may have data, until `read`
/// is done, `timeout` has passed, or the grace `dropped()` returned has passed since it said the
/// packet was dropped ([`AFTER_DROP`], or none for a drop that sends nothing back).
pub fn answer<T>(
    fd: BorrowedFd<'_>,
    timeout: Duration,
    dropped: &dyn Fn() -> Option<Duration>,
    mut read: impl FnMut() -> io::Result<Read<T>>,
) -> io::Result<Option<T>> {
    let mut deadline = Instant::now() + timeout;
    let mut seen_dropped = false;
    loop {
        // Whatever is queued is read first, so an answer that arrived always counts.
        if let Read::Done(found) = read()? {
            return Ok(found);
        }
        if !seen_dropped && let Some(grace) = dropped() {
            seen_dropped = true;
            deadline = deadline.min(Instant::now() + grace);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(left.min(SLICE).as_millis() as i32 + 1).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn a_queued_answer_wins_over_a_drop_and_a_drop_ends_the_wait() {
        let (a, b) = UnixDatagram::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let read = |s: &UnixDatagram| {
            let mut buf = [0u8; 16];
            match s.recv(&mut buf) {
                Ok(n) => Ok(Read::Done(Some(buf[..n].to_vec()))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Read::Again),
                Err(e) => Err(e),
            }
        };
        b.send(b"hi").unwrap();
        let got = answer(a.as_fd(), Duration::from_secs(60), &|| Some(AFTER_DROP), || read(&a)).unwrap();
        assert_eq!(got.as_deref(), Some(&b"hi"[..]));
        // Nothing queued and the packet dropped: done without waiting out the minute, after
        // the short wait for a refusal sent before the drop.
        let t = Instant::now();
        assert_eq!(answer(a.as_fd(), Duration::from_secs(60), &|| Some(AFTER_DROP), || read(&a)).unwrap(), None);
        assert!(t.elapsed() >= AFTER_DROP && t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        // A silent drop: no refusal can be on its way, done at once.
        let t = Instant::now();
        assert_eq!(answer(a.as_fd(), Duration::from_secs(60), &|| Some(Duration::ZERO), || read(&a)).unwrap(), None);
        assert!(t.elapsed() < AFTER_DROP, "{:?}", t.elapsed());
        // Not dropped: only the deadline ends it.
        assert_eq!(answer(a.as_fd(), Duration::from_millis(20), &|| None, || read(&a)).unwrap(), None);
    }
}
