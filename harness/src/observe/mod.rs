//! Observers that run while probes are sent: a pcap on every interface, and per traced netns
//! the trace source its backend reports through (or the one a run forces): the sources, what
//! each needs, sets up and reads, are in [`trace::source`]; this module only opens, signals and
//! stops their [`trace::source::TraceReader`]s, never naming one.
//!
//! The kernel log is the one source that changes something outside the lab: while a run reads
//! it, the init netns's `net.netfilter.nf_log_all_netns` is 1, under a lock that makes kernel-log
//! runs take turns, and the previous value is restored when the run stops observing (also when
//! it fails or panics). See [`crate::observe::trace::kmsg`] for how a run keeps only its own lines.

pub mod capture;
pub mod drops;
pub mod kfree_skb;
pub mod reader;
pub mod trace;

use std::collections::BTreeMap;

use crate::error::{Error, Incomplete, Result};
use crate::evidence::key::Nonces;
use crate::evidence::{Frame, TimedEvent};
use crate::firewall::{Backend, Family, ebtables};
use crate::lab::Lab;
use crate::lab::netns::Netns;
use crate::observe::capture::{PcapThread, Record};
use crate::observe::drops::Drops;
use crate::observe::kfree_skb::{DropWatch, KernelDrop};
use crate::observe::trace::source::{Collected, Opening, Stopping, TraceReader};
use crate::scenario::{CapturePoint, NetnsSpec, Scenario};

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
    /// The probe-like packets the kernel dropped in the lab's namespaces (empty where the drop
    /// source is not available: see [`Observers::kernel_drops`]).
    pub drops: Vec<KernelDrop>,
}

pub struct Observers {
    captures: Vec<(CapturePoint, PcapThread)>,
    /// The trace readers, in the order they were opened.
    traces: Vec<Box<dyn TraceReader>>,
    drops: Drops,
    /// The drop source, on kernels that have it.
    kernel_drops: Option<DropWatch>,
}

impl Observers {
    /// Start everything and return once every reader is live.
    pub fn start(lab: &Lab, sc: &Scenario, trace: TraceChoice) -> Result<Observers> {
        Observers::start_at(lab, sc, trace, &sc.capture_points(), &BTreeMap::new())
    }

    /// [`Observers::start`] capturing at `points`, each netns of `sources` read with its own
    /// source (the one that sees the backend a step's tools wrote its rules to). A
    /// [global](trace::TraceSource::global) run source reads every traced netns itself.
    pub fn start_at(
        lab: &Lab,
        sc: &Scenario,
        trace: TraceChoice,
        points: &[CapturePoint],
        sources: &BTreeMap<String, TraceChoice>,
    ) -> Result<Observers> {
        let drops = Drops::default();
        // First, so that it sees a drop of the first packet; a kernel without it only has the
        // trace's account of drops (`netpath caps` says why).
        let namespaces: Vec<(String, std::path::PathBuf)> = sc
            .netns
            .iter()
            .map(|n| Ok((n.name.clone(), lab.netns(&n.name)?.path().to_path_buf())))
            .collect::<Result<_>>()?;
        let kernel_drops = DropWatch::start(&namespaces, drops.clone())
            .map_err(|message| Error::Trace { netns: "(every netns: kernel drops)".into(), message })?;
        let cx = Opening { lab, scenario: sc, drops: &drops, step_sources: sources };
        let traced: Vec<&NetnsSpec> = sc.netns.iter().filter(|n| n.trace).collect();
        let run_source = trace.source();
        let mut traces = vec![];
        // First, since it may wait for other runs reading the same global source to finish.
        if run_source.global() {
            traces.extend(run_source.open(&cx, &traced)?);
        }
        // Every handle is opened at once, then waited for: their set-up overlaps.
        let mut starting = vec![];
        for point in points.iter().cloned() {
            let ns = lab.netns(&point.netns)?;
            let capture_err =
                |message: String| Error::Capture { netns: ns.name().to_string(), iface: point.iface.clone(), message };
            let t = PcapThread::spawn(ns.entry()?, &point.iface, None).map_err(capture_err)?;
            starting.push((point, t));
        }
        for n in traced.iter().filter(|_| !run_source.global()) {
            let source = sources.get(&n.name).copied().unwrap_or(trace).source();
            traces.extend(source.open(&cx, &[*n])?);
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
        Ok(Observers { captures, traces, drops, kernel_drops })
    }

    /// Whether the kernel's drops are observed ([`crate::observe::kfree_skb`]).
    pub fn kernel_drops(&self) -> bool {
        self.kernel_drops.is_some()
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
        for reader in &self.traces {
            reader.signal();
        }
        if let Some(k) = &self.kernel_drops {
            k.signal();
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
        let kernel_drops = match self.kernel_drops.map(DropWatch::stop).transpose() {
            Ok(d) => d.unwrap_or_default(),
            Err(message) => {
                errors.push(Error::Trace { netns: "(every netns: kernel drops)".into(), message });
                vec![]
            }
        };
        let nonces = Nonces::from_frames(&frames);
        let cx = Stopping { lab, ifnames, frames: &frames, nonces: &nonces };
        let mut out = Collected { errors, pcaps, ..Collected::default() };
        for reader in self.traces {
            reader.stop(&cx, &mut out)?;
        }
        let Collected { events, errors, pcaps } = out;
        if !errors.is_empty() {
            return Err(incomplete_or_many(errors));
        }
        Ok(Observed { frames, events, pcaps, drops: kernel_drops })
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
    if losses.len() == errors.len() {
        Error::EvidenceIncomplete { losses, cause: Incomplete::Lost }
    } else {
        Error::Many(errors)
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
        assert!(
            matches!(&e, Error::EvidenceIncomplete { losses, cause: Incomplete::Lost } if losses.len() == 2),
            "{e:?}"
        );
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
