//! The lab drawn as SVG: each netns a box listing its interfaces (bridges, veth ends, WireGuard
//! interfaces, links the steps made) with their addresses of both families, veth pairs as links
//! between the boxes, bridge ports joined to their bridge. A packet's journey is drawn over it
//! ([`Topology::svg`] with the capture points in the order the packet met them).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;

use super::escape::esc;
use crate::scenario::handle::Setup;
use crate::scenario::{CapturePoint, Scenario};

const BOX_W: f64 = 290.0;
const COL_GAP: f64 = 130.0;
const HEAD_H: f64 = 26.0;
const LINE_H: f64 = 14.0;
const MARGIN: f64 = 16.0;

/// One interface as the picture lists it.
struct Iface {
    name: String,
    /// What the scenario's handle for it is, for links a tool made (`peer:c1/eth0`).
    handle: Option<String>,
    kind: &'static str,
    addrs: Vec<String>,
    master: Option<String>,
    /// The other end: a veth's peer, a WireGuard interface's first peer.
    peer: Option<(usize, usize)>,
    tunnel: bool,
}

struct Netns {
    name: String,
    ifaces: Vec<Iface>,
    col: i32,
    x: f64,
    y: f64,
}

/// The lab's picture, laid out once per page and drawn once per journey.
pub(super) struct Topology {
    netns: Vec<Netns>,
    width: f64,
    height: f64,
}

impl Topology {
    /// The topology of `sc`, with the links `setup` found beside it (made by the steps).
    pub fn new(sc: &Scenario, setup: &Setup) -> Topology {
        let mut netns: Vec<Netns> =
            sc.netns.iter().map(|n| Netns { name: n.name.clone(), ifaces: vec![], col: 0, x: 0.0, y: 0.0 }).collect();
        let at = |netns: &mut Vec<Netns>, ns: &str, iface: Iface| -> (usize, usize) {
            let n = match netns.iter().position(|n| n.name == ns) {
                Some(n) => n,
                None => {
                    netns.push(Netns { name: ns.to_string(), ifaces: vec![], col: 0, x: 0.0, y: 0.0 });
                    netns.len() - 1
                }
            };
            netns[n].ifaces.push(iface);
            (n, netns[n].ifaces.len() - 1)
        };
        let cidrs = |a: &[crate::cidr::Cidr]| a.iter().map(ToString::to_string).collect::<Vec<_>>();
        for b in &sc.bridge {
            let iface = Iface {
                name: b.name.clone(),
                handle: None,
                kind: "bridge",
                addrs: cidrs(&b.addresses),
                master: None,
                peer: None,
                tunnel: false,
            };
            at(&mut netns, &b.netns, iface);
        }
        for v in &sc.veth {
            let end = |e: &crate::scenario::VethEndSpec| Iface {
                name: e.name.clone(),
                handle: None,
                kind: "veth",
                addrs: cidrs(&e.addresses),
                master: e.master.clone(),
                peer: None,
                tunnel: false,
            };
            let a = at(&mut netns, &v.a.netns, end(&v.a));
            let b = at(&mut netns, &v.b.netns, end(&v.b));
            netns[a.0].ifaces[a.1].peer = Some(b);
            netns[b.0].ifaces[b.1].peer = Some(a);
        }
        let mut wg = vec![];
        for w in &sc.wireguard {
            let iface = Iface {
                name: w.iface.clone(),
                handle: None,
                kind: "wireguard",
                addrs: cidrs(&w.addresses),
                master: None,
                peer: None,
                tunnel: true,
            };
            wg.push((w, at(&mut netns, &w.netns, iface)));
        }
        for (w, me) in &wg {
            let peer = w.peers.first().and_then(|p| wg.iter().find(|(o, _)| o.id() == p.peer)).map(|(_, o)| *o);
            netns[me.0].ifaces[me.1].peer = peer;
        }
        // Links the steps made (a CNI plugin's veth): captured, so on the journey.
        for p in &setup.points {
            let known = netns.iter().any(|n| n.name == p.netns && n.ifaces.iter().any(|i| i.name == p.iface));
            if !known {
                let handle =
                    setup.handles.get(&p.to_string()).map(|h| h.split_once('/').map_or(h.clone(), |x| x.1.into()));
                let iface = Iface {
                    name: p.iface.clone(),
                    handle,
                    kind: "link",
                    addrs: vec![],
                    master: None,
                    peer: None,
                    tunnel: false,
                };
                at(&mut netns, &p.netns, iface);
            }
        }
        let mut t = Topology { netns, width: 0.0, height: 0.0 };
        t.layout();
        t
    }

    /// Columns: the most linked netns in the middle, its neighbours alternately left and right,
    /// theirs further out on the same side; each further group of linked namespaces to the right.
    fn layout(&mut self) {
        let n = self.netns.len();
        let neighbours: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                let mut v: Vec<usize> =
                    self.netns[i].ifaces.iter().filter_map(|f| f.peer.map(|p| p.0)).filter(|&j| j != i).collect();
                v.dedup();
                v
            })
            .collect();
        let mut placed: Vec<Option<i32>> = vec![None; n];
        let mut right_edge = i32::MIN;
        while let Some(hub) = (0..n).filter(|&i| placed[i].is_none()).max_by_key(|&i| (neighbours[i].len(), n - i)) {
            let mut cols: Vec<(usize, i32)> = vec![(hub, 0)];
            let mut seen = vec![false; n];
            seen[hub] = true;
            let mut queue = VecDeque::from([(hub, 0i32)]);
            let mut side = -1;
            while let Some((i, col)) = queue.pop_front() {
                for &j in &neighbours[i] {
                    if seen[j] || placed[j].is_some() {
                        continue;
                    }
                    seen[j] = true;
                    let c = if col == 0 {
                        side = -side;
                        -side
                    } else {
                        col + col.signum()
                    };
                    cols.push((j, c));
                    queue.push_back((j, c));
                }
            }
            let min = cols.iter().map(|c| c.1).min().unwrap_or(0);
            let shift = if right_edge == i32::MIN { -min } else { right_edge + 1 - min };
            for (i, c) in cols {
                placed[i] = Some(c + shift);
                right_edge = right_edge.max(c + shift);
            }
        }
        let mut bottom: BTreeMap<i32, f64> = BTreeMap::new();
        for (i, ns) in self.netns.iter_mut().enumerate() {
            ns.col = placed[i].unwrap_or(0);
            ns.x = MARGIN + f64::from(ns.col) * (BOX_W + COL_GAP);
            let y = bottom.entry(ns.col).or_insert(MARGIN);
            ns.y = *y;
            *y += box_height(ns) + 22.0;
        }
        self.width = self.netns.iter().map(|n| n.x + BOX_W + MARGIN).fold(BOX_W, f64::max);
        self.height = bottom.values().copied().fold(60.0, f64::max);
    }

    /// Where interface `point` is drawn: the dot a link leaves from, or its row's end.
    pub fn port(&self, point: &CapturePoint) -> Option<(f64, f64)> {
        let (n, ns) = self.netns.iter().enumerate().find(|(_, n)| n.name == point.netns)?;
        let i = ns.ifaces.iter().position(|f| f.name == point.iface)?;
        Some(self.port_of(n, i))
    }

    fn port_of(&self, n: usize, i: usize) -> (f64, f64) {
        let ns = &self.netns[n];
        let y = ns.y + row_top(ns, i) + row_height(&ns.ifaces[i]) / 2.0;
        match ns.ifaces[i].peer {
            Some((p, _)) if self.netns[p].col >= ns.col => (ns.x + BOX_W, y),
            Some(_) => (ns.x, y),
            // A bridge or a link without a drawn peer: its dot inside the box, where its ports join.
            None => (ns.x + 8.0, y),
        }
    }

    /// The picture, with `journey` (capture points in the order the packet met them) drawn over
    /// it as numbered steps joined by arrows; `class` names the SVG's use (`topology`, `journey`).
    pub fn svg(&self, journey: &[&CapturePoint], class: &str) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="{class}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">"#,
            w = self.width,
            h = self.height
        );
        // Links first, under the boxes' dots.
        for (n, ns) in self.netns.iter().enumerate() {
            for (i, f) in ns.ifaces.iter().enumerate() {
                let Some(peer) = f.peer else { continue };
                if (n, i) > peer && self.netns[peer.0].ifaces[peer.1].peer == Some((n, i)) {
                    continue;
                }
                let (a, b) = (self.port_of(n, i), self.port_of(peer.0, peer.1));
                // Each end leaves its box sideways, on the side its dot is on.
                let out = |p: (f64, f64), n: usize| if p.0 > self.netns[n].x + 1.0 { p.0 + 70.0 } else { p.0 - 70.0 };
                let (ca, cb) = (out(a, n), out(b, peer.0));
                let dash = if f.tunnel { r#" stroke-dasharray="6 4""# } else { "" };
                let _ = write!(
                    s,
                    r#"<path class="link" d="M{:.0} {:.0} C{:.0} {:.0} {:.0} {:.0} {:.0} {:.0}"{dash}/>"#,
                    a.0, a.1, ca, a.1, cb, b.1, b.0, b.1
                );
            }
        }
        for (n, ns) in self.netns.iter().enumerate() {
            let h = box_height(ns);
            let _ = write!(
                s,
                r#"<g class="netns" data-netns="{name}"><rect x="{x}" y="{y}" width="{BOX_W}" height="{h}" rx="6"/><text class="ns-name" x="{tx}" y="{ty}">{name}</text>"#,
                name = esc(&ns.name),
                x = ns.x,
                y = ns.y,
                tx = ns.x + 10.0,
                ty = ns.y + 18.0
            );
            for (i, f) in ns.ifaces.iter().enumerate() {
                let top = ns.y + row_top(ns, i);
                let indent = if f.master.is_some() { 30.0 } else { 16.0 };
                let point = format!("{}/{}", ns.name, f.name);
                let _ = write!(s, r#"<g class="iface {}" data-point="{}">"#, f.kind, esc(&point));
                let mut title = format!("{point} ({})", f.kind);
                if let Some(h) = &f.handle {
                    let _ = write!(title, ", the scenario's {h}");
                }
                if let Some(m) = &f.master {
                    let _ = write!(title, ", port of bridge {m}");
                }
                let _ = write!(s, "<title>{}</title>", esc(&title));
                if let Some(m) = &f.master
                    && let Some(b) = ns.ifaces.iter().position(|o| &o.name == m)
                {
                    let by = ns.y + row_top(ns, b) + row_height(&ns.ifaces[b]) / 2.0;
                    let _ = write!(
                        s,
                        r#"<path class="port" d="M{x:.0} {by:.0} V{py:.0} H{x2:.0}"/>"#,
                        x = ns.x + 8.0,
                        py = top + 10.0,
                        x2 = ns.x + indent - 2.0
                    );
                }
                let label = match &f.handle {
                    Some(h) => format!("{} ({h})", f.name),
                    None if f.kind == "bridge" => format!("{} [bridge]", f.name),
                    None if f.kind == "wireguard" => format!("{} [wireguard]", f.name),
                    None => f.name.clone(),
                };
                let _ = write!(
                    s,
                    r#"<text class="if-name" x="{:.0}" y="{:.0}">{}</text>"#,
                    ns.x + indent,
                    top + 13.0,
                    esc(&label)
                );
                for (k, a) in f.addrs.iter().enumerate() {
                    let _ = write!(
                        s,
                        r#"<text class="addr" x="{:.0}" y="{:.0}">{}</text>"#,
                        ns.x + indent + 8.0,
                        top + 13.0 + LINE_H * (k as f64 + 1.0),
                        esc(a)
                    );
                }
                let (px, py) = self.port_of(n, i);
                let _ = write!(s, r#"<circle class="dot" cx="{px:.0}" cy="{py:.0}" r="4"/></g>"#);
            }
            s.push_str("</g>");
        }
        s.push_str(&self.overlay(journey));
        s.push_str("</svg>");
        s
    }

    /// The journey's steps: an arrow from each capture point to the next, a numbered badge on each.
    fn overlay(&self, journey: &[&CapturePoint]) -> String {
        let at: Vec<(f64, f64)> = journey.iter().filter_map(|p| self.port(p)).collect();
        if at.is_empty() {
            return String::new();
        }
        let mut s = String::from(r#"<g class="journey">"#);
        for w in at.windows(2) {
            let _ = write!(
                s,
                r#"<line class="step" x1="{:.0}" y1="{:.0}" x2="{:.0}" y2="{:.0}" marker-end="url(#arrow)"/>"#,
                w[0].0, w[0].1, w[1].0, w[1].1
            );
        }
        let mut used: BTreeMap<(i64, i64), u32> = BTreeMap::new();
        for (k, (x, y)) in at.iter().enumerate() {
            // A point met twice (a hairpin) gets its second badge beside the first.
            let again = used.entry((*x as i64, *y as i64)).or_default();
            let dx = f64::from(*again) * 20.0;
            *again += 1;
            let _ = write!(
                s,
                r#"<circle class="badge" cx="{:.0}" cy="{:.0}" r="9"/><text class="badge-n" x="{:.0}" y="{:.0}">{}</text>"#,
                x + dx,
                y,
                x + dx,
                y + 4.0,
                k + 1
            );
        }
        s.push_str("</g>");
        s
    }
}

fn row_height(f: &Iface) -> f64 {
    6.0 + LINE_H * (1.0 + f.addrs.len() as f64)
}

fn row_top(ns: &Netns, i: usize) -> f64 {
    HEAD_H + ns.ifaces[..i].iter().map(row_height).sum::<f64>()
}

fn box_height(ns: &Netns) -> f64 {
    HEAD_H + ns.ifaces.iter().map(row_height).sum::<f64>() + 8.0
}
