//! Recording `[[probe.drop]]`: where and why the kernel dropped each probe packet, as the drop
//! source saw it. The first drop of each packet (a clone's later one is not its fate), by netns
//! and reason; the function too on a kernel that gives no reason.

use super::{Group, Recorder};
use crate::evidence::Exchange;
use crate::scenario::{Direction, DropExpect};

/// What one packet's drop was: netns, reason, and the function where the kernel gave none.
type Fate = Option<(String, Option<String>, Option<String>)>;

/// The probe's drop entries, request then reply.
pub(super) fn recorded(rec: &mut Recorder<'_>) -> Vec<DropExpect> {
    let mut out = vec![];
    for d in [Direction::Request, Direction::Reply] {
        let what = || format!("drops ({d})");
        let differences = |groups: &[Group<Fate>]| {
            groups.iter().map(|(packets, fate)| format!("packets {packets:?}: {}", text(fate))).collect()
        };
        for (sel, backend, fate) in rec.entries(&what, |x| fate_of(x, d), differences) {
            // A packet some server answered was not dropped for good: nothing to say of it.
            let (Some((netns, reason, function)), None) = (fate, sel.answered_by) else { continue };
            out.push(DropExpect { netns, reason, function, direction: d, packet: sel.packet, backend, kernel: None });
        }
    }
    out
}

/// Which old entry a recorded one takes the place of: same direction and netns, packets, backend.
pub(super) fn key(d: &DropExpect) -> (String, String, Option<&'static str>) {
    (format!("{} {}", d.direction, d.netns), format!("{:?}", d.packet), d.backend.map(crate::firewall::Backend::name))
}

fn fate_of(x: &Exchange, d: Direction) -> Fate {
    let k = x.of(d).drops.first()?;
    let function = k.reason.is_none().then(|| k.function().to_string());
    Some((k.netns.clone(), k.reason.clone(), function))
}

fn text(fate: &Fate) -> String {
    match fate {
        Some((netns, reason, function)) => {
            format!("dropped in {netns} ({})", reason.as_deref().or(function.as_deref()).unwrap_or("?"))
        }
        None => "not dropped".into(),
    }
}
