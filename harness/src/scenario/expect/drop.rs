//! `[[probe.drop]]`: where and why the kernel must drop a probe's packets ([`DropExpect`]):
//! the netns, and the kernel's drop reason (`enum skb_drop_reason`, by name) and/or the
//! function that dropped it. Judged in `verdict/drop.rs` against the drops the eBPF drop source
//! saw ([`crate::observe::kfree_skb`]).

use serde::{Deserialize, Serialize};

use super::{Conditions, Direction, Packets};
use crate::firewall::Backend;
use crate::kernel::KernelRange;
use crate::observe::kfree_skb::reasons;
use crate::scenario::ProbeSpec;
use crate::scenario::validate::{Problems, Topology};

/// The kernel must drop the packets in `netns`, for `reason`, in `function`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropExpect {
    /// The netns the packet dies in.
    pub netns: String,
    /// The kernel's reason (`IP_INADDRERRORS`, `NO_SOCKET`, `NETFILTER_DROP`...), as the
    /// kernel's `enum skb_drop_reason` names it without `SKB_DROP_REASON_`. Needs Linux 5.17.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The kernel function that dropped it (`ip_error`), without an offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The packet's direction this entry is about.
    #[serde(default = "super::request", skip_serializing_if = "super::is_request")]
    pub direction: Direction,
    /// Which packets of the flow (1 = the first); every packet when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packet: Option<Packets>,
    /// Only under this backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// Only on kernels in this range (`">=6.1"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<KernelRange>,
}

impl DropExpect {
    /// The entry's conditions (see [`Conditions`]).
    pub fn conditions(&self) -> Conditions<'_> {
        Conditions { packet: self.packet, answered_by: None, backend: self.backend, kernel: self.kernel.as_ref() }
    }

    /// `IP_INADDRERRORS in router at ip_error`: what the entry wants, in a line.
    pub fn wanted(&self) -> String {
        let mut s = self.reason.clone().unwrap_or_else(|| "a drop".into());
        s.push_str(&format!(" in {}", self.netns));
        if let Some(f) = &self.function {
            s.push_str(&format!(" at {f}"));
        }
        s
    }
}

/// What is wrong with the drop entries of probe `p` (`probe[i]`): an unknown netns, a reason no
/// kernel has (a misspelling), an entry that names neither reason nor function, a packet that
/// does not exist, a drop of packets the probe expects answered.
pub(in crate::scenario) fn problems(
    t: &Topology<'_>,
    sc: &crate::scenario::Scenario,
    i: usize,
    p: &ProbeSpec,
    ps: &mut Problems,
) {
    for (j, d) in p.drop.iter().enumerate() {
        let item = format!("probe[{i}].drop[{j}]");
        t.known(format!("{item}.netns"), &d.netns, ps);
        if let Some(r) = &d.reason
            && !reasons::known(r)
        {
            let mut close: Vec<&str> = reasons::NAMES.iter().copied().filter(|n| similar(n, r)).collect();
            // The longest shared beginning first: IP_INADDRERROR is closest to IP_INADDRERRORS.
            close.sort_by_key(|n| std::cmp::Reverse(n.bytes().zip(r.bytes()).take_while(|(a, b)| a == b).count()));
            close.truncate(3);
            let hint = if close.is_empty() {
                "names as in the kernel's enum skb_drop_reason without SKB_DROP_REASON_ (IP_INADDRERRORS, NO_SOCKET, NETFILTER_DROP...)".to_string()
            } else {
                format!("did you mean {}?", close.join(", "))
            };
            ps.add(format!("{item}.reason"), format!("`{r}` is not a kernel drop reason: {hint}"));
        }
        if d.reason.is_none() && d.function.is_none() {
            ps.add(item.clone(), "say why or where it is dropped: reason = \"...\" and/or function = \"...\"");
        }
        d.conditions().problems(&item, sc, p, ps);
        if d.direction == Direction::Request
            && d.packet.is_none()
            && p.expected_answer() == crate::scenario::Answer::Reply
        {
            ps.add(
                item,
                "the probe expects a reply (the default answer), so its requests cannot all be dropped: set answer = \"none\" (or \"refused\"), or name the packet",
            );
        }
    }
}

/// Whether two reason names are close: one contains the other, or they share their first word.
fn similar(name: &str, typed: &str) -> bool {
    let typed = typed.to_ascii_uppercase();
    name.contains(&typed)
        || typed.contains(name)
        || name.split('_').next() == typed.split('_').next() && name.len().abs_diff(typed.len()) <= 2
}
