//! The socket that collects trace events of one network namespace.
//!
//! # Keeping up (measured on 6.18, a 10,000-packet load run through the docker topology)
//!
//! The kernel multicasts every trace event as its own datagram, and drops it (the reader then
//! gets `ENOBUFS`) when the socket's queued datagrams exceed its receive buffer. The run sent
//! 325,000 events to the host netns in about 2.5 s, 130,000 a second; each queued event costs
//! 1,280 bytes of the buffer (its skb's truesize: the socket's `SO_MEMINFO` showed 4,999,680
//! bytes for 3,906 queued events). So:
//!
//! - the buffer: [`RCVBUF`] asked with SO_RCVBUFFORCE, which the kernel doubles to 256 MiB of
//!   accounting: 210,000 events, what such a run sends in 1.6 s, so a reader kept off the CPU
//!   that long still loses nothing. It is a limit, not an allocation: only queued events take
//!   memory, a few MiB when the reader keeps up;
//! - the reads: [`NfTraceSocket::recv_batch`] takes up to [`BATCH`] datagrams per `recvmmsg`
//!   call and keeps their bytes, decoding nothing ([`decode`] runs after the run, ~75 ns per
//!   event): one syscall for dozens of events instead of a peek and a read for each, 0.7 µs of
//!   the reader's time per event instead of 2.7 µs. The reader thread runs at real-time priority
//!   ([`crate::observe::reader::read_in_real_time`]). With three such runs at once, the queue
//!   peaked at 1.9 MB (32.7 MB with the former reader: a peek, a read and a decode per event at
//!   nice -10).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, SystemTime};

use netlink_sys::{Socket, protocols::NETLINK_NETFILTER};

use super::wire::{NFNLGRP_NFTRACE, NfTraceMsg, decode, split_messages};

/// A `NETLINK_NETFILTER` socket subscribed to `NFNLGRP_NFTRACE` of one network namespace.
///
/// The namespace is the one of the thread that calls [`NfTraceSocket::open`]; the socket keeps
/// it afterwards, whichever thread reads. Reads never block. Subscribing needs CAP_NET_ADMIN
/// in that namespace. Events are only generated while the ruleset sets nftrace
/// (`meta nftrace set 1` or iptables-nft `-j TRACE`).
#[derive(Debug)]
pub struct NfTraceSocket {
    sock: Socket,
    /// [`BATCH`] slots of [`SLOT`] bytes that `recvmmsg` fills.
    slots: Vec<u8>,
    overruns: u64,
    decode_errors: u64,
}

/// Receive buffer asked for (SO_RCVBUFFORCE as root, else SO_RCVBUF, capped by rmem_max): see
/// the module docs for the size.
pub const RCVBUF: libc::c_int = 128 << 20;

/// Datagrams taken per `recvmmsg` call.
pub const BATCH: usize = 64;

/// Room for one datagram: a trace event is one netlink message of at most ~1 KiB (two names
/// of at most 256 bytes, headers of 20 + 40 + 20 bytes, a few integers).
const SLOT: usize = 8192;

/// Datagrams as the kernel sent them, and when they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// When `recvmmsg` returned them (real time, the clock of pcap timestamps).
    pub at: Duration,
    pub bytes: Vec<u8>,
}

impl Received {
    /// The trace events in the datagram, in order, and how many messages did not decode.
    pub fn decode(&self) -> (Vec<NfTraceMsg>, u64) {
        let (mut out, mut errors) = (vec![], 0);
        for msg in split_messages(&self.bytes) {
            match decode(msg) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => {}
                Err(_) => errors += 1,
            }
        }
        (out, errors)
    }
}

/// SO_RCVBUFFORCE, which netlink-sys does not offer: it passes `rmem_max`, which a burst of
/// trace events overruns (SO_RCVBUF is capped by it).
fn force_rcvbuf(fd: RawFd, bytes: libc::c_int) -> io::Result<()> {
    // SAFETY: `bytes` lives for the call and its size is passed.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn now() -> Duration {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default()
}

impl NfTraceSocket {
    /// Opens the socket in the calling thread's network namespace, joins `NFNLGRP_NFTRACE`.
    pub fn open() -> io::Result<NfTraceSocket> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        sock.set_non_blocking(true)?;
        if force_rcvbuf(sock.as_raw_fd(), RCVBUF).is_err() {
            sock.set_rx_buf_sz(RCVBUF as usize)?;
        }
        sock.add_membership(NFNLGRP_NFTRACE)?;
        Ok(NfTraceSocket { sock, slots: vec![0; BATCH * SLOT], overruns: 0, decode_errors: 0 })
    }

    /// How many times the kernel reported that events were dropped because the receive
    /// buffer was full (`ENOBUFS`). Non-zero means the collected trace has gaps.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// How many received messages [`recv_all`](Self::recv_all) could not decode (and skipped).
    pub fn decode_errors(&self) -> u64 {
        self.decode_errors
    }

    /// The receive buffer the kernel accounts queued events against (`SO_RCVBUF`: twice what
    /// was asked).
    pub fn rcvbuf(&self) -> io::Result<usize> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` and `len` live for the call and `len` is `v`'s size.
        let r = unsafe {
            libc::getsockopt(
                self.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(v as usize) }
    }

    /// Appends every datagram queued now to `out`, without blocking and without decoding, up to
    /// [`BATCH`] per syscall; returns how many. Datagrams not sent by the kernel are skipped;
    /// `ENOBUFS` is counted in [`overruns`](Self::overruns) and reading goes on; a datagram too
    /// big for its slot (none is) is an error rather than a cut event.
    pub fn recv_batch(&mut self, out: &mut Vec<Received>) -> io::Result<usize> {
        let mut total = 0;
        loop {
            // SAFETY: zeroed mmsghdr/iovec/sockaddr_nl are valid "empty" values.
            let mut addrs: [libc::sockaddr_nl; BATCH] = unsafe { std::mem::zeroed() };
            let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (slot, (iov, (hdr, addr))) in
                self.slots.chunks_exact_mut(SLOT).zip(iovs.iter_mut().zip(hdrs.iter_mut().zip(addrs.iter_mut())))
            {
                iov.iov_base = slot.as_mut_ptr().cast();
                iov.iov_len = SLOT;
                hdr.msg_hdr.msg_name = (addr as *mut libc::sockaddr_nl).cast();
                hdr.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
                hdr.msg_hdr.msg_iov = iov;
                hdr.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: every header points at its own iovec, slot and address, all of which
            // outlive the call; BATCH is the number of headers.
            let n = unsafe {
                libc::recvmmsg(
                    self.as_raw_fd(),
                    hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(total),
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => {
                        self.overruns += 1;
                        continue;
                    }
                    _ => return Err(e),
                }
            }
            let at = now();
            for (i, hdr) in hdrs.iter().take(n as usize).enumerate() {
                let len = hdr.msg_len as usize;
                if hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len > SLOT {
                    return Err(io::Error::other(format!("a trace datagram of more than {SLOT} bytes")));
                }
                // Only the kernel (port 0) sends trace events.
                if addrs[i].nl_pid != 0 {
                    continue;
                }
                out.push(Received { at, bytes: self.slots[i * SLOT..i * SLOT + len].to_vec() });
                total += 1;
            }
            if (n as usize) < BATCH {
                return Ok(total);
            }
        }
    }

    /// Drains every queued datagram without blocking and decodes the trace events in order.
    /// Messages that are not trace events are skipped; undecodable ones are skipped and
    /// counted in [`decode_errors`](Self::decode_errors).
    pub fn recv_all(&mut self) -> io::Result<Vec<NfTraceMsg>> {
        let mut raw = vec![];
        self.recv_batch(&mut raw)?;
        let mut out = Vec::new();
        for r in &raw {
            let (msgs, errors) = r.decode();
            out.extend(msgs);
            self.decode_errors += errors;
        }
        Ok(out)
    }
}

impl AsRawFd for NfTraceSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl AsFd for NfTraceSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
