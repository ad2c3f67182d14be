//! The kernel's drops joined to the probe packets they are: found by the nonce they carry, or
//! (TCP SYNs, which carry none) by the probe's matcher, like a captured frame. A
//! `NETFILTER_DROP` is joined to the hook that dropped it: the last one the packet's trace met
//! in that netns.

use std::collections::BTreeMap;

use super::Exchange;
use crate::observe::kfree_skb::KernelDrop;
use crate::probe::{Sent, find_nonce};
use crate::scenario::Direction;

/// Add each of `drops` to the packet of `probes` it is (`exchanges` is `probes`' evidence, in
/// the same order, already joined); a drop no probe packet fits (a neighbour solicitation, a
/// packet of the lab's own) is left out.
pub fn attach(probes: &[Vec<Sent>], exchanges: &mut [Vec<Exchange>], drops: &[KernelDrop]) {
    let by_nonce: BTreeMap<&[u8], (usize, usize)> = probes
        .iter()
        .enumerate()
        .flat_map(|(p, sent)| sent.iter().enumerate().map(move |(i, s)| (s.nonce.as_slice(), (p, i))))
        .collect();
    for d in drops {
        let Some(info) = &d.packet else { continue };
        let nonce = find_nonce(&d.bytes);
        let found = match nonce.as_deref().and_then(|n| by_nonce.get(n)) {
            Some(&(p, i)) => probes[p][i].classify(info, &d.bytes).map(|dir| (p, i, dir)),
            None => probes.iter().enumerate().find_map(|(p, sent)| {
                sent.iter().enumerate().find_map(|(i, s)| {
                    s.matcher.without_nonce().then(|| s.classify(info, &d.bytes)).flatten().map(|dir| (p, i, dir))
                })
            }),
        };
        let Some((p, i, dir)) = found else { continue };
        let Some(x) = exchanges.get_mut(p).and_then(|e| e.get_mut(i)) else { continue };
        let evidence = match dir {
            Direction::Request => &mut x.request,
            Direction::Reply => &mut x.reply,
        };
        let mut d = d.clone();
        if d.reason.as_deref() == Some("NETFILTER_DROP") {
            d.by = evidence.path.get(&d.netns).and_then(|hooks| hooks.last()).map(|e| e.hook.clone());
        }
        evidence.drops.push(d);
    }
}
