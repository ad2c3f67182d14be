//! What a `[[netns]] sysctls` entry may set: a per-netns sysctl under /proc/sys/net, named as
//! `sysctl` names it (`net.ipv4.ip_forward`, or with `/` as the separator where a component
//! has a dot: `net/ipv6/conf/eth0.100/forwarding`), with a one-line value. A key is checked
//! once into a [`SysctlKey`], and the lab builds the file's path from its components only.

use std::path::PathBuf;

/// The longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The longest value, in bytes: the kernel reads at most a page of a sysctl write.
pub const MAX_VALUE_BYTES: usize = 4096;

/// The net.* sysctls that are not the netns's own: they exist only in the init netns, or a
/// child netns shows them read-only or shares the host's value (checked on Linux 6.18: the
/// files under /proc/sys/net of the init netns that a fresh `unshare -n` lacks or shows
/// read-only, and `nf_hooks_lwtunnel`, which a child netns may write but which switches a
/// static key of the whole kernel on, for good). Refused at load with the reason; any other
/// key that the lab netns lacks fails at run time ("no such sysctl in this netns").
pub const GLOBAL: &[&str] = &[
    "net.core.bpf_jit_enable",
    "net.core.bpf_jit_harden",
    "net.core.bpf_jit_kallsyms",
    "net.core.bpf_jit_limit",
    "net.core.busy_poll",
    "net.core.busy_read",
    "net.core.default_qdisc",
    "net.core.dev_weight",
    "net.core.dev_weight_rx_bias",
    "net.core.dev_weight_tx_bias",
    "net.core.devconf_inherit_init_net",
    "net.core.fb_tunnels_only_for_init_net",
    "net.core.flow_limit_cpu_bitmap",
    "net.core.flow_limit_table_len",
    "net.core.gro_normal_batch",
    "net.core.high_order_alloc_disable",
    "net.core.max_skb_frags",
    "net.core.mem_pcpu_rsv",
    "net.core.message_burst",
    "net.core.message_cost",
    "net.core.netdev_budget",
    "net.core.netdev_budget_usecs",
    "net.core.netdev_max_backlog",
    "net.core.netdev_rss_key",
    "net.core.netdev_tstamp_prequeue",
    "net.core.netdev_unregister_timeout_secs",
    "net.core.rmem_default",
    "net.core.rmem_max",
    "net.core.rps_sock_flow_entries",
    "net.core.skb_defer_max",
    "net.core.warnings",
    "net.core.wmem_default",
    "net.core.wmem_max",
    "net.ipv4.cipso_cache_bucket_size",
    "net.ipv4.cipso_cache_enable",
    "net.ipv4.cipso_rbm_optfmt",
    "net.ipv4.cipso_rbm_strictvalid",
    "net.ipv4.fib_sync_mem",
    "net.ipv4.inet_peer_maxttl",
    "net.ipv4.inet_peer_minttl",
    "net.ipv4.inet_peer_threshold",
    "net.ipv4.ipfrag_secret_interval",
    "net.ipv4.route.error_burst",
    "net.ipv4.route.error_cost",
    "net.ipv4.route.gc_elasticity",
    "net.ipv4.route.gc_interval",
    "net.ipv4.route.gc_min_interval",
    "net.ipv4.route.gc_min_interval_ms",
    "net.ipv4.route.gc_thresh",
    "net.ipv4.route.gc_timeout",
    "net.ipv4.route.max_size",
    "net.ipv4.route.redirect_load",
    "net.ipv4.route.redirect_number",
    "net.ipv4.route.redirect_silence",
    "net.ipv4.tcp_available_ulp",
    "net.ipv4.tcp_low_latency",
    "net.ipv4.tcp_max_orphans",
    "net.ipv4.tcp_mem",
    "net.ipv4.udp_mem",
    "net.ipv6.calipso_cache_bucket_size",
    "net.ipv6.calipso_cache_enable",
    "net.ipv6.ip6frag_secret_interval",
    "net.ipv6.mld_max_msf",
    "net.ipv6.mld_qrv",
    "net.netfilter.nf_conntrack_buckets",
    "net.netfilter.nf_conntrack_expect_max",
    "net.netfilter.nf_conntrack_lwtunnel",
    "net.netfilter.nf_conntrack_max",
    "net.netfilter.nf_hooks_lwtunnel",
    "net.netfilter.nf_log_all_netns",
    "net.nf_conntrack_max",
];

/// A checked sysctl key: `net` and the components below it, none empty, `.` or `..`, none
/// with a `/`, white space or a control character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysctlKey {
    parts: Vec<String>,
}

impl SysctlKey {
    /// Check `key`; `Err` says why it is no per-netns net.* sysctl.
    pub fn parse(key: &str) -> Result<SysctlKey, String> {
        const ONLY: &str = "only per-netns net.* sysctls can be set in a lab netns";
        if key.is_empty() {
            return Err("the key is empty: name a sysctl (`net.ipv4.ip_forward`)".into());
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(format!("the key is longer than {MAX_KEY_BYTES} bytes"));
        }
        if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("the key has a space or a control character".into());
        }
        if key.starts_with('/') {
            return Err(format!(
                "a key is a sysctl name, not a path: `net.ipv4.ip_forward` or `net/ipv4/ip_forward` ({ONLY})"
            ));
        }
        let sep = if key.contains('/') { '/' } else { '.' };
        let parts: Vec<String> = key.split(sep).map(str::to_string).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("the key has an empty component (`{sep}{sep}`, or `{sep}` at an end)"));
        }
        if parts.iter().any(|p| p == "." || p == "..") {
            return Err(format!("the key has a `.` or `..` component: a key names a sysctl, not a path ({ONLY})"));
        }
        if parts[0] != "net" {
            return Err(format!(
                "{ONLY}: `{}` is the host's, and setting it here would change the host",
                parts.join(".")
            ));
        }
        if parts.len() < 2 {
            return Err(format!("`net` is a folder of sysctls: name one below it ({ONLY})"));
        }
        let key = SysctlKey { parts };
        if GLOBAL.contains(&key.dotted().as_str()) {
            return Err(format!(
                "{ONLY}: `{}` is global (the init netns's, or shared by every netns), so setting it would change the host",
                key.dotted()
            ));
        }
        Ok(key)
    }

    /// Its components, `net` first.
    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// `net.ipv4.ip_forward` (a component with a dot stays as it is).
    pub fn dotted(&self) -> String {
        self.parts.join(".")
    }

    /// Its file under /proc/sys, built from the components; the kernel resolves it in the
    /// netns of the thread that opens it.
    pub fn path(&self) -> PathBuf {
        let mut p = PathBuf::from("/proc/sys");
        p.extend(&self.parts);
        p
    }
}

/// Why `value` is no value for a sysctl (`None` when it is one): one line of at most
/// [`MAX_VALUE_BYTES`], without control characters but tabs (`tcp_rmem = "4096\t87380\t6291456"`).
pub fn value_problem(value: &str) -> Option<String> {
    if value.len() > MAX_VALUE_BYTES {
        Some(format!("the value is longer than {MAX_VALUE_BYTES} bytes"))
    } else if value.chars().any(|c| c.is_control() && c != '\t') {
        Some("the value has a newline or another control character: a sysctl value is one line".into())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_netns_net_sysctls() {
        let k = SysctlKey::parse("net.ipv4.ip_forward").unwrap();
        assert_eq!(k.path(), PathBuf::from("/proc/sys/net/ipv4/ip_forward"));
        let k = SysctlKey::parse("net/ipv6/conf/eth0.100/forwarding").unwrap();
        assert_eq!(k.path(), PathBuf::from("/proc/sys/net/ipv6/conf/eth0.100/forwarding"));
        assert_eq!(k.dotted(), "net.ipv6.conf.eth0.100.forwarding");
        assert!(SysctlKey::parse("net.netfilter.nf_log.2").is_ok());
        for (bad, why) in [
            ("kernel.panic", "only per-netns net.* sysctls"),
            ("vm.swappiness", "`vm.swappiness` is the host's"),
            ("net/ipv4/../../kernel/panic", "`..` component"),
            ("../../tmp/x/pwned", "`..` component"),
            ("net/./ipv4/ip_forward", "`..` component"),
            ("/proc/sys/net/ipv4/ip_forward", "not a path"),
            ("net..ipv4", "empty component"),
            ("net.ipv4.", "empty component"),
            ("net", "name one below it"),
            ("net.ipv4.ip\0forward", "control character"),
            ("net.ipv4.ip_forward\n", "control character"),
            ("net.core.rmem_max", "is global"),
            ("net/netfilter/nf_log_all_netns", "is global"),
            ("net.netfilter.nf_hooks_lwtunnel", "is global"),
            ("", "empty"),
        ] {
            let err = SysctlKey::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(SysctlKey::parse(&format!("net.{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn values_are_one_bounded_line() {
        assert_eq!(value_problem("1"), None);
        assert_eq!(value_problem("4096\t87380\t6291456"), None);
        assert!(value_problem("1\nkernel.panic=0").is_some());
        assert!(value_problem("\0").is_some());
        assert!(value_problem(&"1".repeat(MAX_VALUE_BYTES + 1)).is_some());
    }
}
