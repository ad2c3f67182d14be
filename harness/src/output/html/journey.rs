//! A probe on the page: its verdict, each failed expectation (FILE:LINE, expected against
//! observed, the text netpath prints), and per class of packets that took the same way, each
//! direction's journey: the hops in order (capture points with their addresses, the fields a
//! hop rewrote marked; netfilter hooks coloured by verdict with the rule's text; the kernel's
//! drop), drawn over the topology and over each netns's hook map.

use std::fmt::Write;

use super::escape::esc;
use super::hookmap;
use super::topology::Topology;
use crate::engine::ProbeOutcome;
use crate::evidence::packet::PacketInfo;
use crate::evidence::{Exchange, PacketEvidence};
use crate::observe::kfree_skb::KernelDrop;
use crate::observe::trace::TraceEvent;
use crate::scenario::CapturePoint;
use crate::verdict::Failure;

/// One step of a packet's journey.
pub(super) enum Hop<'a> {
    /// Captured at an interface, carrying `info`; `changed` the fields (`src`, `dst`, `sport`,
    /// `dport`) that differ from the capture point before.
    Point { point: &'a CapturePoint, info: &'a PacketInfo, changed: Vec<&'static str> },
    /// Met a netfilter hook.
    Hook(&'a TraceEvent),
    /// Dropped by the kernel.
    Drop(&'a KernelDrop),
}

/// The hops of one packet in the order it met them: capture points by their timestamps; each
/// netns's hooks after the point the packet entered it by (before the first point, in the
/// sender's netns: its OUTPUT hooks come before it leaves); the kernel's drops last.
pub(super) fn hops(pe: &PacketEvidence) -> Vec<Hop<'_>> {
    let mut out = vec![];
    let mut done: Vec<&str> = vec![];
    let mut previous: Option<&PacketInfo> = None;
    for (k, point) in pe.seen_in_order().into_iter().enumerate() {
        if k == 0 {
            hooks_of(pe, &point.netns, &mut out, &mut done);
        }
        for info in pe.sightings(point) {
            let changed = previous.map(|p| changed_fields(p, info)).unwrap_or_default();
            out.push(Hop::Point { point, info, changed });
            previous = Some(info);
        }
        hooks_of(pe, &point.netns, &mut out, &mut done);
    }
    for ns in pe.path.keys() {
        hooks_of(pe, ns, &mut out, &mut done);
    }
    out.extend(pe.drops.iter().map(Hop::Drop));
    out
}

/// The hooks of `pe` in `netns`, once.
fn hooks_of<'a>(pe: &'a PacketEvidence, netns: &str, out: &mut Vec<Hop<'a>>, done: &mut Vec<&'a str>) {
    if let Some((ns, evs)) = pe.path.get_key_value(netns)
        && !done.contains(&ns.as_str())
    {
        done.push(ns.as_str());
        out.extend(evs.iter().map(Hop::Hook));
    }
}

fn changed_fields(before: &PacketInfo, now: &PacketInfo) -> Vec<&'static str> {
    let (bp, np) = (before.ports(), now.ports());
    [("src", before.src != now.src), ("dst", before.dst != now.dst), ("sport", bp.0 != np.0), ("dport", bp.1 != np.1)]
        .into_iter()
        .filter_map(|(f, differs)| differs.then_some(f))
        .collect()
}

/// What packets of one class share: each hop, without ports (a connection's ephemeral port
/// differs from the next's).
fn signature(pe: &PacketEvidence) -> Vec<String> {
    hops(pe)
        .iter()
        .map(|h| match h {
            Hop::Point { point, info, .. } => format!("{point} {:?} {:?}", info.src, info.dst),
            Hop::Hook(e) => format!("{} {} {:?}", e.netns, e.hook, e.verdict),
            Hop::Drop(d) => format!("drop {} {}", d.netns, d.location),
        })
        .collect()
}

/// The exchanges of a probe grouped by the way their request and reply went, in the order of
/// their first packet.
fn classes(exchanges: &[Exchange]) -> Vec<Vec<&Exchange>> {
    /// A class's request and reply signatures, whether it was answered, and its packets.
    type Class<'a> = ((Vec<String>, Vec<String>, bool), Vec<&'a Exchange>);
    let mut out: Vec<Class<'_>> = vec![];
    for x in exchanges {
        let key = (signature(&x.request), signature(&x.reply), x.replied);
        match out.iter_mut().find(|c| c.0 == key) {
            Some(c) => c.1.push(x),
            None => out.push((key, vec![x])),
        }
    }
    out.into_iter().map(|c| c.1).collect()
}

/// A probe's section of the page (the `index`th of its run); `pcaps` the path prefix of the artifact folder's pcaps, when
/// the run wrote them.
pub(super) fn probe(index: usize, p: &ProbeOutcome, topo: &Topology, pcaps: Option<&str>) -> String {
    let mut s = String::new();
    let ok = p.failures.is_empty();
    let _ = write!(
        s,
        r#"<section class="probe {}" id="probe-{index}" data-probe="{}"><h2><span class="mark">{}</span> probe {} <span class="verdict">{}</span></h2>"#,
        if ok { "pass" } else { "fail" },
        esc(&p.name),
        if ok { "✓" } else { "✗" },
        esc(&p.name),
        if ok { "ok" } else { "FAILED" }
    );
    for f in &p.failures {
        s.push_str(&failure(f));
    }
    let groups = classes(&p.exchanges);
    let _ =
        write!(s, r#"<p class="count">{} packet(s), {} way(s) through the lab</p>"#, p.exchanges.len(), groups.len());
    for (k, class) in groups.iter().enumerate() {
        let packets: Vec<u16> = class.iter().map(|x| x.packet).collect();
        let failing = class.iter().any(|x| p.failures.iter().any(|f| f.packet.is_none_or(|n| n == x.packet)));
        let list: Vec<String> = packets.iter().map(ToString::to_string).collect();
        let first = class[0];
        let answer = first.answer.as_deref().map(|a| format!(", answered by {a}")).unwrap_or_default();
        let _ = write!(
            s,
            r#"<section class="class{}" data-probe="{}" data-packets="{}"><h3>{} {} ×{}{}</h3>"#,
            if failing { " failing" } else { "" },
            esc(&p.name),
            list.join(","),
            if packets.len() == 1 { "packet" } else { "packets" },
            esc(&crate::output::report::ranges(&packets)),
            packets.len(),
            esc(&answer)
        );
        let open = k == 0 || failing;
        let mut sides: Vec<(String, &PacketEvidence)> =
            vec![("request".into(), &first.request), ("reply".into(), &first.reply)];
        for (n, again) in first.retransmissions.iter().enumerate() {
            sides.push((format!("request, retransmission {}", n + 1), again));
        }
        for (dir, pe) in sides {
            if dir == "reply" && pe.seen.is_empty() && pe.path.is_empty() {
                let _ = write!(s, r#"<div class="dir" data-dir="reply"><h4>reply</h4><p class="none">none</p></div>"#);
                continue;
            }
            s.push_str(&direction(&dir, pe, topo, pcaps, open));
        }
        s.push_str("</section>");
    }
    s.push_str("</section>");
    s
}

/// One failed expectation: where the scenario states it, expected against observed, and the
/// text `netpath run` prints for it.
fn failure(f: &Failure) -> String {
    let mut s = format!(r#"<div class="failure" data-location="{}">"#, esc(f.location.as_deref().unwrap_or("")));
    let _ = write!(s, r#"<div class="what">✗ {}</div>"#, esc(&f.what));
    if let Some(at) = &f.location {
        let _ = write!(s, r#"<div class="at">at <code>{}</code></div>"#, esc(at));
    }
    if f.expected.is_some() || f.observed.is_some() {
        let _ = write!(
            s,
            r#"<table class="diff"><tr class="expected"><th>expected</th><td><pre>{}</pre></td></tr><tr class="observed"><th>observed</th><td><pre>{}</pre></td></tr></table>"#,
            esc(f.expected.as_deref().unwrap_or("—")),
            esc(f.observed.as_deref().unwrap_or("not seen"))
        );
    }
    let _ = write!(s, r#"<pre class="text">{}</pre></div>"#, esc(&crate::output::report::failure(f)));
    s
}

/// One direction of one packet: its hop table, its journey over the topology, its hook maps.
fn direction(dir: &str, pe: &PacketEvidence, topo: &Topology, pcaps: Option<&str>, open: bool) -> String {
    let hops = hops(pe);
    let mut s = format!(r#"<div class="dir" data-dir="{}"><h4>{}</h4><table class="hops">"#, esc(dir), esc(dir));
    s.push_str("<tr><th>#</th><th>where</th><th>what</th><th>packet</th><th></th></tr>");
    for (k, hop) in hops.iter().enumerate() {
        let n = k + 1;
        match hop {
            Hop::Point { point, info, changed } => {
                let (src, dst) = info.endpoints();
                let mark = |v: &str, fields: [&str; 2]| {
                    if changed.iter().any(|c| fields.contains(c)) { format!("<mark>{}</mark>", esc(v)) } else { esc(v) }
                };
                let ttl = info.ttl.map(|t| format!(" ttl {t}")).unwrap_or_default();
                let note =
                    if changed.is_empty() { String::new() } else { format!(" (rewritten: {})", changed.join(", ")) };
                let link = pcaps
                    .map(|dir| {
                        let file =
                            crate::output::artifacts::file_name(&format!("{}_{}.pcap", point.netns, point.iface));
                        format!(r#"<a class="pcap" href="{}">pcap</a>"#, esc(&format!("{dir}{file}")))
                    })
                    .unwrap_or_default();
                let _ = write!(
                    s,
                    r#"<tr class="hop point" data-point="{}"><td>{n}</td><td>{}</td><td>captured</td><td><code>{} &gt; {}</code>{}{}</td><td>{link}</td></tr>"#,
                    esc(&point.to_string()),
                    esc(&point.to_string()),
                    mark(&src, ["src", "sport"]),
                    mark(&dst, ["dst", "dport"]),
                    esc(&ttl),
                    esc(&note)
                );
            }
            Hop::Hook(e) => {
                let class = hookmap::event_class(e);
                let verdict = e.verdict.as_ref().map(ToString::to_string).unwrap_or_default();
                let rule = e
                    .rule
                    .as_ref()
                    .map(|r| {
                        let comment = r.comment.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
                        format!(r#"<code class="rule">{}</code>"#, esc(&format!("{}{comment}", r.text)))
                    })
                    .unwrap_or_default();
                let (src, dst) = e.packet.endpoints();
                let dev = |d: &Option<String>| d.clone().unwrap_or_default();
                let ifs = format!("IN={} OUT={}", dev(&e.ifaces.indev), dev(&e.ifaces.outdev));
                let _ = write!(
                    s,
                    r#"<tr class="hop hook v-{class}" data-netns="{}" data-hook="{}" title="{}"><td>{n}</td><td>{}</td><td><span class="hookname">{}</span> <span class="vd">{}</span><br>{rule}</td><td><code>{} &gt; {}</code> <span class="ifs">{}</span></td><td></td></tr>"#,
                    esc(&e.netns),
                    esc(&e.hook.to_string()),
                    esc(&hookmap::event_line(e)),
                    esc(&e.netns),
                    esc(&e.hook.to_string()),
                    esc(&verdict),
                    esc(&src),
                    esc(&dst),
                    esc(&ifs)
                );
            }
            Hop::Drop(d) => {
                let why = d.reason.as_deref().unwrap_or("reason unknown on this kernel");
                let by = d.by.as_ref().map(|h| format!(", by {h}")).unwrap_or_default();
                let dev = d.device.as_deref().map(|x| format!(" on {x}")).unwrap_or_default();
                let _ = write!(
                    s,
                    r#"<tr class="hop drop v-drop" data-netns="{}"><td>{n}</td><td>{}</td><td>dropped by the kernel at <code>{}</code>{}</td><td>{}{}</td><td></td></tr>"#,
                    esc(&d.netns),
                    esc(&d.netns),
                    esc(&d.location),
                    esc(&dev),
                    esc(why),
                    esc(&by)
                );
            }
        }
    }
    if hops.is_empty() {
        s.push_str(r#"<tr><td colspan="5">not captured anywhere, no trace event</td></tr>"#);
    }
    s.push_str("</table>");
    let points: Vec<&CapturePoint> =
        hops.iter().filter_map(|h| if let Hop::Point { point, .. } = h { Some(*point) } else { None }).collect();
    let open_attr = if open { " open" } else { "" };
    if !points.is_empty() {
        let _ = write!(
            s,
            r#"<details class="over-topology"{open_attr}><summary>journey over the topology</summary>{}</details>"#,
            topo.svg(&points, "journey")
        );
    }
    for (netns, evs) in &pe.path {
        let refs: Vec<&TraceEvent> = evs.iter().collect();
        let _ = write!(
            s,
            r#"<details class="over-hooks"{open_attr}><summary>hook map of netns {}</summary>{}</details>"#,
            esc(netns),
            hookmap::svg(netns, &refs)
        );
    }
    s.push_str("</div>");
    s
}
