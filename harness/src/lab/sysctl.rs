//! Sysctls of one netns, written through /proc/sys from a thread inside it: the kernel resolves
//! /proc/sys/net against the netns of the thread that opens the file.
//!
//! A scenario's keys are checked when the file loads ([`SysctlKey`]: per-netns net.* only);
//! here, whatever reaches a write, the path is built from a checked key's components, the
//! writing thread must not be in the init netns (its /proc/thread-self/ns/net is neither
//! /proc/1/ns/net nor the netns netpath started in), and the file must resolve under
//! /proc/sys/net. No write creates a file.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::firewall::located::Source;
use crate::lab::netns::Netns;
use crate::scenario::sysctl::SysctlKey;

/// The /proc/sys file of `key`, resolved in the netns of the thread that opens it. As for
/// `sysctl`, a key may use `/` as its separator, so an interface name with a dot fits
/// (`net/ipv6/conf/eth0.100/forwarding`). For netpath's own reads of the init netns's
/// settings; a lab netns's sysctls go through [`write`] and [`apply`].
pub fn path_of(key: &str) -> String {
    if key.contains('/') {
        format!("/proc/sys/{}", key.trim_start_matches('/'))
    } else {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }
}

/// Why a sysctl was not set.
enum Refusal {
    /// Not netpath's to set, or not where it must be: the reason.
    Refused(String),
    /// The kernel's answer.
    Io(io::Error),
}

/// The (device, inode) of a namespace file.
fn ns_id(path: &str) -> io::Result<(u64, u64)> {
    let m = fs::metadata(path)?;
    Ok((m.dev(), m.ino()))
}

/// Write `value` to `key` from the calling thread, which must be in a lab netns.
fn set_here(key: &SysctlKey, value: &str) -> std::result::Result<(), Refusal> {
    let here = ns_id("/proc/thread-self/ns/net").map_err(Refusal::Io)?;
    // The host's netns: pid 1's where this process may look at it (a sandbox may not let it),
    // and always the one netpath started in (its main thread's: lab threads enter labs, the
    // main thread never does).
    let init = ns_id("/proc/1/ns/net").ok();
    let own = ns_id("/proc/self/ns/net").map_err(Refusal::Io)?;
    if Some(here) == init || here == own {
        return Err(Refusal::Refused("refused: the writing thread is in the host's netns, not in a lab netns".into()));
    }
    let real = key.path().canonicalize().map_err(Refusal::Io)?;
    if !real.starts_with("/proc/sys/net/") {
        return Err(Refusal::Refused(format!(
            "refused: its file resolves to {}, outside /proc/sys/net",
            real.display()
        )));
    }
    // Canonical already: a symlink here would be a swap.
    let mut file = OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(&real).map_err(Refusal::Io)?;
    file.write_all(format!("{value}\n").as_bytes()).map_err(Refusal::Io)
}

/// Why a key the lab netns lacks is missing.
const NOT_HERE: &str = "no such sysctl in this netns: the kernel lacks the feature or it is not per-netns (a child netns has no copy of it)";

/// Mirrors `ip netns exec NS sysctl -w KEY=VALUE`, for netpath's own settings of a lab netns
/// (`nf_log`): the same checks as a scenario's.
pub fn write(ns: &Netns, key: &str, value: &str) -> Result<()> {
    let refused = |message: String| Error::LabSysctl {
        at: "netpath".into(),
        netns: ns.name().to_string(),
        key: key.to_string(),
        message,
    };
    let checked = SysctlKey::parse(key).map_err(refused)?;
    ns.run(|| match set_here(&checked, value) {
        Ok(()) => Ok(()),
        Err(Refusal::Refused(m)) => Err(refused(m)),
        Err(Refusal::Io(e)) => {
            let hint = if e.kind() == io::ErrorKind::NotFound { format!(" ({NOT_HERE})") } else { String::new() };
            Err(Error::Sysctl { netns: ns.name().to_string(), key: format!("{key}{hint}"), source: e })
        }
    })
}

/// Set a scenario's `sysctls` of netns `name` in `ns`; an error is located at the key's line
/// in the scenario file (`source`).
pub fn apply(ns: &Netns, name: &str, sysctls: &BTreeMap<String, String>, source: &Source) -> Result<()> {
    for (key, value) in sysctls {
        let fail = |message: String| Error::LabSysctl {
            at: source.sysctl_at(name, key),
            netns: name.to_string(),
            key: key.clone(),
            message,
        };
        // Loading checked it; a scenario built in Rust may not have been loaded.
        let checked = SysctlKey::parse(key).map_err(fail)?;
        if let Some(why) = crate::scenario::sysctl::value_problem(value) {
            return Err(fail(why));
        }
        ns.run(|| match set_here(&checked, value) {
            Ok(()) => Ok(()),
            Err(Refusal::Refused(m)) => Err(fail(m)),
            Err(Refusal::Io(e)) if e.kind() == io::ErrorKind::NotFound => Err(fail(match near(&checked) {
                Some((key, path)) => format!("{NOT_HERE}; did you mean `{key}` ({})?", path.display()),
                None => NOT_HERE.into(),
            })),
            Err(Refusal::Io(e)) => Err(fail(format!("writing `{value}`: {e}"))),
        })?;
    }
    Ok(())
}

/// The sysctl of this netns nearest to `key`, which it lacks, and its file: each component
/// that is not in its folder replaced by the nearest name there (at most two edits apart),
/// `net.ipv4.conf.all.fowarding` -> `net.ipv4.conf.all.forwarding`. Called from a thread in the
/// netns: /proc/sys/net is that netns's.
fn near(key: &SysctlKey) -> Option<(String, std::path::PathBuf)> {
    let mut parts: Vec<String> = key.parts().to_vec();
    let mut dir = std::path::PathBuf::from("/proc/sys");
    for part in parts.iter_mut() {
        if !dir.join(&*part).exists() {
            let names = fs::read_dir(&dir).ok()?.filter_map(|e| e.ok()?.file_name().into_string().ok());
            let (d, best) = names.map(|n| (crate::scenario::edit_distance(part, &n), n)).min()?;
            if d > 2 || d >= part.len() {
                return None;
            }
            *part = best;
        }
        dir.push(&*part);
    }
    Some((parts.join("."), dir))
}

/// Mirrors `ip netns exec NS sysctl -n KEY`.
pub fn read(ns: &Netns, key: &str) -> Result<String> {
    let path = path_of(key);
    ns.run(move || {
        fs::read_to_string(Path::new(&path)).map(|s| s.trim().to_string()).map_err(|e| Error::Sysctl {
            netns: ns.name().to_string(),
            key: key.to_string(),
            source: e,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check comes before any write: a thread of the netns netpath started in (this test's)
    /// is refused even a key that loading accepts.
    #[test]
    fn a_thread_of_the_init_netns_is_refused() {
        let key = SysctlKey::parse("net.ipv4.ip_forward").unwrap();
        match set_here(&key, "0") {
            Err(Refusal::Refused(m)) => assert!(m.contains("the host's netns"), "{m}"),
            Err(Refusal::Io(e)) => panic!("not refused but tried: {e}"),
            Ok(()) => panic!("wrote the init netns's ip_forward"),
        }
    }
}
