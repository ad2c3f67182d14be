//! Kernel addresses to function names through /proc/kallsyms (readable with their addresses by
//! root), cached: the same few functions drop every packet of a run.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::{Mutex, OnceLock};

/// Each of `addrs` as `ip_error+0x5a`, or in hex when no symbol precedes it (kallsyms hidden):
/// the ones not cached yet found in one pass over /proc/kallsyms.
pub fn resolve_all(addrs: &[u64]) -> HashMap<u64, String> {
    static CACHE: OnceLock<Mutex<HashMap<u64, String>>> = OnceLock::new();
    let mut cache = CACHE.get_or_init(Mutex::default).lock().unwrap_or_else(|e| e.into_inner());
    let mut todo: Vec<u64> = addrs.iter().copied().filter(|a| !cache.contains_key(a)).collect();
    todo.sort_unstable();
    todo.dedup();
    if !todo.is_empty() {
        let lines: Vec<String> = std::fs::File::open("/proc/kallsyms")
            .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect())
            .unwrap_or_default();
        for a in todo {
            let name = nearest(lines.iter().cloned(), a).unwrap_or_else(|| format!("{a:#x}"));
            cache.insert(a, name);
        }
    }
    addrs.iter().filter_map(|a| cache.get(a).map(|n| (*a, n.clone()))).collect()
}

/// The text symbol at or before `addr` among kallsyms `lines`, as `name+0xoff` (`name` alone at
/// offset 0). The file is not sorted across modules: every line is looked at.
fn nearest(lines: impl Iterator<Item = String>, addr: u64) -> Option<String> {
    let mut best: Option<(u64, String)> = None;
    for line in lines {
        let mut w = line.split_whitespace();
        let (Some(a), Some(kind), Some(name)) = (w.next(), w.next(), w.next()) else { continue };
        if !matches!(kind, "t" | "T") {
            continue;
        }
        let Ok(a) = u64::from_str_radix(a, 16) else { continue };
        if a != 0 && a <= addr && best.as_ref().is_none_or(|(b, _)| a > *b) {
            best = Some((a, name.to_string()));
        }
    }
    let (a, name) = best?;
    Some(if a == addr { name } else { format!("{name}+{:#x}", addr - a) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_text_symbol_below_names_the_address() {
        let lines = "ffffffff81000000 T _stext\nffffffff81a00000 t ip_error\nffffffff81a00400 T ip_rcv\n\
                     ffffffff81a00100 d some_data\nffffffffc0000000 t br_handle_frame\t[bridge]\n";
        let n = |a| nearest(lines.lines().map(String::from), a);
        assert_eq!(n(0xffffffff81a0005a).as_deref(), Some("ip_error+0x5a"));
        assert_eq!(n(0xffffffff81a00400).as_deref(), Some("ip_rcv"));
        assert_eq!(n(0xffffffffc0000010).as_deref(), Some("br_handle_frame+0x10"), "module symbols too");
        assert_eq!(n(0x1000), None);
        let hidden = "0000000000000000 T ip_error\n";
        assert_eq!(
            nearest(hidden.lines().map(String::from), 0xffffffff81a0005a),
            None,
            "kptr_restrict hides addresses"
        );
    }
}
