//! libpcap handles (interfaces, `nflog:0,1`) read by a [`ReaderThread`] inside a netns.

use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::lab::netns::NetnsEntry;
use crate::observe::reader::{LOST, ReaderThread, Source, Starting, Watch};

/// One record libpcap delivered, with its kernel timestamp.
#[derive(Debug, Clone)]
pub struct Record {
    pub ts: Duration,
    pub data: Vec<u8>,
}

/// A pcap handle read by a thread inside a netns; `stop` returns every record.
pub struct PcapThread {
    reader: ReaderThread<Record>,
    /// The handle's link type: Ethernet on veths and bridges, DLT_RAW (raw IP, no MACs) on TUN
    /// and WireGuard interfaces, NFLOG on `nflog:`; [`crate::evidence::summarize`] reads by it.
    pub linktype: pcap::Linktype,
}

/// A [`PcapThread`] whose handle is being opened.
pub struct StartingPcap(Starting<Record, pcap::Linktype>);

impl StartingPcap {
    /// Wait until the handle is active.
    pub fn ready(self) -> Result<PcapThread, String> {
        let (reader, linktype) = self.0.ready()?;
        Ok(PcapThread { reader, linktype })
    }
}

impl PcapThread {
    /// Open `device` (an interface, or `nflog:0,1`) from a thread inside `ns`, and return once
    /// the handle is active.
    pub fn start(ns: NetnsEntry, device: &str) -> Result<PcapThread, String> {
        Self::spawn(ns, device, None)?.ready()
    }

    /// Start opening `device` from a thread inside `ns`; `ready` waits until it is active.
    /// `watch` sees the records as they come.
    pub fn spawn(ns: NetnsEntry, device: &str, watch: Option<Watch<Record>>) -> Result<StartingPcap, String> {
        let dev = device.to_string();
        let starting = ReaderThread::spawn(
            ns,
            format!("pcap {device}"),
            move || {
                let cap = open(&dev)?;
                let linktype = cap.get_datalink();
                Ok((Pcap(cap, dev.starts_with("nflog")), linktype))
            },
            watch,
        )?;
        Ok(StartingPcap(starting))
    }

    /// Ask the reader to stop (see [`ReaderThread::signal`]).
    pub fn signal(&self) {
        self.reader.signal()
    }

    /// Stop reading after draining everything the kernel has already queued.
    pub fn stop(self) -> Result<Vec<Record>, String> {
        self.reader.stop()
    }
}

/// A handle, and whether it is an `nflog:` one.
struct Pcap(pcap::Capture<pcap::Active>, bool);

impl Source for Pcap {
    type Item = Record;
    fn fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
    fn drain(&mut self, out: &mut Vec<Record>) -> Result<(), String> {
        drain(&mut self.0, out)?;
        // Evidence with holes would make a packet look absent where it was not: fail instead.
        match self.0.stats() {
            // On an nflog: handle libpcap counts the socket's ENOBUFS errors as drops.
            Ok(st) if st.dropped > 0 && self.1 => {
                Err(format!("{LOST}NFLOG records: the socket buffer overflowed {} times (ENOBUFS)", st.dropped))
            }
            Ok(st) if st.dropped > 0 || st.if_dropped > 0 => Err(format!(
                "{LOST}{} frames (ps_drop {}, ps_ifdrop {}: the buffer was full)",
                st.dropped + st.if_dropped,
                st.dropped,
                st.if_dropped
            )),
            _ => Ok(()),
        }
    }
}

/// Bytes kept of each frame: every header and a probe's nonce and answer fit many times over
/// (a frame longer than this is cut in the artifacts' pcaps too). libpcap's immediate-mode ring
/// (TPACKET_V2) gives every frame a fixed slot of about SNAPLEN + 70 bytes, and a slot never
/// straddles a 4 KiB block: 954 makes it exactly 1 KiB, four to a block, where 2048 took a
/// whole block per frame.
const SNAPLEN: i32 = 954;
/// The packet ring of an interface capture: 1,536 slots. The kernel allocates and zeroes the
/// ring when the handle opens and maps every page of it into the process, so it is paid in time
/// and resident memory per captured interface (at 32 MiB, 6 interfaces cost 190 MiB and
/// 300 ms). The reader, woken by poll, empties it continuously; a ring that does overflow is
/// reported (`ps_drop`) and makes the evidence incomplete, never silently accepted.
const RING: i32 = 3 << 19;
/// An `nflog:` handle is a netlink socket, not a ring: its buffer is the socket's receive
/// buffer, which the kernel fills only as records queue up, so it can be large at no cost.
const NFLOG_RCVBUF: i32 = 32 << 20;

/// Held while an `nflog:` handle is activated. libpcap's netfilter_send_config_msg numbers its
/// requests from one unsynchronized `static seq_id` and waits, in a blocking recvfrom without a
/// timeout, for the ack whose sequence equals that static's *current* value: when two threads
/// configure NFLOG handles at once, one sees its ack carry an older number, skips it, and blocks
/// forever (seen: a CI run hung 90 min in pcap_activate, reproduced here once in ~15 runs of
/// two labs in parallel). Sequence numbers are per process, so a process-wide lock suffices.
static NFLOG_ACTIVATION: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn open(device: &str) -> Result<pcap::Capture<pcap::Active>, String> {
    let _serial = device.starts_with("nflog").then(|| NFLOG_ACTIVATION.lock().unwrap_or_else(|e| e.into_inner()));
    let cap = pcap::Capture::from_device(device)
        .and_then(|c| {
            let buffer = if device.starts_with("nflog") { NFLOG_RCVBUF } else { RING };
            c.immediate_mode(true).snaplen(SNAPLEN).buffer_size(buffer).open()
        })
        .map_err(|e| {
            let hint = if e.to_string().contains("permission") || e.to_string().contains("Operation not permitted") {
                " (needs CAP_NET_RAW and CAP_NET_ADMIN: run as root)"
            } else {
                ""
            };
            format!("open {device}: {e}{hint}")
        })?;
    let cap = cap.setnonblock().map_err(|e| format!("set {device} non-blocking: {e}"))?;
    if let Some(groups) = device.strip_prefix("nflog:") {
        // libpcap asks for its buffer with SO_RCVBUF, which net.core.rmem_max caps (208 KiB by
        // default): a burst of trace records overflowed it. As root the cap does not apply.
        let size = NFLOG_RCVBUF;
        // SAFETY: setsockopt on the handle's own fd with a correctly sized int.
        let rc = unsafe {
            libc::setsockopt(
                cap.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(format!(
                "set the receive buffer of {device}: {} (needs CAP_NET_ADMIN: run as root)",
                std::io::Error::last_os_error()
            ));
        }
        // Numbered records, so that records the kernel could not queue show as gaps.
        for group in groups.split(',').filter_map(|g| g.parse::<u16>().ok()) {
            let msg = crate::observe::trace::nflog::sequence_config(group);
            // SAFETY: send(2) of an owned buffer on the handle's own netlink socket.
            let n = unsafe { libc::send(cap.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
            if n < 0 {
                return Err(format!("number the records of {device}: {}", std::io::Error::last_os_error()));
            }
        }
    }
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
