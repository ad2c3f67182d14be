//! Sysctls of one netns, written through /proc/sys from a thread inside it: the kernel resolves
//! /proc/sys/net against the netns of the thread that opens the file.

use std::fs;

use crate::error::{Error, Result};
use crate::lab::netns::Netns;

/// The /proc/sys file of `key`, resolved in the netns of the thread that opens it. As for
/// `sysctl`, a key may use `/` as its separator, so an interface name with a dot fits
/// (`net/ipv6/conf/eth0.100/forwarding`).
pub fn path_of(key: &str) -> String {
    if key.contains('/') {
        format!("/proc/sys/{}", key.trim_start_matches('/'))
    } else {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }
}

/// Mirrors `ip netns exec NS sysctl -w KEY=VALUE`.
pub fn write(ns: &Netns, key: &str, value: &str) -> Result<()> {
    let path = path_of(key);
    let value = value.to_string();
    ns.run(move || {
        fs::write(&path, format!("{value}\n")).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (no such sysctl in this netns: the kernel lacks the feature or it is not per-netns)"
            } else {
                ""
            };
            Error::Sysctl { netns: ns.name().to_string(), key: format!("{key}{hint}"), source: e }
        })
    })
}

/// Mirrors `ip netns exec NS sysctl -n KEY`.
pub fn read(ns: &Netns, key: &str) -> Result<String> {
    let path = path_of(key);
    ns.run(move || {
        fs::read_to_string(&path).map(|s| s.trim().to_string()).map_err(|e| Error::Sysctl {
            netns: ns.name().to_string(),
            key: key.to_string(),
            source: e,
        })
    })
}
