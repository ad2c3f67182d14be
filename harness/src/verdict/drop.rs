//! Judging `[[probe.drop]]`: the drops the kernel reported of each packet the entry selects
//! (its evidence's `drops`, [`crate::evidence::drop`]) against the netns, reason and function
//! the entry names.

use super::{ExpectationKind, Failure, FailureKind, ProbeEvidence};
use crate::observe::kfree_skb::KernelDrop;
use crate::scenario::{DropExpect, ProbeSpec};

/// `[[probe.drop]]`.
pub struct DropKind;

impl ExpectationKind for DropKind {
    fn name(&self) -> &'static str {
        "drop"
    }

    fn keys(&self) -> &'static [&'static str] {
        &["drop"]
    }

    fn failures(&self) -> &'static [FailureKind] {
        &FailureKind::DROP
    }

    fn judge(&self, probe: &ProbeSpec, evidence: &ProbeEvidence<'_>) -> Vec<Failure> {
        let mut out = vec![];
        for d in &probe.drop {
            for x in evidence.exchanges {
                if !d.conditions().applies(&evidence.context(x)) {
                    continue;
                }
                let drops = &x.of(d.direction).drops;
                if drops.iter().any(|k| fits(d, k)) {
                    continue;
                }
                out.push(failure(d, x.packet, drops));
            }
        }
        out
    }
}

/// Whether the kernel's drop `k` is the one `d` wants.
pub fn fits(d: &DropExpect, k: &KernelDrop) -> bool {
    k.netns == d.netns
        && d.reason.as_ref().is_none_or(|r| k.reason.as_ref() == Some(r))
        && d.function.as_ref().is_none_or(|f| k.function() == f || compiled_as(k.function()) == f)
}

/// The function a symbol is a compiler's copy of: `ip_rcv_finish_core` for
/// `ip_rcv_finish_core.constprop.0` (Debian's 6.1 names it so; 6.18 does not), `.isra.0`,
/// `.part.0`, `.cold`. Which copies a kernel has is its compiler's choice, not the datapath's.
fn compiled_as(symbol: &str) -> &str {
    symbol.split('.').next().unwrap_or(symbol)
}

fn failure(d: &DropExpect, packet: u16, drops: &[KernelDrop]) -> Failure {
    let what = format!("drop of packet {packet} {} ({})", d.direction, d.wanted());
    let (kind, detail, observed) = if drops.is_empty() {
        (
            FailureKind::NotDropped,
            format!(
                "expected {}, and the kernel reported no drop of it: it went through, or was lost where skb:kfree_skb does not see it",
                d.wanted()
            ),
            None,
        )
    } else {
        let seen: Vec<String> = drops.iter().map(KernelDrop::describe).collect();
        (
            FailureKind::DroppedOtherwise,
            format!("expected {}, observed: {}", d.wanted(), seen.join("; ")),
            Some(seen.join("\n")),
        )
    };
    Failure {
        direction: Some(d.direction),
        netns: Some(d.netns.clone()),
        expected: Some(d.wanted()),
        observed,
        ..Failure::of_packet(kind, packet, what, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compilers_copy_of_a_function_is_that_function() {
        assert_eq!(compiled_as("ip_rcv_finish_core.constprop.0"), "ip_rcv_finish_core");
        assert_eq!(compiled_as("ip_error"), "ip_error");
        assert_ne!(compiled_as("ip6_pkt_drop"), "ip6_pkt_discard");
    }
}
