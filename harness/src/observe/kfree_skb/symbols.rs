//! Kernel addresses to function names through /proc/kallsyms (readable with their addresses by
//! root). The file is read once per process, its text symbols kept sorted, and again only when
//! the loaded modules changed (/proc/modules: a module loaded on demand brings symbols of its
//! own): the kernel makes the file up on every read (120,000 lines, half a second on a busy
//! 2-core machine), and a suite's runs each drop at a few functions of their own.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::Mutex;

/// The text symbols, and the /proc/modules they were read with.
type Table = (Option<String>, Vec<(u64, String)>);

/// Each of `addrs` as `ip_error+0x5a`, or in hex when no symbol precedes it (kallsyms hidden).
pub fn resolve_all(addrs: &[u64]) -> HashMap<u64, String> {
    if addrs.is_empty() {
        return HashMap::new();
    }
    static TABLE: Mutex<Option<Table>> = Mutex::new(None);
    let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let modules = std::fs::read_to_string("/proc/modules").ok();
    if table.as_ref().is_none_or(|(m, _)| *m != modules) {
        let lines = std::fs::File::open("/proc/kallsyms")
            .map(|f| BufReader::new(f).lines().map_while(Result::ok).collect::<Vec<_>>())
            .unwrap_or_default();
        *table = Some((modules, text_symbols(lines.iter().map(String::as_str))));
    }
    let symbols = table.as_ref().map(|(_, t)| t.as_slice()).unwrap_or_default();
    addrs.iter().map(|&a| (a, nearest(symbols, a).unwrap_or_else(|| format!("{a:#x}")))).collect()
}

/// The text symbols (`t`, `T`) of kallsyms `lines` with a known address, sorted by address.
/// The file is not sorted across modules; an address of 0 is one kptr_restrict hides.
fn text_symbols<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = lines
        .filter_map(|line| {
            let mut w = line.split_whitespace();
            let (a, kind, name) = (w.next()?, w.next()?, w.next()?);
            if !matches!(kind, "t" | "T") {
                return None;
            }
            let a = u64::from_str_radix(a, 16).ok().filter(|a| *a != 0)?;
            Some((a, name.to_string()))
        })
        .collect();
    out.sort();
    out
}

/// The text symbol at or before `addr` in `table` ([`text_symbols`]), as `name+0xoff` (`name`
/// alone at offset 0).
fn nearest(table: &[(u64, String)], addr: u64) -> Option<String> {
    let at = table.partition_point(|(a, _)| *a <= addr).checked_sub(1)?;
    let (a, name) = &table[at];
    Some(if *a == addr { name.clone() } else { format!("{name}+{:#x}", addr - a) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_text_symbol_below_names_the_address() {
        let lines = "ffffffff81000000 T _stext\nffffffff81a00000 t ip_error\nffffffff81a00400 T ip_rcv\n\
                     ffffffff81a00100 d some_data\nffffffffc0000000 t br_handle_frame\t[bridge]\n";
        let table = text_symbols(lines.lines());
        let n = |a| nearest(&table, a);
        assert_eq!(n(0xffffffff81a0005a).as_deref(), Some("ip_error+0x5a"));
        assert_eq!(n(0xffffffff81a00400).as_deref(), Some("ip_rcv"));
        assert_eq!(n(0xffffffffc0000010).as_deref(), Some("br_handle_frame+0x10"), "module symbols too");
        assert_eq!(n(0x1000), None);
        let hidden = "0000000000000000 T ip_error\n";
        assert_eq!(nearest(&text_symbols(hidden.lines()), 0xffffffff81a0005a), None, "kptr_restrict hides addresses");
    }
}
