//! Probe packets the trace or the kernel shows dropped, learnt while the probes are still
//! waiting: a packet the kernel dropped at a DROP or REJECT rule, at a built-in chain whose
//! policy is DROP, or for a reason of its own ([`crate::observe::kfree_skb`]), can no longer be
//! answered, so its sender need not wait out its timeout.
//!
//! Only proof counts. A drop is taken from the trace event of that very packet at an IP hook:
//! by the nonce in its payload (NFLOG records carry the packet), or, for nf_tables trace events
//! (headers only), by ICMP echo id and sequence; or from the kernel's own drop of it. Bridge
//! hooks are left out (a flooded frame is cloned: one copy dropped at a port says nothing of
//! the others). A TCP SYN carries no nonce: the kernel's drops of SYNs are kept by the
//! addresses and ports they died with, and when, and the TCP probe counts those of its own
//! connection ([`Drops::syn`]): the kernel sends a dropped SYN again, so one drop alone does not
//! end its wait (see `probe/tcp.rs`).
//!
//! Each drop comes with a grace: how long the wait goes on for a refusal the dropping kernel may
//! have sent first ([`crate::probe::wait::AFTER_DROP`]), or none where the kernel proved it
//! sends nothing ([`crate::observe::kfree_skb::KernelDrop::silent`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::evidence::packet::{L4, PacketInfo};
use crate::observe::capture::Record;
use crate::observe::trace::nftrace::{NfTraceMsg, TraceType, family, verdict};
use crate::observe::trace::{Hook, RuleKind};
use crate::probe::wait::AFTER_DROP;

/// The drops seen so far, shared by the trace readers (which add) and the probes (which ask).
#[derive(Debug, Clone, Default)]
pub struct Drops(Arc<Mutex<Seen>>);

/// A TCP segment's addresses and ports, as it was when it died: (src, sport, dst, dport).
pub type Ports = (IpAddr, u16, IpAddr, u16);

#[derive(Debug, Default)]
struct Seen {
    /// By nonce, with the grace of its drop.
    nonces: HashMap<Vec<u8>, Duration>,
    /// ICMP or ICMPv6 echo (id, sequence), with the grace of its drop.
    echoes: HashMap<(u16, u16), Duration>,
    /// TCP SYNs the kernel dropped: when (CLOCK_MONOTONIC), with the grace of each drop.
    syns: BTreeMap<Ports, Vec<(Duration, Duration)>>,
}

/// The value of `NETPATH_DROPS` that keeps the kernel's drops as evidence only.
pub const EVIDENCE_ONLY: &str = "evidence-only";

/// Whether the kernel's drops end the probes' waits: yes, unless `NETPATH_DROPS=evidence-only`,
/// under which probes wait as they did before the drop source (only a trace's DROP ends an ICMP
/// or UDP wait), the drops still being evidence: the baseline `cargo bench -p netpath-cases
/// --bench suite` measures the suite against.
pub fn kernel_drops_end_waits() -> bool {
    static ENDS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENDS.get_or_init(|| std::env::var("NETPATH_DROPS").map_or(true, |v| v != EVIDENCE_ONLY))
}

/// The shorter of two graces where both are known.
fn keep_shorter(slot: &mut Duration, grace: Duration) {
    *slot = (*slot).min(grace);
}

impl Drops {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the packet carrying `nonce` was dropped: `Some(grace)` if so.
    pub fn nonce(&self, nonce: &[u8]) -> Option<Duration> {
        self.seen().nonces.get(nonce).copied()
    }

    /// Whether the echo request or reply `id`/`seq` was dropped: `Some(grace)` if so.
    pub fn echo(&self, id: u16, seq: u16) -> Option<Duration> {
        self.seen().echoes.get(&(id, seq)).copied()
    }

    /// The kernel's drops of a TCP SYN with these addresses and ports since `since`
    /// (CLOCK_MONOTONIC, as [`crate::observe::kfree_skb::KernelDrop::ktime`]), each with its
    /// grace, in the order they came.
    pub fn syn(&self, ports: Ports, since: Duration) -> Vec<Duration> {
        let seen = self.seen();
        seen.syns
            .get(&ports)
            .map(|d| d.iter().filter(|(t, _)| *t >= since).map(|(_, g)| *g).collect())
            .unwrap_or_default()
    }

    fn add(&self, packet: Option<&PacketInfo>, payload: Option<&[u8]>, grace: Duration) {
        let mut seen = self.seen();
        if let Some(nonce) = payload.and_then(crate::probe::find_nonce) {
            keep_shorter(seen.nonces.entry(nonce).or_insert(grace), grace);
        }
        // Echo requests and replies of ICMP (8, 0) and ICMPv6 (128, 129).
        if let Some(PacketInfo { l4: L4::Icmp { kind: 0 | 8 | 128 | 129, id: Some(id), seq: Some(seq), .. }, .. }) =
            packet
        {
            keep_shorter(seen.echoes.entry((*id, *seq)).or_insert(grace), grace);
        }
    }

    /// A probe packet the kernel itself reported dropped, with a reason that ends it
    /// ([`crate::observe::kfree_skb`]); nothing under `NETPATH_DROPS=evidence-only`
    /// ([`kernel_drops_end_waits`]).
    pub fn kernel(&self, drop: &crate::observe::kfree_skb::KernelDrop) {
        if !kernel_drops_end_waits() {
            return;
        }
        let grace = if drop.silent() { Duration::ZERO } else { AFTER_DROP };
        if let Some(PacketInfo { src: Some(src), dst: Some(dst), l4: L4::Tcp { sport, dport, flags, .. }, .. }) =
            &drop.packet
            && flags == "S"
        {
            self.seen().syns.entry((*src, *sport, *dst, *dport)).or_default().push((drop.ktime, grace));
            return;
        }
        self.add(drop.packet.as_ref(), Some(&drop.bytes), grace);
    }

    /// A watcher for a netns's NFLOG records (legacy TRACE): `points` says where that netns's
    /// ruleset of each family (by `NFPROTO_*`, as records name it) drops.
    pub fn nflog_watcher(&self, points: Vec<(u8, DropPoints)>) -> impl FnMut(&[Record]) + Send + 'static {
        let drops = self.clone();
        move |records| {
            for r in records {
                let Ok(rec) = crate::observe::trace::nflog::parse_record(&r.data) else { continue };
                let Some(hook) = rec.prefix.as_deref().and_then(crate::observe::trace::nflog::hook_of_prefix) else {
                    continue;
                };
                if points.iter().any(|(family, p)| *family == rec.family && p.drops(&hook)) {
                    let payload = rec.payload.as_deref();
                    drops.add(payload.and_then(PacketInfo::from_ip).as_ref(), payload, AFTER_DROP);
                }
            }
        }
    }

    /// A watcher for a netns's nf_tables trace events, whose verdicts say what was dropped.
    pub fn nftrace_watcher(&self) -> impl FnMut(&[NfTraceMsg]) + Send + 'static {
        let drops = self.clone();
        // The kernel sends a packet's headers only with its first event in a hook.
        let mut headers: BTreeMap<u32, PacketInfo> = BTreeMap::new();
        move |msgs| {
            for m in msgs {
                if let Some(info) = m.headers() {
                    headers.insert(m.id, info);
                }
                let dropped = match m.trace_type {
                    TraceType::Rule => m.verdict.as_ref().is_some_and(|v| v.base() == verdict::DROP),
                    TraceType::Policy => m.policy == Some(0),
                    _ => false,
                };
                if dropped && m.family != family::BRIDGE {
                    drops.add(headers.get(&m.id), None, AFTER_DROP);
                }
            }
        }
    }
}

/// Where an iptables ruleset drops: built-in chains with policy DROP, and the numbered rules
/// whose target is DROP or REJECT, in TRACE's numbering.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropPoints {
    policies: HashSet<(String, String)>,
    rules: HashSet<(String, String, u32)>,
}

impl DropPoints {
    /// Read an `iptables-save` ruleset. `raw_shift` is how many rules netpath put before the
    /// user's in each raw chain (its TRACE rule), which TRACE counts too.
    pub fn from_iptables(ruleset: &str, raw_shift: u32) -> DropPoints {
        let mut points = DropPoints::default();
        let mut table = String::new();
        let mut counts: BTreeMap<(String, String), u32> = BTreeMap::new();
        for line in ruleset.lines().map(str::trim) {
            if let Some(t) = line.strip_prefix('*') {
                table = t.to_string();
            } else if let Some(decl) = line.strip_prefix(':') {
                let mut words = decl.split_whitespace();
                if let (Some(chain), Some("DROP")) = (words.next(), words.next()) {
                    points.policies.insert((table.clone(), chain.to_string()));
                }
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let words: Vec<&str> = rule.split_whitespace().collect();
                let Some(chain) = words.first() else { continue };
                let shift = if table == "raw" { raw_shift } else { 0 };
                let n = counts.entry((table.clone(), chain.to_string())).or_insert(shift);
                *n += 1;
                if words.windows(2).any(|w| w[0] == "-j" && matches!(w[1], "DROP" | "REJECT")) {
                    points.rules.insert((table.clone(), chain.to_string(), *n));
                }
            }
        }
        points
    }

    /// Whether a packet that met `hook` was dropped there.
    pub fn drops(&self, hook: &Hook) -> bool {
        let Hook::Xt { table, chain, kind, num } = hook else { return false };
        match kind {
            RuleKind::Policy => self.policies.contains(&(table.clone(), chain.clone())),
            RuleKind::Rule => self.rules.contains(&(table.clone(), chain.clone(), *num)),
            RuleKind::Return => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "*raw\n-A PREROUTING -p udp -j DROP\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n\
        :FORWARD DROP [0:0]\n:DOCKER - [0:0]\n-A FORWARD -j DOCKER\n-A FORWARD -p icmp -j REJECT --reject-with icmp-host-prohibited\n\
        -A DOCKER -d 10.0.0.1 -j DROP\n-A DOCKER -j RETURN\nCOMMIT\n";

    #[test]
    fn finds_drop_policies_and_rules_in_trace_numbering() {
        let p = DropPoints::from_iptables(RULES, 1);
        let drops = |h: &str| p.drops(&h.parse().unwrap());
        assert!(drops("filter:FORWARD:policy:3"));
        assert!(!drops("filter:INPUT:policy:1"));
        assert!(!drops("filter:FORWARD:rule:1"), "a jump is not a drop");
        assert!(drops("filter:FORWARD:rule:2"), "REJECT drops the packet too");
        assert!(drops("filter:DOCKER:rule:1"));
        assert!(!drops("filter:DOCKER:return:3"));
        assert!(drops("raw:PREROUTING:rule:2"), "netpath's TRACE rule is rule 1");
        assert!(!drops("raw:PREROUTING:rule:1"));
        assert!(!drops("eb:filter:FORWARD"));
    }

    #[test]
    fn echoes_and_nonces_are_kept_apart() {
        let d = Drops::default();
        let echo = PacketInfo { l4: L4::Icmp { kind: 8, code: 0, id: Some(7), seq: Some(2) }, ..Default::default() };
        d.add(Some(&echo), Some(b"....netpath-00112233445566778899"), AFTER_DROP);
        assert_eq!(d.echo(7, 2), Some(AFTER_DROP));
        assert_eq!(d.echo(7, 1), None);
        assert_eq!(d.nonce(b"netpath-0011223344556677"), Some(AFTER_DROP));
        assert_eq!(d.nonce(b"netpath-0011223344556676"), None);
        // A silent drop of the same packet shortens the grace; a later one with a grace does not
        // lengthen it again.
        d.add(Some(&echo), None, Duration::ZERO);
        d.add(Some(&echo), None, AFTER_DROP);
        assert_eq!(d.echo(7, 2), Some(Duration::ZERO));
        let unreachable =
            PacketInfo { l4: L4::Icmp { kind: 3, code: 1, id: Some(9), seq: Some(9) }, ..Default::default() };
        d.add(Some(&unreachable), None, AFTER_DROP);
        assert_eq!(d.echo(9, 9), None, "only echo requests and replies are probe packets");
    }

    #[test]
    fn syns_are_kept_by_ports_and_time_with_a_grace_by_reason() {
        let d = Drops::default();
        let (a, b): (IpAddr, IpAddr) = ("10.9.0.1".parse().unwrap(), "10.9.0.2".parse().unwrap());
        let syn = |flags: &str, t: u64, reason: &str, location: &str| crate::observe::kfree_skb::KernelDrop {
            netns: "router".into(),
            reason: Some(reason.into()),
            location: location.into(),
            device: None,
            by: None,
            ktime: Duration::from_secs(t),
            packet: Some(PacketInfo {
                src: Some(a),
                dst: Some(b),
                l4: L4::Tcp { sport: 40000, dport: 81, flags: flags.into(), seq: Some(1), ack: Some(0) },
                ..Default::default()
            }),
            bytes: vec![],
        };
        d.kernel(&syn("S", 10, "NETFILTER_DROP", "nf_hook_slow+0x9"));
        d.kernel(&syn("S", 11, "IP_RPFILTER", "ip_rcv_finish_core+0x1"));
        d.kernel(&syn(".", 12, "NETFILTER_DROP", "nf_hook_slow+0x9"));
        let ports = (a, 40000, b, 81);
        assert_eq!(d.syn(ports, Duration::from_secs(10)), vec![AFTER_DROP, Duration::ZERO], "SYNs only, in order");
        assert_eq!(d.syn(ports, Duration::from_secs(11)), vec![Duration::ZERO], "none from before the connection");
        assert!(d.syn((a, 40001, b, 81), Duration::ZERO).is_empty());
    }
}
