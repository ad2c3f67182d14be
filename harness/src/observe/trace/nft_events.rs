//! nf_tables trace messages turned into [`TraceEvent`]s named like legacy TRACE lines, and
//! joined to probes by header (the trace carries headers only, never the whole nonce: see
//! [`crate::evidence::key`]).

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::event::{Hook, Ifaces, RuleKind, TraceEvent};
use super::nftrace::{NfTraceMsg, NfTraceSocket, Received, RuleIndex, RuleInfo, TraceType, family};
use super::source::{Collected, Opening, Stopping, TraceChoice, TraceReader, TraceSource, Traced};
use super::verdict::{ChainFacts, RuleText, Verdict};
use crate::caps::Feature;
use crate::error::{Error, Result};
use crate::evidence::TimedEvent;
use crate::evidence::attribute::Clues;
use crate::evidence::key::NonceOf;
use crate::evidence::packet::PacketInfo;
use crate::firewall::ebtables::TraceVia;
use crate::firewall::{Backend, Family, run_tool};
use crate::lab::netns::{Netns, NetnsEntry};
use crate::observe::reader::{ReaderThread, Source, Watch};
use crate::scenario::NetnsSpec;

/// The table netpath adds to set `nftrace` on every packet of a traced netns, so the bridge
/// family's chains (ebtables-nft's) report too; its own events are not part of any path.
pub const TRACE_TABLE: &str = "netpath_trace";

/// The nft script that makes that table in `family`: `bridge` in a netns with a bridge (so
/// ebtables-nft's chains report), `inet` in one with a native nft ruleset; at a priority before
/// raw (-300) and conntrack (-200).
pub fn trace_ruleset(family: &str) -> String {
    format!(
        "table {family} {TRACE_TABLE} {{\n\
         \tchain pre {{ type filter hook prerouting priority -400; meta nftrace set 1; }}\n\
         \tchain out {{ type filter hook output priority -400; meta nftrace set 1; }}\n\
         }}\n"
    )
}

/// A decoded trace message and when the reader took it from the socket, where known.
#[derive(Debug, Clone)]
pub struct Stamped {
    pub at: Option<Duration>,
    pub msg: NfTraceMsg,
}

/// Turn one netns's trace messages into events, in the order the kernel sent them. Each event
/// gets the headers of the latest message of the same packet (trace id) that carried them, and
/// `nonce_of` resolves them, with the payload bytes the transport header brought, to the nonce
/// of the probe packet they belong to. Each event keeps what tells its packet from another with
/// the same headers ([`Clues`]): its trace id, those payload bytes, when it was read.
pub fn to_events(
    msgs: &[Stamped],
    netns: &str,
    index: &RuleIndex,
    ifnames: &BTreeMap<u32, String>,
    nonce_of: NonceOf<'_>,
) -> Vec<TimedEvent> {
    let mut headers: BTreeMap<u32, (PacketInfo, Option<Vec<u8>>)> = BTreeMap::new();
    // The kernel sends interfaces, like headers, only with a packet's first event in a hook.
    let mut ifaces: BTreeMap<u32, (Option<u32>, Option<u32>)> = BTreeMap::new();
    let name = |i: Option<u32>| i.map(|i| ifnames.get(&i).cloned().unwrap_or_else(|| format!("if{i}")));
    let mut base: BTreeMap<u32, ChainFacts> = BTreeMap::new();
    let mut out = vec![];
    for Stamped { at, msg } in msgs {
        if let Some(info) = msg.headers() {
            let head = msg.payload_start(&info).map(<[u8]>::to_vec);
            headers.insert(msg.id, (info, head));
        }
        if msg.iif.is_some() || msg.oif.is_some() {
            ifaces.insert(msg.id, (msg.iif, msg.oif));
        }
        let Some(hook) = hook_of(msg, index) else { continue };
        let mut chain = chain_facts(msg, index);
        if let Some(c) = chain.as_mut() {
            // A user chain runs inside the base chain that jumped to it: its type and hook.
            match &c.hook {
                Some(_) => _ = base.insert(msg.id, c.clone()),
                None => {
                    if let Some(b) = base.get(&msg.id).filter(|b| b.family == c.family) {
                        (c.kind, c.hook) = (b.kind.clone(), b.hook.clone());
                    }
                }
            }
        }
        // An iptables-nft rule's comment is an xt match, not nft's own rule comment: take it
        // from the iptables text.
        let rule = index.rule_of(msg).map(|r| {
            let others = index.chain(msg.family, &msg.table, &msg.chain).map(|c| &c.handles[..]).unwrap_or_default();
            let others = others.iter().filter_map(|h| index.rule(msg.family, &msg.table, &msg.chain, *h));
            RuleText::new(
                r.text(),
                comment_of(r),
                others.map(comment_of).collect::<Vec<_>>().iter().map(Option::as_deref),
            )
        });
        let (iif, oif) = ifaces.get(&msg.id).copied().unwrap_or_default();
        let (packet, head) = headers.get(&msg.id).cloned().unwrap_or_default();
        let nonce = nonce_of(&packet, head.as_deref());
        let event = TraceEvent {
            netns: netns.to_string(),
            hook,
            ifaces: Ifaces { indev: name(iif), outdev: name(oif), ..Default::default() },
            packet,
            payload: None,
            nonce,
            source: Some(TraceChoice::Nftrace),
            verdict: verdict_of(msg, index),
            rule,
            chain,
        };
        let clues = Clues { trace_id: Some(msg.id), head, read_at: *at };
        out.push(TimedEvent { ts: at.unwrap_or_default(), event, clues });
    }
    out
}

/// The legacy-style name of a message: iptables-nft chains as `table:chain:kind:N`; in the
/// bridge family, the first rule of an ebtables chain (netpath's trace rule) as `eb:table:chain`.
fn hook_of(msg: &NfTraceMsg, index: &RuleIndex) -> Option<Hook> {
    if msg.table == TRACE_TABLE {
        return None;
    }
    match msg.family {
        family::BRIDGE => {
            let first = msg.trace_type == TraceType::Rule && index.rule_of(msg).is_some_and(|r| r.position == 1);
            first.then(|| Hook::eb(&msg.table, &msg.chain))
        }
        family::IPV4 | family::IPV6 | family::INET => {
            let (table, chain, kind, num) = index.name(msg)?;
            let kind = match kind {
                "rule" => RuleKind::Rule,
                "return" => RuleKind::Return,
                _ => RuleKind::Policy,
            };
            Some(Hook::xt(&table, &chain, kind, num))
        }
        _ => None,
    }
}

/// A rule's comment: nft's own, or for an iptables-nft rule the xt comment match in its
/// iptables text.
fn comment_of(r: &RuleInfo) -> Option<String> {
    r.comment.clone().or_else(|| {
        let words = crate::ruleset::iptables::split_words(r.iptables.as_deref()?);
        words.windows(2).find(|w| w[0] == "--comment").map(|w| w[1].clone())
    })
}
/// What the kernel says the rule or policy of `msg` decided. The kernel reports a reject as a
/// drop: the rule's own statement tells them apart.
fn verdict_of(msg: &NfTraceMsg, index: &RuleIndex) -> Option<Verdict> {
    use super::nftrace::verdict as code;
    if msg.trace_type == TraceType::Policy {
        return msg.policy.and_then(|p| match (p & 0xff) as i32 {
            code::ACCEPT => Some(Verdict::Accept),
            code::DROP => Some(Verdict::Drop),
            _ => None,
        });
    }
    if msg.is_chain_end() {
        return Some(Verdict::Return);
    }
    let v = msg.verdict.as_ref()?;
    let rule = index.rule_of(msg);
    let rejects = rule.is_some_and(|r| r.rejects || r.iptables.as_deref().is_some_and(|t| t.contains(" -j REJECT")));
    Some(match v.base() {
        code::DROP if rejects => Verdict::Reject,
        code::DROP => Verdict::Drop,
        code::ACCEPT => Verdict::Accept,
        code::QUEUE => Verdict::Queue,
        code::CONTINUE => Verdict::Continue,
        code::RETURN => Verdict::Return,
        code::JUMP => Verdict::Jump(v.chain.clone()?),
        code::GOTO => Verdict::Goto(v.chain.clone()?),
        _ => Verdict::Other(v.name().to_string()),
    })
}

/// The family of `msg`'s table and, for a base chain, its type and hook.
fn chain_facts(msg: &NfTraceMsg, index: &RuleIndex) -> Option<ChainFacts> {
    let c = index.chain(msg.family, &msg.table, &msg.chain)?;
    Some(ChainFacts { family: msg.family_name(), kind: c.kind.clone(), hook: c.hook.clone() })
}

/// nf_tables trace events as a trace source: iptables-nft and native nft chains, and the bridge
/// family's (ebtables-nft's) for frames netpath's `netpath_trace` table marks, read from an
/// `NFNLGRP_NFTRACE` socket per netns.
pub struct NftraceSource;

impl TraceSource for NftraceSource {
    fn choice(&self) -> TraceChoice {
        TraceChoice::Nftrace
    }
    fn name(&self) -> &'static str {
        "nftrace"
    }
    fn origin(&self) -> &'static str {
        "NfTrace"
    }
    fn check_backend(&self, backend: Backend) -> std::result::Result<(), String> {
        match backend {
            Backend::Nft => Ok(()),
            Backend::Legacy => Err("iptables-legacy TRACE is never reported as nf_tables trace events: with backend \
                 legacy trace with nflog (the default) or kmsg"
                .into()),
        }
    }
    fn features(&self, netns: &Traced) -> Vec<Feature> {
        let mut need = vec![Feature::NfTablesTrace];
        if netns.has_bridge {
            // The ebtables trace rules log to NFLOG group 1 under every source but kmsg.
            need.push(Feature::Nflog);
        }
        need
    }
    fn ebtables_via(&self) -> TraceVia {
        TraceVia::Nflog
    }
    fn prepare_bridge(&self, ns: &Netns) -> Result<()> {
        // nf_tables reports the bridge chains only for frames with nftrace set.
        run_tool(ns, "nft", &["-f", "-"], Some(&trace_ruleset("bridge"))).map(drop)
    }
    fn prepare_iptables(&self, _ns: &Netns, _family: Family) -> Result<()> {
        // iptables-nft's TRACE sets nftrace itself: nothing to bind.
        Ok(())
    }
    fn prepare_nft(&self, ns: &Netns) -> Result<()> {
        run_tool(ns, "nft", &["-f", "-"], Some(&trace_ruleset("inet"))).map(drop)
    }
    fn open(&self, cx: &Opening, netns: &[&NetnsSpec]) -> Result<Option<Box<dyn TraceReader>>> {
        let [n] = netns else { unreachable!("a per-netns source is opened for one netns") };
        let ns = cx.lab.netns(&n.name)?;
        let trace_err = |message: String| Error::Trace { netns: ns.name().to_string(), message };
        let watch = Box::new(cx.drops.nftrace_watcher());
        let thread = NfTraceThread::start(ns.entry()?, watch).map_err(trace_err)?;
        Ok(Some(Box::new(NftraceReader { netns: n.name.clone(), thread })))
    }
}

/// A netns's trace socket, read until stopped.
struct NftraceReader {
    netns: String,
    thread: NfTraceThread,
}

impl TraceReader for NftraceReader {
    fn signal(&self) {
        self.thread.0.signal()
    }
    fn stop(self: Box<Self>, cx: &Stopping, out: &mut Collected) -> Result<()> {
        let NftraceReader { netns, thread } = *self;
        let empty = BTreeMap::new();
        let names = cx.ifnames.get(&netns).unwrap_or(&empty);
        match thread.stop() {
            Ok(received) => {
                let ns = cx.lab.netns(&netns)?;
                let index = rule_index(ns)?;
                let (msgs, undecoded) = decode_all(&received);
                if undecoded > 0 {
                    // A message the decoder cannot read would be a hole in some packet's path.
                    out.errors.push(Error::Trace {
                        netns: netns.clone(),
                        message: format!("{undecoded} trace messages did not decode (see nftrace::wire::decode)"),
                    });
                }
                let evs = to_events(&msgs, &netns, &index, names, &|p, head| cx.nonces.get(p, head));
                out.events.insert(netns.clone(), evs);
            }
            Err(message) => out.errors.push(Error::Trace { netns, message }),
        }
        Ok(())
    }
}

/// The rules of a netns by handle, with iptables-nft's own text for its tables of each family
/// (ip6tables-nft's only where the netns has `ip6` tables).
fn rule_index(ns: &Netns) -> Result<RuleIndex> {
    let json = run_tool(ns, "nft", &["-j", "list", "ruleset"], None)?;
    let mut index = RuleIndex::from_nft_json(&json)
        .map_err(|e| Error::Trace { netns: ns.name().to_string(), message: format!("nft -j list ruleset: {e}") })?;
    for family in Family::ALL {
        if family == Family::V6 && !index.has_family(family.nfproto()) {
            continue;
        }
        let save = Backend::Nft.iptables(family).save(ns).unwrap_or_default();
        index = index.with_iptables_save_family(family.nfproto(), &save);
    }
    Ok(index)
}

/// The messages of datagrams in order, stamped with their read time, and how many messages
/// did not decode.
fn decode_all(received: &[Received]) -> (Vec<Stamped>, u64) {
    let mut undecoded = 0;
    let mut out = vec![];
    for r in received {
        let (msgs, errors) = r.decode();
        undecoded += errors;
        out.extend(msgs.into_iter().map(|msg| Stamped { at: Some(r.at), msg }));
    }
    (out, undecoded)
}

/// An nf_tables trace socket read by a thread inside the netns until stopped. The thread only
/// copies datagrams (see [`super::nftrace::NfTraceSocket::recv_batch`]) at real-time priority:
/// 130,000 events a second under load, and the kernel drops what its socket buffer cannot hold.
/// They are decoded after the run; the drop watcher decodes each batch once it is read.
struct NfTraceThread(ReaderThread<Received>);

impl NfTraceThread {
    fn start(ns: NetnsEntry, mut watch: Watch<NfTraceMsg>) -> std::result::Result<NfTraceThread, String> {
        let open = || {
            let sock = NfTraceSocket::open().map_err(|e| format!("open NFNLGRP_NFTRACE socket: {e}"))?;
            crate::observe::reader::read_in_real_time();
            Ok((TraceSocket(sock), ()))
        };
        let decoded: Watch<Received> = Box::new(move |batch: &[Received]| {
            let msgs: Vec<NfTraceMsg> = batch.iter().flat_map(|r| r.decode().0).collect();
            watch(&msgs)
        });
        Ok(NfTraceThread(ReaderThread::spawn(ns, "nftrace".into(), open, Some(decoded))?.ready()?.0))
    }

    fn stop(self) -> std::result::Result<Vec<Received>, String> {
        self.0.stop()
    }
}

struct TraceSocket(NfTraceSocket);

impl Source for TraceSocket {
    type Item = Received;
    fn fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
    fn drain(&mut self, out: &mut Vec<Received>) -> std::result::Result<(), String> {
        self.0.recv_batch(out).map_err(|e| format!("read trace events: {e}"))?;
        match self.0.overruns() {
            // A lost event would make a path look shorter than it was: fail, never guess.
            0 => Ok(()),
            n => Err(format!(
                "{}trace events: the kernel reported ENOBUFS {n} times (the socket buffer was full)",
                crate::observe::reader::LOST
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::key::Key;
    use crate::evidence::packet::L4;
    use crate::observe::trace::nftrace::{family, fixture_messages};

    const IP6T_FORWARD: &str = include_str!("fixtures/nftrace_ip6t_forward.hex");
    const IP6T_RULESET: &str = include_str!("fixtures/nftrace_ip6t_ruleset.json");
    const IP6T_SAVE: &str = include_str!("fixtures/nftrace_ip6t_save.txt");
    const NATIVE6: &str = include_str!("fixtures/nftrace_native6.hex");
    const NATIVE6_RULESET: &str = include_str!("fixtures/nftrace_native6_ruleset.json");

    fn ifnames() -> BTreeMap<u32, String> {
        [(2, "r0".to_string()), (3, "r1".to_string())].into()
    }

    /// Resolves the recorded echo request (flow label 149156) to nonce `req`, its reply to `rep`,
    /// when the 12 payload bytes the trace carries are those of the recorded ping.
    fn nonce_of(p: &PacketInfo, head: Option<&[u8]>) -> Option<Vec<u8>> {
        let ping = head == Some(&[0x9f, 0xb9, 0x0e, 0x6b, 0, 0, 0, 0, 0x80, 0xca, 0, 0][..])
            || head == Some(&[0xb2, 0xb9, 0x0e, 0x6b, 0, 0, 0, 0, 0x2c, 0xae, 0x0b, 0][..]);
        match (Key::of(p)?, ping) {
            (Key::V6 { flow_label: 149156, .. }, true) => Some(b"req".to_vec()),
            (Key::V6 { flow_label: 930166, .. }, true) => Some(b"rep".to_vec()),
            _ => None,
        }
    }

    fn path(events: &[TimedEvent]) -> Vec<(String, Option<String>)> {
        events
            .iter()
            .map(|e| &e.event)
            .map(|e| (e.hook.to_string(), e.nonce.as_ref().map(|n| String::from_utf8_lossy(n).into_owned())))
            .collect()
    }

    /// Fixture messages, read at no known time.
    fn unstamped(text: &str) -> Vec<Stamped> {
        fixture_messages(text).into_iter().map(|msg| Stamped { at: None, msg }).collect()
    }

    fn hop(hook: &str, nonce: &str) -> (String, Option<String>) {
        (hook.to_string(), Some(nonce.to_string()))
    }

    #[test]
    fn ip6tables_nft_trace_events_read_as_legacy_trace_lines_of_the_probe() {
        let msgs = unstamped(IP6T_FORWARD);
        assert!(msgs.iter().all(|m| m.msg.family == family::IPV6));
        let index = RuleIndex::from_nft_json(IP6T_RULESET).unwrap().with_iptables_save_family(family::IPV6, IP6T_SAVE);
        let events = to_events(&msgs, "router", &index, &ifnames(), &nonce_of);
        assert_eq!(
            path(&events),
            [
                hop("raw:PREROUTING:rule:1", "req"),
                hop("raw:PREROUTING:policy:3", "req"),
                hop("nat:PREROUTING:policy:1", "req"),
                hop("filter:FORWARD:rule:1", "req"),
                hop("nat:POSTROUTING:rule:1", "req"),
                hop("raw:PREROUTING:rule:1", "rep"),
                hop("raw:PREROUTING:policy:3", "rep"),
                hop("filter:FORWARD:policy:3", "rep"),
            ]
        );
        let request = &events[3].event.packet;
        assert_eq!(request.src, Some("fd00:1::2".parse().unwrap()));
        assert_eq!((request.ttl, request.flow_label, request.len), (Some(63), Some(149156), Some(104)));
        assert!(matches!(request.l4, L4::Icmp { kind: 128, seq: Some(1), .. }));
        assert_eq!(events[3].event.ifaces.outdev.as_deref(), Some("r1"));
        // The reply before de-NAT: to the router's own address.
        assert_eq!(events[5].event.packet.dst, Some("fd00:2::1".parse().unwrap()));
        // What tells the packet apart beyond its key: the trace id of its traversal (one for
        // the request's events, another for the reply's) and the payload start.
        let ids: Vec<Option<u32>> = events.iter().map(|e| e.clues.trace_id).collect();
        assert!(ids[..5].iter().all(|id| *id == ids[0]) && ids[5..].iter().all(|id| *id == ids[5]), "{ids:?}");
        assert_ne!(ids[0], ids[5]);
        assert_eq!(events[0].clues.head.as_deref(), Some(&[0x9f, 0xb9, 0x0e, 0x6b, 0, 0, 0, 0, 0x80, 0xca, 0, 0][..]));
        assert_eq!(events[0].clues.read_at, None);
    }

    #[test]
    fn native_ip6_and_inet_chains_are_traced() {
        let msgs = unstamped(NATIVE6);
        let index = RuleIndex::from_nft_json(NATIVE6_RULESET).unwrap();
        let events: Vec<TraceEvent> =
            to_events(&msgs, "router", &index, &ifnames(), &nonce_of).into_iter().map(|e| e.event).collect();
        let hooks: Vec<String> = events.iter().map(|e| e.hook.to_string()).collect();
        assert_eq!(
            hooks,
            [
                "t:pre:rule:1",
                "t:pre:policy:2",
                "t:fwdc:rule:1",
                "n:fwd6:policy:2",
                "n:post:rule:1",
                "t:pre:rule:1",
                "t:pre:policy:2",
                "t:fwdc:policy:2",
                "n:fwd6:rule:1",
                "n:fwd6:policy:2",
            ]
        );
        assert!(events[..5].iter().all(|e| e.nonce.as_deref() == Some(&b"req"[..])), "{events:?}");
        assert!(events[5..].iter().all(|e| e.nonce.as_deref() == Some(&b"rep"[..])), "{events:?}");
        // Without the payload bytes, headers alone name no probe here (see nonce_of).
        assert_eq!(nonce_of(&events[0].packet, None), None);
    }
}
