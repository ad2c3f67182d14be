//! Observers that run while probes are sent: a pcap on every interface, and per traced netns
//! the trace source its backend reports through (or the one a run forces): the sources, what
//! each needs and sets up, are in [`trace::source`].
//!
//! The kernel log is the one source that changes something outside the lab: while a run reads
//! it, the init netns's `net.netfilter.nf_log_all_netns` is 1, under a lock that makes kernel-log
//! runs take turns, and the previous value is restored when the run stops observing (also when
//! it fails or panics). See [`crate::observe::trace::kmsg`] for how a run keeps only its own lines.

pub mod capture;
pub mod drops;
pub mod reader;
pub mod trace;

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::evidence::key::Nonces;
use crate::evidence::{Frame, TimedEvent};
use crate::firewall::{Backend, Family, ebtables, iptables, run_tool};
use crate::lab::Lab;
use crate::lab::global_sysctl::KernelLogGuard;
use crate::lab::netns::{Netns, NetnsEntry};
use crate::observe::capture::{PcapThread, Record};
use crate::observe::drops::{DropPoints, Drops};
use crate::observe::reader::{ReaderThread, Source, Watch};
use crate::observe::trace::kmsg::{self, KmsgThread};
use crate::observe::trace::nft_events;
use crate::observe::trace::nftrace::{NfTraceMsg, NfTraceSocket, RuleIndex};
use crate::scenario::{CapturePoint, Scenario};

pub use trace::TraceChoice;

/// Make a bridge netns's ebtables chains report (before the user's ebtables rules, so the
/// trace rule is first in every chain), to `trace`.
pub fn prepare_bridge(ns: &Netns, trace: TraceChoice) -> Result<()> {
    let tables: Vec<&str> =
        ebtables::CHAINS.iter().map(|(t, _)| *t).filter(|t| *t != "broute" || ebtables::has_table(ns, t)).collect();
    let source = trace.source();
    ebtables::restore(ns, &ebtables::trace_rules(&tables, source.ebtables_via()))?;
    source.prepare_bridge(ns)
}

/// Make a netns's native nft chains report: under nftrace, a `netpath_trace` table sets nftrace
/// on every packet before any other chain sees it (its own events are left out of paths).
pub fn prepare_nft(ns: &Netns, trace: TraceChoice) -> Result<()> {
    trace.source().prepare_nft(ns)
}

/// Make a netns's iptables chains of `family` report to `trace`, after the user's ruleset is in.
pub fn prepare_iptables(ns: &Netns, rules: &str, backend: Backend, family: Family, trace: TraceChoice) -> Result<()> {
    let source = trace.source();
    source.check_backend(backend).map_err(|message| Error::Trace { netns: ns.name().to_string(), message })?;
    backend.iptables(family).enable_trace(ns, rules)?;
    source.prepare_iptables(ns, family)
}

/// Per file name stem: the linktype and records, for artifacts.
pub type Pcaps = Vec<(String, pcap::Linktype, Vec<Record>)>;

/// Everything observed, once stopped.
pub struct Observed {
    pub frames: Vec<Frame>,
    pub events: BTreeMap<String, Vec<TimedEvent>>,
    pub pcaps: Pcaps,
}

enum TraceReader {
    Nflog(PcapThread),
    NfTrace(NfTraceThread),
}

pub struct Observers {
    captures: Vec<(CapturePoint, PcapThread)>,
    traces: Vec<(String, TraceReader)>,
    kmsg: Option<KmsgObserver>,
    drops: Drops,
}

/// The kernel log, read for every traced netns at once while the guard holds the lock.
struct KmsgObserver {
    reader: KmsgThread,
    /// The traced netns (each gets an event list, as with the per-netns sources).
    traced: Vec<String>,
    /// Those netpath put trace rules in: the only ones a line may come from.
    with_rules: Vec<String>,
    guard: KernelLogGuard,
}

impl Observers {
    /// Start everything and return once every reader is live.
    pub fn start(lab: &Lab, sc: &Scenario, trace: TraceChoice) -> Result<Observers> {
        Observers::start_at(lab, sc, trace, &sc.capture_points(), &BTreeMap::new())
    }

    /// [`Observers::start`] capturing at `points`, each netns of `sources` read with its own
    /// source (the tools of a step wrote its rules to another backend than the run's).
    pub fn start_at(
        lab: &Lab,
        sc: &Scenario,
        trace: TraceChoice,
        points: &[CapturePoint],
        sources: &BTreeMap<String, TraceChoice>,
    ) -> Result<Observers> {
        // First, since it may wait for other kernel-log runs to finish.
        let kmsg = match trace {
            TraceChoice::Kmsg => KmsgObserver::start(lab, sc)?,
            TraceChoice::Nflog | TraceChoice::Nftrace => None,
        };
        // Every handle is opened at once, then waited for: their set-up overlaps.
        let mut starting = vec![];
        for point in points.iter().cloned() {
            let ns = lab.netns(&point.netns)?;
            let capture_err =
                |message: String| Error::Capture { netns: ns.name().to_string(), iface: point.iface.clone(), message };
            let t = PcapThread::spawn(ns.entry()?, &point.iface, None).map_err(capture_err)?;
            starting.push((point, t));
        }
        let mut traces = vec![];
        let drops = Drops::default();
        for n in sc.netns.iter().filter(|n| n.trace && trace != TraceChoice::Kmsg) {
            let ns = lab.netns(&n.name)?;
            let trace = sources.get(&n.name).copied().unwrap_or(trace);
            let trace_err = |message: String| Error::Trace { netns: ns.name().to_string(), message };
            let reader = match trace {
                TraceChoice::Nflog => {
                    let device = format!("nflog:0,{}", ebtables::TRACE_GROUP);
                    let points = n
                        .iptables_rulesets()
                        .map(|(family, rules)| {
                            let shift = u32::from(!iptables::has_trace_rule(rules));
                            (family.nfproto(), DropPoints::from_iptables(rules, shift))
                        })
                        .collect();
                    let watch = Box::new(drops.nflog_watcher(points));
                    let t = PcapThread::spawn(ns.entry()?, &device, Some(watch)).and_then(|t| t.ready());
                    TraceReader::Nflog(t.map_err(trace_err)?)
                }
                TraceChoice::Nftrace => {
                    let watch = Box::new(drops.nftrace_watcher());
                    TraceReader::NfTrace(NfTraceThread::start(ns.entry()?, watch).map_err(trace_err)?)
                }
                TraceChoice::Kmsg => unreachable!("the kernel log is read once for all netns"),
            };
            traces.push((n.name.clone(), reader));
        }
        let mut captures = vec![];
        for (point, t) in starting {
            let t = t.ready().map_err(|message| Error::Capture {
                netns: lab.full_name(&point.netns),
                iface: point.iface.clone(),
                message,
            })?;
            captures.push((point, t));
        }
        Ok(Observers { captures, traces, kmsg, drops })
    }

    /// The probe packets the trace has shown dropped so far.
    pub fn drops(&self) -> &Drops {
        &self.drops
    }

    /// Stop everything after draining what the kernel queued, and turn it into evidence.
    pub fn stop(self, lab: &Lab, ifnames: &BTreeMap<String, BTreeMap<u32, String>>) -> Result<Observed> {
        let mut frames = vec![];
        let mut pcaps = vec![];
        let mut errors = vec![];
        // Signalled all at once, so their closes overlap as their opens did.
        for (_, t) in &self.captures {
            t.signal();
        }
        for (_, reader) in &self.traces {
            match reader {
                TraceReader::Nflog(t) => t.signal(),
                TraceReader::NfTrace(t) => t.0.signal(),
            }
        }
        for (point, t) in self.captures {
            let linktype = t.linktype;
            match t.stop() {
                Ok(records) => {
                    frames.extend(records.iter().map(|r| Frame {
                        point: point.clone(),
                        linktype,
                        ts: r.ts,
                        data: r.data.clone(),
                    }));
                    pcaps.push((format!("{}_{}", point.netns, point.iface), linktype, records));
                }
                Err(message) => errors.push(Error::Capture { netns: point.netns, iface: point.iface, message }),
            }
        }
        let nonces = Nonces::from_frames(&frames);
        let mut events = BTreeMap::new();
        let empty = BTreeMap::new();
        for (netns, reader) in self.traces {
            let names = ifnames.get(&netns).unwrap_or(&empty);
            match reader {
                TraceReader::Nflog(t) => {
                    let linktype = t.linktype;
                    match t.stop() {
                        Ok(records) => {
                            let parsed: Vec<(Duration, trace::nflog::NflogRecord)> = records
                                .iter()
                                .filter_map(|r| Some((r.ts, trace::nflog::parse_record(&r.data).ok()?)))
                                .collect();
                            for (group, n) in trace::nflog::lost_records(parsed.iter().map(|(_, r)| r)) {
                                errors.push(Error::Trace {
                                    netns: netns.clone(),
                                    message: format!(
                                        "{}{n} NFLOG records of group {group} (sequence gaps)",
                                        crate::observe::reader::LOST
                                    ),
                                });
                            }
                            let evs = parsed
                                .iter()
                                .filter_map(|(ts, rec)| {
                                    let event = trace::nflog::to_event(rec, &netns, names)?;
                                    Some(TimedEvent { ts: *ts, event })
                                })
                                .collect();
                            events.insert(netns.clone(), evs);
                            pcaps.push((format!("{netns}_nflog"), linktype, records));
                        }
                        Err(message) => errors.push(Error::Trace { netns, message }),
                    }
                }
                TraceReader::NfTrace(t) => match t.stop() {
                    Ok(msgs) => {
                        let ns = lab.netns(&netns)?;
                        let index = rule_index(ns)?;
                        let evs = nft_events::to_events(&msgs, &netns, &index, names, &|p, head| nonces.get(p, head))
                            .into_iter()
                            .map(|event| TimedEvent { ts: Default::default(), event })
                            .collect();
                        events.insert(netns.clone(), evs);
                    }
                    Err(message) => errors.push(Error::Trace { netns, message }),
                },
            }
        }
        if let Some(k) = self.kmsg {
            match k.stop(lab, ifnames, &frames, &nonces) {
                Ok(evs) => events.extend(evs),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(incomplete_or_many(errors));
        }
        Ok(Observed { frames, events, pcaps })
    }
}

/// Losses reported by the kernel make the whole evidence incomplete (named where each was);
/// anything else is the error it is.
fn incomplete_or_many(errors: Vec<Error>) -> Error {
    let lost = |e: &Error| match e {
        Error::Capture { netns, iface, message } if crate::observe::reader::is_loss(message) => {
            Some(format!("capture {netns}/{iface} {message}"))
        }
        Error::Trace { netns, message } if crate::observe::reader::is_loss(message) => {
            Some(format!("trace of netns {netns} {message}"))
        }
        _ => None,
    };
    let losses: Vec<String> = errors.iter().filter_map(lost).collect();
    if losses.len() == errors.len() { Error::EvidenceIncomplete { losses } } else { Error::Many(errors) }
}

impl KmsgObserver {
    /// Take the kernel-log lock, set `nf_log_all_netns`, and start reading the log from its end;
    /// `None` when no netns has trace rules (nothing would be logged).
    fn start(lab: &Lab, sc: &Scenario) -> Result<Option<KmsgObserver>> {
        let traced: Vec<String> = sc.netns.iter().filter(|n| n.trace).map(|n| n.name.clone()).collect();
        let with_rules: Vec<String> =
            sc.netns.iter().filter(|n| sc.has_trace_rules(n)).map(|n| n.name.clone()).collect();
        let Some(first) = with_rules.first() else { return Ok(None) };
        let guard = KernelLogGuard::acquire()?;
        let ns = lab.netns(first)?;
        let reader =
            KmsgThread::start(ns.entry()?).map_err(|message| Error::Trace { netns: ns.name().to_string(), message })?;
        Ok(Some(KmsgObserver { reader, traced, with_rules, guard }))
    }

    /// Stop reading, restore the sysctl and release the lock, then turn the lines into events.
    fn stop(
        self,
        lab: &Lab,
        ifnames: &BTreeMap<String, BTreeMap<u32, String>>,
        frames: &[Frame],
        nonces: &Nonces,
    ) -> Result<BTreeMap<String, Vec<TimedEvent>>> {
        let records = self.reader.stop();
        let released = self.guard.release();
        let trace_err = |message: String| Error::Trace { netns: "(kernel log)".into(), message };
        let records = records.map_err(trace_err)?;
        released?;
        let scope = kmsg::Scope {
            netns: self
                .with_rules
                .iter()
                .map(|ns| (ns.clone(), ifnames.get(ns).map(|m| m.values().cloned().collect()).unwrap_or_default()))
                .collect(),
            facts: self
                .with_rules
                .iter()
                .map(|ns| Ok((ns.clone(), netns_facts(lab, ns, frames)?)))
                .collect::<Result<_>>()?,
        };
        let packets = kmsg::Packets { seen: &|p| nonces.seen(p), nonce_of: &|p| nonces.get(p, None) };
        let mut by_netns = kmsg::to_events(&records, &scope, &packets).map_err(|e| trace_err(e.join("\n")))?;
        Ok(self
            .traced
            .into_iter()
            .map(|ns| {
                let evs = by_netns.remove(&ns).unwrap_or_default();
                (ns, evs.into_iter().map(|(ts, event)| TimedEvent { ts, event }).collect())
            })
            .collect())
    }
}

/// The MACs and addresses of a netns's interfaces, and what its captures saw.
fn netns_facts(lab: &Lab, netns: &str, frames: &[Frame]) -> Result<kmsg::NetnsFacts> {
    let mut facts =
        kmsg::NetnsFacts { macs: lab.macs(netns)?, addrs: lab.local_addresses(netns)?, ..Default::default() };
    for f in frames.iter().filter(|f| f.point.netns == netns) {
        if let Some(info) = f.info() {
            facts.frames.entry(f.point.iface.clone()).or_default().push(info);
        }
    }
    Ok(facts)
}

/// The rules of a netns by handle, with iptables-nft's own text for its tables of each family
/// (ip6tables-nft's only where the netns has `ip6` tables).
fn rule_index(ns: &crate::lab::netns::Netns) -> Result<RuleIndex> {
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

/// An nf_tables trace socket read by a thread inside the netns until stopped.
struct NfTraceThread(ReaderThread<NfTraceMsg>);

impl NfTraceThread {
    fn start(ns: NetnsEntry, watch: Watch<NfTraceMsg>) -> std::result::Result<NfTraceThread, String> {
        let open = || {
            let sock = NfTraceSocket::open().map_err(|e| format!("open NFNLGRP_NFTRACE socket: {e}"))?;
            Ok((TraceSocket(sock), ()))
        };
        Ok(NfTraceThread(ReaderThread::spawn(ns, "nftrace".into(), open, Some(watch))?.ready()?.0))
    }

    fn stop(self) -> std::result::Result<Vec<NfTraceMsg>, String> {
        self.0.stop()
    }
}

struct TraceSocket(NfTraceSocket);

impl Source for TraceSocket {
    type Item = NfTraceMsg;
    fn fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
    fn drain(&mut self, out: &mut Vec<NfTraceMsg>) -> std::result::Result<(), String> {
        out.extend(self.0.recv_all().map_err(|e| format!("read trace events: {e}"))?);
        match self.0.overruns() {
            // A lost event would make a path look shorter than it was: fail, never guess.
            0 => Ok(()),
            n => Err(format!("{}{n} trace events (ENOBUFS: the socket buffer was full)", crate::observe::reader::LOST)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_make_the_evidence_incomplete_and_other_errors_stay_what_they_are() {
        let capture = Error::Capture {
            netns: "host".into(),
            iface: "eth0".into(),
            message: format!(
                "{}12 frames (ps_drop 12, ps_ifdrop 0: the buffer was full)",
                crate::observe::reader::LOST
            ),
        };
        let trace = Error::Trace {
            netns: "host".into(),
            message: format!("{}3 NFLOG records of group 0 (sequence gaps)", crate::observe::reader::LOST),
        };
        let e = incomplete_or_many(vec![capture, trace]);
        assert!(matches!(&e, Error::EvidenceIncomplete { losses } if losses.len() == 2), "{e:?}");
        let text = e.to_string();
        assert!(
            text.starts_with("evidence incomplete, no verdict: capture host/eth0 lost 12 frames (ps_drop 12"),
            "{text}"
        );
        assert!(text.contains("trace of netns host lost 3 NFLOG records of group 0 (sequence gaps)"), "{text}");
        let other = Error::Trace { netns: "host".into(), message: "read: socket closed".into() };
        assert!(matches!(incomplete_or_many(vec![other]), Error::Many(_)));
    }
}
