//! Probe packets the trace shows dropped, learnt while the probes are still waiting: a packet
//! the kernel dropped at a DROP or REJECT rule, or at a built-in chain whose policy is DROP,
//! can no longer be answered, so its sender need not wait out its timeout.
//!
//! Only proof counts. A drop is taken from the trace event of that very packet at an IP hook:
//! by the nonce in its payload (NFLOG records carry the packet), or, for nf_tables trace events
//! (headers only), by ICMP echo id and sequence. Bridge hooks are left out (a flooded frame is
//! cloned: one copy dropped at a port says nothing of the others), and so is TCP, whose SYN the
//! kernel sends again after a drop (a `statistic` rule that dropped the first may let the
//! second through). Everything else waits for its timeout as before.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::evidence::packet::{L4, PacketInfo};
use crate::observe::capture::Record;
use crate::observe::trace::nftrace::{NfTraceMsg, TraceType, family, verdict};
use crate::observe::trace::{Hook, RuleKind};

/// The drops seen so far, shared by the trace readers (which add) and the probes (which ask).
#[derive(Debug, Clone, Default)]
pub struct Drops(Arc<Mutex<Seen>>);

#[derive(Debug, Default)]
struct Seen {
    nonces: HashSet<Vec<u8>>,
    /// ICMP or ICMPv6 echo (id, sequence).
    echoes: HashSet<(u16, u16)>,
}

impl Drops {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the packet carrying `nonce` was dropped.
    pub fn nonce(&self, nonce: &[u8]) -> bool {
        self.seen().nonces.contains(nonce)
    }

    /// Whether the echo request or reply `id`/`seq` was dropped.
    pub fn echo(&self, id: u16, seq: u16) -> bool {
        self.seen().echoes.contains(&(id, seq))
    }

    fn add(&self, packet: Option<&PacketInfo>, payload: Option<&[u8]>) {
        let mut seen = self.seen();
        if let Some(nonce) = payload.and_then(crate::probe::find_nonce) {
            seen.nonces.insert(nonce);
        }
        // Echo requests and replies of ICMP (8, 0) and ICMPv6 (128, 129).
        if let Some(PacketInfo { l4: L4::Icmp { kind: 0 | 8 | 128 | 129, id: Some(id), seq: Some(seq), .. }, .. }) =
            packet
        {
            seen.echoes.insert((*id, *seq));
        }
    }

    /// A probe packet the kernel itself reported dropped, with a reason that ends it
    /// ([`crate::observe::kfree_skb`]).
    pub fn kernel(&self, drop: &crate::observe::kfree_skb::KernelDrop) {
        self.add(drop.packet.as_ref(), Some(&drop.bytes));
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
                    drops.add(payload.and_then(PacketInfo::from_ip).as_ref(), payload);
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
                    drops.add(headers.get(&m.id), None);
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
        d.add(Some(&echo), Some(b"....netpath-00112233445566778899"));
        assert!(d.echo(7, 2));
        assert!(!d.echo(7, 1));
        assert!(d.nonce(b"netpath-0011223344556677"));
        assert!(!d.nonce(b"netpath-0011223344556676"));
        let unreachable =
            PacketInfo { l4: L4::Icmp { kind: 3, code: 1, id: Some(9), seq: Some(9) }, ..Default::default() };
        d.add(Some(&unreachable), None);
        assert!(!d.echo(9, 9), "only echo requests and replies are probe packets");
    }
}
