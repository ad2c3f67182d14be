//! ICMP echo probes over a raw socket: the target's kernel answers, echoing the nonce.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::new_nonce;
use super::wait::{self, Read};
use crate::error::{Error, Result};
use crate::evidence::packet::{L4, PacketInfo, contains};
use crate::lab::netns::Netns;
use crate::observe::drops::Drops;

/// One echo request and what came back for it.
#[derive(Debug, Clone)]
pub struct Echo {
    pub seq: u16,
    pub nonce: Vec<u8>,
    /// The reply as the sender's socket received it, if one came before the deadline.
    pub reply: Option<PacketInfo>,
}

/// Send `count` ICMP echo requests from `ns` to `dst`, one after the other, each with its own
/// nonce and the same ICMP id (one conntrack flow), waiting up to `timeout` for each reply.
/// Mirrors `ip netns exec NS ping -c COUNT -W TIMEOUT DST`.
/// A packet the trace shows dropped (`drops`) is not waited for.
pub fn icmp_echo(ns: &Netns, dst: Ipv4Addr, count: u16, timeout: Duration, drops: &Drops) -> Result<(u16, Vec<Echo>)> {
    let id = (crate::random::u64() & 0xffff) as u16;
    let what = |e: io::Error| Error::Probe { probe: format!("icmp {} -> {dst}", ns.name()), message: e.to_string() };
    ns.run(|| {
        let sock = raw_icmp_socket().map_err(|e| Error::netns(ns.name(), "open raw ICMP socket", e))?;
        let mut echoes = vec![];
        for seq in 1..=count {
            let nonce = new_nonce();
            let mut payload = nonce.clone();
            payload.resize(56, 0);
            send_echo(&sock, dst, id, seq, &payload).map_err(what)?;
            let dropped = || drops.nonce(&nonce) || drops.echo(id, seq);
            let reply = wait_reply(&sock, &nonce, timeout, &dropped).map_err(what)?;
            echoes.push(Echo { seq, nonce, reply });
        }
        Ok((id, echoes))
    })
}

fn raw_icmp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let fd = unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, libc::IPPROTO_ICMP)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]) as u32).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn send_echo(sock: &OwnedFd, dst: Ipv4Addr, id: u16, seq: u16, payload: &[u8]) -> io::Result<()> {
    let mut msg = vec![8, 0, 0, 0];
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend_from_slice(payload);
    let sum = checksum(&msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    let addr = nix::sys::socket::SockaddrIn::from(SocketAddrV4::new(dst, 0));
    nix::sys::socket::sendto(sock.as_raw_fd(), &msg, &addr, nix::sys::socket::MsgFlags::empty())?;
    Ok(())
}

fn wait_reply(
    sock: &OwnedFd,
    nonce: &[u8],
    timeout: Duration,
    dropped: &dyn Fn() -> bool,
) -> io::Result<Option<PacketInfo>> {
    let mut buf = vec![0u8; 65536];
    wait::answer(sock.as_fd(), timeout, dropped, || {
        loop {
            match nix::sys::socket::recv(sock.as_raw_fd(), &mut buf, nix::sys::socket::MsgFlags::empty()) {
                Ok(n) => {
                    let pkt = &buf[..n];
                    if let Some(info) = PacketInfo::from_ip(pkt)
                        && matches!(info.l4, L4::Icmp { kind: 0, .. })
                        && contains(pkt, nonce)
                    {
                        return Ok(Read::Done(Some(info)));
                    }
                }
                Err(nix::Error::EAGAIN) => return Ok(Read::Again),
                Err(e) => return Err(e.into()),
            }
        }
    })
}
