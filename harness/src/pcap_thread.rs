//! A libpcap handle opened by a thread inside a netns and drained by it until stopped: the
//! shared engine of interface captures and of NFLOG trace collection.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::netns::NetnsEntry;

/// One record libpcap delivered, with its kernel timestamp.
#[derive(Debug, Clone)]
pub struct Record {
    pub ts: Duration,
    pub data: Vec<u8>,
}

/// A running reader; `stop` returns everything it read.
pub struct PcapThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Vec<Record>, String>>>,
    pub linktype: pcap::Linktype,
}

impl PcapThread {
    /// Open `device` (an interface, or `nflog:0,1`) from a thread inside `ns`, and return once
    /// the handle is active, so nothing sent after this returns can be missed.
    pub fn start(ns: NetnsEntry, device: &str) -> Result<PcapThread, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let device = device.to_string();
        let stop_flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pcap {device}"))
            .spawn(move || {
                let opened = ns.enter_current_thread().map_err(|e| e.to_string()).and_then(|()| open(&device));
                let mut cap = match opened {
                    Ok(cap) => {
                        let _ = ready_tx.send(Ok(cap.get_datalink()));
                        cap
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.clone()));
                        return Err(e);
                    }
                };
                read_until_stopped(&mut cap, &stop_flag)
            })
            .map_err(|e| format!("spawn capture thread: {e}"))?;
        match ready_rx.recv() {
            Ok(Ok(linktype)) => Ok(PcapThread { stop, thread: Some(thread), linktype }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err("capture thread ended before it was ready".into()),
        }
    }

    /// Stop reading after draining everything the kernel has already queued.
    pub fn stop(mut self) -> Result<Vec<Record>, String> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err("capture thread panicked".into()),
            None => Ok(vec![]),
        }
    }
}

impl Drop for PcapThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn open(device: &str) -> Result<pcap::Capture<pcap::Active>, String> {
    let cap = pcap::Capture::from_device(device)
        .and_then(|c| c.immediate_mode(true).snaplen(65535).buffer_size(4 << 20).open())
        .map_err(|e| {
            let hint = if e.to_string().contains("permission") || e.to_string().contains("Operation not permitted") {
                " (needs CAP_NET_RAW and CAP_NET_ADMIN: run as root)"
            } else {
                ""
            };
            format!("open {device}: {e}{hint}")
        })?;
    let cap = cap.setnonblock().map_err(|e| format!("set {device} non-blocking: {e}"))?;
    // A reader that blocks in recv() cannot see the stop flag. libpcap's nflog reader was seen
    // blocked in recv() despite non-blocking mode (it retries internally), so bound every recv.
    let timeout = libc::timeval { tv_sec: 0, tv_usec: 50_000 };
    // SAFETY: setsockopt on the handle's own fd with a correctly sized timeval.
    let rc = unsafe {
        libc::setsockopt(
            cap.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!("set a receive timeout on {device}: {}", std::io::Error::last_os_error()));
    }
    Ok(cap)
}

fn read_until_stopped(cap: &mut pcap::Capture<pcap::Active>, stop: &AtomicBool) -> Result<Vec<Record>, String> {
    let mut out = vec![];
    let fd = cap.as_raw_fd();
    loop {
        // Read the flag before draining: a stop seen here means everything queued before it
        // is drained below, and nothing after it matters.
        let stopping = stop.load(Ordering::SeqCst);
        drain(cap, &mut out)?;
        if stopping {
            return Ok(out);
        }
        // SAFETY: the fd belongs to `cap`, which outlives this borrow.
        let bfd = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut fds = [PollFd::new(bfd, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(20u16)) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
    }
}

fn drain(cap: &mut pcap::Capture<pcap::Active>, out: &mut Vec<Record>) -> Result<(), String> {
    loop {
        match cap.next_packet() {
            Ok(p) => out.push(Record {
                ts: Duration::new(p.header.ts.tv_sec as u64, p.header.ts.tv_usec as u32 * 1000),
                data: p.data.to_vec(),
            }),
            Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => return Ok(()),
            // libpcap's nflog reader reports a non-blocking socket's EAGAIN as an error.
            Err(pcap::Error::PcapError(m)) if m.contains("Resource temporarily unavailable") => return Ok(()),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Write records as a .pcap file (for artifacts).
pub fn write_pcap(path: &std::path::Path, linktype: pcap::Linktype, records: &[Record]) -> Result<(), String> {
    let dead = pcap::Capture::dead(linktype).map_err(|e| e.to_string())?;
    let mut file = dead.savefile(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for r in records {
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: r.ts.as_secs() as libc::time_t,
                tv_usec: r.ts.subsec_micros() as libc::suseconds_t,
            },
            caplen: r.data.len() as u32,
            len: r.data.len() as u32,
        };
        file.write(&pcap::Packet::new(&header, &r.data));
    }
    file.flush().map_err(|e| e.to_string())
}
