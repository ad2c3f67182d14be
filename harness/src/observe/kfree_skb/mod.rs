//! The drop source: the kernel's own account of every probe packet it dropped, from an eBPF
//! program on the `skb:kfree_skb` tracepoint (bpf/drops.bpf.c, compiled by build.rs). Beside
//! the trace sources, not one of them: a trace says which hooks a packet met, this says where
//! and why it died, also outside netfilter (forwarding off, no route, rp_filter, no socket, a
//! failed neighbour).
//!
//! Each run loads its own copy of the program, whose map holds the inodes of that run's
//! network namespaces: the kernel sends only drops in them, so runs side by side never see
//! each other's drops. The program also keeps only packets that look like a probe's (a nonce
//! at the start of an ICMP echo or UDP payload, an ICMP error, TCP); the probes' matchers then
//! tell exactly whose packet each one is ([`crate::evidence::drop`]). Records the ring buffer
//! had no room for are counted in the kernel and make the run's evidence incomplete.

pub mod event;
pub mod reasons;
pub mod symbols;

use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::RawTracePoint;
use serde::Serialize;

use crate::evidence::packet::{L4, PacketInfo};
use crate::observe::drops::Drops;
use event::RawDrop;
use reasons::Reasons;

/// The compiled program (see build.rs).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/drops.bpf.o"));

/// One probe packet the kernel dropped, named: what a report shows and `[[probe.drop]]` judges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelDrop {
    /// The netns it died in, as the scenario names it.
    pub netns: String,
    /// The `enum skb_drop_reason` name (`IP_INADDRERRORS`); `None` on kernels before 5.17,
    /// whose tracepoint has the location only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The kernel function that dropped it, with the offset (`ip_error+0x5a`).
    pub location: String,
    /// The device it was on, when it was on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// For `NETFILTER_DROP`: the rule or chain policy that dropped it, the last hook its trace
    /// met in that netns (joined in [`crate::evidence::drop`]; `None` where it is not traced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<crate::observe::trace::Hook>,
    /// When, on CLOCK_MONOTONIC.
    #[serde(skip)]
    pub ktime: Duration,
    /// What it carried when it died.
    #[serde(skip)]
    pub packet: Option<PacketInfo>,
    /// Its first bytes from the IP header on (to find its nonce).
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl KernelDrop {
    /// The function alone, without the offset (`ip_error`): what expectations name.
    pub fn function(&self) -> &str {
        self.location.split('+').next().unwrap_or(&self.location)
    }

    /// Whether the kernel named a cause that ends the packet for good: any reason but
    /// `NOT_SPECIFIED` (a clone freed on one of several ways can be that), and not on a kernel
    /// that gives none.
    pub fn proves_loss(&self) -> bool {
        self.reason.as_deref().is_some_and(|r| r != "NOT_SPECIFIED")
    }

    /// Whether the kernel that dropped it sends nothing back for this drop, so that no refusal
    /// can be on its way to the sender: a failed reverse-path check (`IP_RPFILTER`, in
    /// ip_rcv_finish_core), and a packet to forward where forwarding is off
    /// (`IP_INADDRERRORS`, in ip_error or ip6_forward: counted, no ICMP error). Checked on Linux
    /// 6.18. By reason alone: the function is named only after the probes (kallsyms is read once
    /// per run). Any other drop may follow a refusal (a REJECT rule's, the port unreachable
    /// before `NO_SOCKET`, the net unreachable before `IP_INNOROUTES`).
    pub fn silent(&self) -> bool {
        matches!(self.reason.as_deref(), Some("IP_RPFILTER" | "IP_INADDRERRORS"))
    }

    /// Whether it is an echo reply freed with `NO_SOCKET` where it arrived: ICMP has no socket
    /// for it but a raw socket (the probe's) got a copy first, so it was delivered, not lost.
    pub fn delivered_to_raw_socket(&self) -> bool {
        let echo_reply = matches!(&self.packet, Some(PacketInfo { l4: L4::Icmp { kind: 0 | 129, .. }, .. }));
        echo_reply && self.reason.as_deref() == Some("NO_SOCKET")
    }

    /// Whether it was freed because a socket that held it went away, not on its way: a probe's
    /// socket (or a capture's) closes with the answer, or a copy of the request, still queued.
    /// The kernel says `QUEUE_PURGE` where it names the reason (6.8 and later); before, the
    /// function that freed it says so (a `NOT_SPECIFIED` free in a queue purge). Checked on
    /// Linux 6.18: a reply freed at inet_sock_destruct and a request at skb_queue_purge_reason,
    /// both after the probe had its answer.
    pub fn socket_teardown(&self) -> bool {
        match self.reason.as_deref() {
            Some("QUEUE_PURGE") => true,
            None | Some("NOT_SPECIFIED") => TEARDOWN.contains(&self.function()),
            Some(_) => false,
        }
    }

    /// Whether it is an ICMPv6 echo request the kernel answered and then freed as if dropped:
    /// until Linux 6.2 icmpv6_rcv ended every message but an echo reply with `kfree_skb`
    /// ("assume failure and preserve the status quo", replaced by `consume_skb` on success with
    /// the drop reasons), so 6.1 reported each answered ping to an IPv6 address as a
    /// `NOT_SPECIFIED` drop at icmpv6_rcv; 5.10 does the same without a reason. Seen on
    /// Debian's 6.1 in neighbour-unanswered's and router-no-route's twins.
    pub fn answered_echo_request(&self) -> bool {
        let request = matches!(&self.packet, Some(PacketInfo { l4: L4::Icmp { kind: 128, .. }, .. }));
        request && matches!(self.reason.as_deref(), None | Some("NOT_SPECIFIED")) && self.function() == "icmpv6_rcv"
    }

    /// Whether the kernel freed it after it was delivered, not on its way: any of the three
    /// frees above. Before the names are known (`location` still an address) only the reasons
    /// can say so; [`read`] asks again once they are.
    pub fn delivered(&self) -> bool {
        self.delivered_to_raw_socket() || self.socket_teardown() || self.answered_echo_request()
    }

    /// `dropped in router at ip_error (IP_INADDRERRORS: ...)`, for reports.
    pub fn describe(&self) -> String {
        let dev = self.device.as_deref().map(|d| format!(" on {d}")).unwrap_or_default();
        let why = match self.reason.as_deref() {
            Some(r) => match reasons::explain(r) {
                Some(e) => format!(" ({r}: {e})"),
                None => format!(" ({r})"),
            },
            None => " (this kernel gives no reason)".into(),
        };
        let by = self.by.as_ref().map(|h| format!(" by {h}")).unwrap_or_default();
        format!("dropped in {}{dev} at {}{by}{why}", self.netns, self.function())
    }
}

/// The functions that free what a closing socket still had queued (see
/// [`KernelDrop::socket_teardown`]).
const TEARDOWN: &[&str] = &[
    "inet_sock_destruct",
    "skb_queue_purge",
    "__skb_queue_purge",
    "skb_queue_purge_reason",
    "__skb_queue_purge_reason",
    "sk_stream_kill_queues",
];

/// Which program fits this kernel: with the reason (5.17 and later) or the location only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `kfree_skb(skb, location, reason, ...)`.
    Reason,
    /// `kfree_skb(skb, location)`.
    Location,
}

impl Flavour {
    fn program(self) -> &'static str {
        match self {
            Flavour::Reason => "kfree_skb_reason",
            Flavour::Location => "kfree_skb_location",
        }
    }
}

/// The program loaded and attached, not yet reading: what `netpath caps` tries.
struct Loaded {
    bpf: aya::Ebpf,
    reasons: Reasons,
}

/// The kernel's BTF, parsed once per process: it is megabytes, and every run relocates the
/// program against it.
fn kernel_btf() -> Result<&'static aya::Btf, String> {
    static BTF: std::sync::OnceLock<Result<aya::Btf, String>> = std::sync::OnceLock::new();
    BTF.get_or_init(|| aya::Btf::from_sys_fs().map_err(|e| format!("read /sys/kernel/btf/vmlinux: {e}")))
        .as_ref()
        .map_err(Clone::clone)
}

fn load(flavour: Flavour, reasons: Reasons) -> Result<Loaded, String> {
    let mut bpf = aya::EbpfLoader::new().btf(Some(kernel_btf()?)).load(OBJECT).map_err(|e| {
        format!("load the drop program (needs BTF, /sys/kernel/btf/vmlinux, and CONFIG_BPF_EVENTS): {e}")
    })?;
    let name = flavour.program();
    let prog: &mut RawTracePoint = bpf
        .program_mut(name)
        .ok_or_else(|| format!("no program {name} in the object"))?
        .try_into()
        .map_err(|e| format!("{name}: {e}"))?;
    prog.load().map_err(|e| format!("verify {name}: {}", verifier_text(&e)))?;
    prog.attach("kfree_skb").map_err(|e| format!("attach {name} to the raw tracepoint kfree_skb: {e}"))?;
    Ok(Loaded { bpf, reasons })
}

fn verifier_text(e: &aya::programs::ProgramError) -> String {
    // The verifier's log is long: its last lines say what it refused.
    let text = format!("{e:#}");
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}

/// The flavour this kernel takes and its reasons: `Err` names what is missing.
pub fn check() -> Result<(Flavour, Reasons), String> {
    if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Err("no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF): the drop program needs BTF".into());
    }
    let reasons = reasons::running()?;
    let flavour = if reasons.any() { Flavour::Reason } else { Flavour::Location };
    Ok((flavour, reasons))
}

/// Load, attach and detach the program once: what `netpath caps` reports.
pub fn probe_feature(want: Flavour) -> Result<String, String> {
    let (flavour, reasons) = check()?;
    if want == Flavour::Reason && flavour != Flavour::Reason {
        return Err("skb:kfree_skb has no reason field (added in Linux 5.17): drops show their location only".into());
    }
    drop(load(want, reasons.clone())?);
    Ok(match want {
        Flavour::Reason => format!("raw tracepoint kfree_skb with {} drop reasons", reasons.len()),
        Flavour::Location => "raw tracepoint kfree_skb (eBPF, CO-RE)".into(),
    })
}

/// A running drop source.
pub struct DropWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<Vec<KernelDrop>, String>>,
}

impl DropWatch {
    /// Load the program for the namespaces `netns` (scenario name, path of its netns file),
    /// and read its drops on a thread of its own, each also told to `drops` (so a probe stops
    /// waiting for a packet the kernel proved lost). Returns once the program is attached;
    /// `Ok(None)` on a kernel without BTF or the tracepoint ([`check`]), which `netpath caps`
    /// reports as the drop features missing.
    pub fn start(netns: &[(String, std::path::PathBuf)], drops: Drops) -> Result<Option<DropWatch>, String> {
        let Ok((flavour, reasons)) = check() else { return Ok(None) };
        let mut loaded = load(flavour, reasons)?;
        let mut names = std::collections::HashMap::new();
        {
            let map = loaded.bpf.map_mut("netns").ok_or("no map netns in the object")?;
            let mut map: BpfHashMap<&mut MapData, u32, u8> = BpfHashMap::try_from(map).map_err(|e| e.to_string())?;
            for (name, path) in netns {
                let inode = std::fs::metadata(path).map_err(|e| format!("stat {}: {e}", path.display()))?.ino();
                let inode = u32::try_from(inode).map_err(|_| format!("netns inode {inode} does not fit 32 bits"))?;
                map.insert(inode, 1, 0).map_err(|e| format!("netns map: {e}"))?;
                names.insert(inode, name.clone());
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("netpath-drops".into())
            .spawn(move || read(loaded, names, drops, &flag))
            .map_err(|e| format!("spawn the drop reader: {e}"))?;
        Ok(Some(DropWatch { stop, thread }))
    }

    /// Ask the reader to stop (it drains what the kernel queued first).
    pub fn signal(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Stop and return every drop seen; an error starting with [`crate::observe::reader::LOST`]
    /// if the ring buffer overflowed.
    pub fn stop(self) -> Result<Vec<KernelDrop>, String> {
        self.signal();
        self.thread
            .join()
            .unwrap_or_else(|p| Err(format!("the drop reader panicked: {}", crate::error::panic_text(&p))))
    }
}

fn read(
    mut loaded: Loaded,
    names: std::collections::HashMap<u32, String>,
    drops: Drops,
    stop: &AtomicBool,
) -> Result<Vec<KernelDrop>, String> {
    let events = loaded.bpf.take_map("events").ok_or("no map events in the object")?;
    let mut ring = RingBuf::try_from(events).map_err(|e| e.to_string())?;
    let mut out = vec![];
    let mut addresses = vec![];
    loop {
        // Read on the flag's last value only after one more drain: nothing queued is left.
        let stopping = stop.load(Ordering::Acquire);
        while let Some(item) = ring.next() {
            let Some(raw) = RawDrop::parse(&item) else { continue };
            let Some(netns) = names.get(&raw.netns) else { continue };
            let location = raw.location;
            let d = name(raw, netns, &loaded.reasons);
            if d.delivered() {
                continue;
            }
            // Beside `out`, one for one: the two are zipped when the names are known.
            addresses.push(location);
            if d.proves_loss() {
                drops.kernel(&d);
            }
            out.push(d);
        }
        if stopping {
            break;
        }
        let mut fds = [nix::poll::PollFd::new(ring.as_fd(), nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(20u8)) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(format!("poll the drop ring buffer: {e}")),
        }
    }
    let lost = loaded.bpf.map("lost").ok_or("no map lost in the object")?;
    let lost: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(lost).map_err(|e| e.to_string())?;
    let n: u64 = lost.get(&0, 0).map_err(|e| format!("read the lost counter: {e}"))?.iter().sum();
    if n > 0 {
        return Err(format!("{}{n} kernel drop records (the drop ring buffer was full)", crate::observe::reader::LOST));
    }
    // Named once the probes are done: kallsyms is read in one pass for all of them.
    let names = symbols::resolve_all(&addresses);
    for (d, a) in out.iter_mut().zip(addresses) {
        if let Some(n) = names.get(&a) {
            d.location.clone_from(n);
        }
    }
    // Kernels before QUEUE_PURGE say so only by the function, and so does icmpv6_rcv's free
    // of an answered echo request.
    out.retain(|d| !d.delivered());
    Ok(out)
}

fn name(raw: RawDrop, netns: &str, reasons: &Reasons) -> KernelDrop {
    let packet = PacketInfo::from_ip(&raw.head).or_else(|| PacketInfo::from_ip_header(&raw.head));
    KernelDrop {
        netns: netns.to_string(),
        reason: match reasons.any() {
            true => Some(reasons.name(raw.reason).map_or_else(|| format!("reason {}", raw.reason), str::to_string)),
            false => None,
        },
        location: format!("{:#x}", raw.location),
        device: raw.device,
        by: None,
        ktime: Duration::from_nanos(raw.ktime_ns),
        packet,
        bytes: raw.head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drop(reason: Option<&str>, location: &str) -> KernelDrop {
        KernelDrop {
            netns: "c1".into(),
            reason: reason.map(str::to_string),
            location: location.into(),
            device: None,
            by: None,
            ktime: Duration::ZERO,
            packet: None,
            bytes: vec![],
        }
    }

    #[test]
    fn a_closing_socket_freeing_its_queue_is_not_a_drop_on_the_way() {
        // As Linux 6.18 reported them in snat-reverse-* and docker-port-mapping runs.
        assert!(drop(Some("QUEUE_PURGE"), "inet_sock_destruct+0x1c4").socket_teardown());
        assert!(drop(Some("QUEUE_PURGE"), "skb_queue_purge_reason+0x4f").socket_teardown());
        // Kernels that name no such reason: by the function.
        assert!(drop(Some("NOT_SPECIFIED"), "skb_queue_purge+0x21").socket_teardown());
        assert!(drop(None, "inet_sock_destruct+0x8e").socket_teardown());
        // Drops on the way stay, whatever the function, and so does a named reason elsewhere.
        assert!(!drop(Some("NO_SOCKET"), "tcp_v4_rcv+0x1a2").socket_teardown());
        assert!(!drop(Some("NOT_SPECIFIED"), "neigh_invalidate+0x8c").socket_teardown());
        assert!(!drop(None, "ip_error+0x5a").socket_teardown());
        assert!(!drop(Some("NETFILTER_DROP"), "inet_sock_destruct+0x1c4").socket_teardown());
    }

    #[test]
    fn an_answered_icmpv6_echo_request_freed_by_icmpv6_rcv_is_not_a_drop() {
        let echo = |kind: u8, reason: Option<&str>, location: &str| {
            let mut d = drop(reason, location);
            d.packet =
                Some(PacketInfo { l4: L4::Icmp { kind, code: 0, id: Some(1), seq: Some(1) }, ..PacketInfo::default() });
            d
        };
        // Debian's 6.1 and 5.10: every echo request icmpv6_rcv answered.
        assert!(echo(128, Some("NOT_SPECIFIED"), "icmpv6_rcv+0x2a1").answered_echo_request());
        assert!(echo(128, None, "icmpv6_rcv+0x1f0").answered_echo_request());
        // A reason means a real drop; another message or function is not this free.
        assert!(!echo(128, Some("ICMP_CSUM"), "icmpv6_rcv+0x2a1").answered_echo_request());
        assert!(!echo(129, Some("NOT_SPECIFIED"), "icmpv6_rcv+0x2a1").answered_echo_request());
        assert!(!echo(128, Some("NOT_SPECIFIED"), "ip6_forward+0x91").answered_echo_request());
        assert!(!drop(Some("NOT_SPECIFIED"), "icmpv6_rcv+0x2a1").answered_echo_request());
    }
}
