//! TCP and UDP servers inside a netns that answer every request with
//! `reply <request> from <netns>`, read by a [`ReaderThread`] until the scenario ends.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use super::answer_for;
use crate::error::{Error, Result};
use crate::lab::netns::Netns;
use crate::observe::reader::{ReaderThread, Source};
use crate::scenario::ProbeKind;

/// A running server; `stop` returns the requests it answered.
pub struct Server(ReaderThread<String>);

impl Server {
    /// Listen on `port` of every address of both families inside `ns` and answer as `name`;
    /// returns once listening.
    pub fn start(ns: &Netns, kind: ProbeKind, port: u16, name: &str) -> Result<Server> {
        let who = name.to_string();
        let fail =
            |message: String| Error::Probe { probe: format!("{kind:?} server in {name} on port {port}"), message };
        let reader = match kind {
            ProbeKind::Tcp => ReaderThread::start(ns.entry()?, format!("tcp server {port}"), move || {
                let l = dual_stack(port, TcpListener::bind).map_err(|e| format!("bind: {e}"))?;
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                Ok((Listener::Tcp(l, who), ()))
            }),
            ProbeKind::Udp => ReaderThread::start(ns.entry()?, format!("udp server {port}"), move || {
                let s = dual_stack(port, UdpSocket::bind).map_err(|e| format!("bind: {e}"))?;
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
                Ok((Listener::Udp(s, who), ()))
            }),
            other => return Err(fail(format!("a server is tcp or udp, not {other:?}"))),
        }
        .map_err(fail)?;
        Ok(Server(reader.0))
    }

    pub fn stop(self) -> std::result::Result<Vec<String>, String> {
        self.0.stop()
    }
}

/// Bind `[::]:port`, which takes IPv4 too (`net.ipv6.bindv6only` is 0 in a new netns), or
/// `0.0.0.0:port` on a kernel without IPv6.
fn dual_stack<T>(port: u16, bind: impl Fn(SocketAddr) -> std::io::Result<T>) -> std::io::Result<T> {
    match bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
        Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))),
        other => other,
    }
}

/// A peer as an IPv4 client knows itself (not `[::ffff:10.0.0.2]:40000`).
fn peer_text(peer: SocketAddr) -> String {
    SocketAddr::new(peer.ip().to_canonical(), peer.port()).to_string()
}

enum Listener {
    Tcp(TcpListener, String),
    Udp(UdpSocket, String),
}

impl Source for Listener {
    type Item = String;

    fn fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l, _) => l.as_raw_fd(),
            Listener::Udp(s, _) => s.as_raw_fd(),
        }
    }

    fn drain(&mut self, out: &mut Vec<String>) -> std::result::Result<(), String> {
        match self {
            Listener::Tcp(l, who) => loop {
                match l.accept() {
                    Ok((conn, peer)) => {
                        // A client that never sends must not stall the others for long.
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        out.push(serve(conn, peer, who));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                    Err(e) => return Err(format!("accept: {e}")),
                }
            },
            Listener::Udp(s, who) => {
                let mut buf = [0u8; 2048];
                loop {
                    match s.recv_from(&mut buf) {
                        Ok((n, peer)) => {
                            let _ = s.send_to(&answer_for(&buf[..n], who), peer);
                            out.push(format!("{}: {}", peer_text(peer), String::from_utf8_lossy(&buf[..n])));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                        Err(e) => return Err(format!("recv: {e}")),
                    }
                }
            }
        }
    }
}

fn serve(mut conn: std::net::TcpStream, peer: SocketAddr, who: &str) -> String {
    let mut buf = [0u8; 256];
    match conn.read(&mut buf) {
        Ok(n) if n > 0 => {
            let _ = conn.write_all(&answer_for(&buf[..n], who));
            format!("{}: {}", peer_text(peer), String::from_utf8_lossy(&buf[..n]))
        }
        _ => format!("{}: (no request)", peer_text(peer)),
    }
}
