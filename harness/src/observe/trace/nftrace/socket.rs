//! The socket that collects trace events of one network namespace.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

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
    buf: Vec<u8>,
    overruns: u64,
    decode_errors: u64,
}

/// Receive buffer asked for (SO_RCVBUFFORCE as root, else SO_RCVBUF, capped by rmem_max).
const RCVBUF: libc::c_int = 64 << 20;

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
        Ok(NfTraceSocket { sock, buf: Vec::with_capacity(64 * 1024), overruns: 0, decode_errors: 0 })
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

    /// Receives one datagram (one or more netlink messages, see [`split_messages`]) without
    /// blocking; `Ok(None)` when nothing is queued. Datagrams not sent by the kernel are
    /// skipped; `ENOBUFS` is counted in [`overruns`](Self::overruns) and reading goes on.
    pub fn recv_raw(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            // Peek with MSG_TRUNC for the real size, so a datagram is never cut.
            self.buf.clear();
            let got = self.sock.recv_from(&mut self.buf, libc::MSG_PEEK | libc::MSG_TRUNC).and_then(|(want, _)| {
                self.buf.clear();
                self.buf.reserve(want);
                self.sock.recv_from(&mut self.buf, 0)
            });
            match got {
                // Only the kernel (port 0) sends trace events.
                Ok((_, from)) if from.port_number() != 0 => continue,
                Ok((n, _)) => return Ok(Some(self.buf[..n.min(self.buf.len())].to_vec())),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(None),
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => {
                        self.overruns += 1;
                        continue;
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    /// Drains every queued datagram without blocking and decodes the trace events in order.
    /// Messages that are not trace events are skipped; undecodable ones are skipped and
    /// counted in [`decode_errors`](Self::decode_errors).
    pub fn recv_all(&mut self) -> io::Result<Vec<NfTraceMsg>> {
        let mut out = Vec::new();
        while let Some(dgram) = self.recv_raw()? {
            for msg in split_messages(&dgram) {
                match decode(msg) {
                    Ok(Some(m)) => out.push(m),
                    Ok(None) => {}
                    Err(_) => self.decode_errors += 1,
                }
            }
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
