//! `enum skb_drop_reason`: the names a scenario may expect (a fixed table: names are stable
//! across kernels, so a misspelt one is a load error), this kernel's numbers for them (they
//! differ between kernels: read at run time from the tracepoint's format file), and a line
//! that explains the common ones.

use std::collections::BTreeMap;

/// Every reason name Linux has had up to 6.18, without the `SKB_DROP_REASON_` prefix.
pub const NAMES: &[&str] = &[
    "NOT_SPECIFIED",
    "NO_SOCKET",
    "SOCKET_CLOSE",
    "SOCKET_FILTER",
    "SOCKET_RCVBUFF",
    "UNIX_DISCONNECT",
    "UNIX_SKIP_OOB",
    "PKT_TOO_SMALL",
    "TCP_CSUM",
    "UDP_CSUM",
    "NETFILTER_DROP",
    "OTHERHOST",
    "IP_CSUM",
    "IP_INHDR",
    "IP_RPFILTER",
    "UNICAST_IN_L2_MULTICAST",
    "XFRM_POLICY",
    "IP_NOPROTO",
    "PROTO_MEM",
    "TCP_AUTH_HDR",
    "TCP_MD5NOTFOUND",
    "TCP_MD5UNEXPECTED",
    "TCP_MD5FAILURE",
    "TCP_AONOTFOUND",
    "TCP_AOUNEXPECTED",
    "TCP_AOKEYNOTFOUND",
    "TCP_AOFAILURE",
    "SOCKET_BACKLOG",
    "TCP_FLAGS",
    "TCP_ABORT_ON_DATA",
    "TCP_ZEROWINDOW",
    "TCP_OLD_DATA",
    "TCP_OVERWINDOW",
    "TCP_OFOMERGE",
    "TCP_RFC7323_PAWS",
    "TCP_RFC7323_PAWS_ACK",
    "TCP_RFC7323_TW_PAWS",
    "TCP_RFC7323_TSECR",
    "TCP_LISTEN_OVERFLOW",
    "TCP_OLD_SEQUENCE",
    "TCP_INVALID_SEQUENCE",
    "TCP_INVALID_END_SEQUENCE",
    "TCP_INVALID_ACK_SEQUENCE",
    "TCP_RESET",
    "TCP_INVALID_SYN",
    "TCP_CLOSE",
    "TCP_FASTOPEN",
    "TCP_OLD_ACK",
    "TCP_TOO_OLD_ACK",
    "TCP_ACK_UNSENT_DATA",
    "TCP_OFO_QUEUE_PRUNE",
    "TCP_OFO_DROP",
    "IP_OUTNOROUTES",
    "BPF_CGROUP_EGRESS",
    "IPV6DISABLED",
    "NEIGH_CREATEFAIL",
    "NEIGH_FAILED",
    "NEIGH_QUEUEFULL",
    "NEIGH_DEAD",
    "NEIGH_HH_FILLFAIL",
    "TC_EGRESS",
    "SECURITY_HOOK",
    "QDISC_DROP",
    "QDISC_OVERLIMIT",
    "QDISC_CONGESTED",
    "CAKE_FLOOD",
    "FQ_BAND_LIMIT",
    "FQ_HORIZON_LIMIT",
    "FQ_FLOW_LIMIT",
    "CPU_BACKLOG",
    "XDP",
    "TC_INGRESS",
    "UNHANDLED_PROTO",
    "SKB_CSUM",
    "SKB_GSO_SEG",
    "SKB_UCOPY_FAULT",
    "DEV_HDR",
    "DEV_READY",
    "FULL_RING",
    "NOMEM",
    "HDR_TRUNC",
    "TAP_FILTER",
    "TAP_TXFILTER",
    "ICMP_CSUM",
    "INVALID_PROTO",
    "IP_INADDRERRORS",
    "IP_INNOROUTES",
    "IP_LOCAL_SOURCE",
    "IP_INVALID_SOURCE",
    "IP_LOCALNET",
    "IP_INVALID_DEST",
    "PKT_TOO_BIG",
    "DUP_FRAG",
    "FRAG_REASM_TIMEOUT",
    "FRAG_TOO_FAR",
    "TCP_MINTTL",
    "IPV6_BAD_EXTHDR",
    "IPV6_TOO_MANY_EXTHDRS",
    "IPV6_NDISC_FRAG",
    "IPV6_NDISC_HOP_LIMIT",
    "IPV6_NDISC_BAD_CODE",
    "IPV6_NDISC_BAD_OPTIONS",
    "IPV6_NDISC_NS_OTHERHOST",
    "QUEUE_PURGE",
    "TC_COOKIE_ERROR",
    "PACKET_SOCK_ERROR",
    "TC_CHAIN_NOTFOUND",
    "TC_RECLASSIFY_LOOP",
    "VXLAN_INVALID_HDR",
    "VXLAN_VNI_NOT_FOUND",
    "MAC_INVALID_SOURCE",
    "VXLAN_ENTRY_EXISTS",
    "NO_TX_TARGET",
    "IP_TUNNEL_ECN",
    "TUNNEL_TXINFO",
    "LOCAL_MAC",
    "ARP_PVLAN_DISABLE",
    "MAC_IEEE_MAC_CONTROL",
    "BRIDGE_INGRESS_STP_STATE",
    "CAN_RX_INVALID_FRAME",
    "CANFD_RX_INVALID_FRAME",
    "CANXL_RX_INVALID_FRAME",
    "PFMEMALLOC",
    "DUALPI2_STEP_DROP",
    "PSP_INPUT",
    "PSP_OUTPUT",
    "RECURSION_LIMIT",
    "SKB_RX_HEADROOM",
];

/// Whether `name` is a drop reason some kernel has.
pub fn known(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Number to name, as one kernel numbers them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reasons(BTreeMap<u32, String>);

impl Reasons {
    /// Read from the format file of `skb:kfree_skb`, whose print format lists every reason as
    /// `{ 87, "IP_INADDRERRORS" }`; empty for a kernel whose tracepoint has no reason field.
    pub fn from_format(format: &str) -> Reasons {
        let Some(at) = format.find("__print_symbolic(REC->reason") else { return Reasons::default() };
        let mut out = BTreeMap::new();
        for entry in format[at..].split('{').skip(1) {
            let Some((n, rest)) = entry.split_once(',') else { continue };
            let Ok(n) = n.trim().parse::<u32>() else { continue };
            let Some(name) = rest.split('"').nth(1) else { continue };
            out.insert(n, name.to_string());
        }
        Reasons(out)
    }

    /// The name of reason number `n`.
    pub fn name(&self, n: u32) -> Option<&str> {
        self.0.get(&n).map(String::as_str)
    }

    /// Whether the kernel reports reasons at all.
    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// How many reasons it knows.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it knows none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where the tracepoint's format file is: tracefs, or under debugfs on older set-ups.
pub const FORMAT_FILES: [&str; 2] =
    ["/sys/kernel/tracing/events/skb/kfree_skb/format", "/sys/kernel/debug/tracing/events/skb/kfree_skb/format"];

/// This kernel's reasons, read from its format file (tracefs is mounted if it is not).
pub fn running() -> Result<Reasons, String> {
    let read = || FORMAT_FILES.iter().find_map(|f| std::fs::read_to_string(f).ok());
    if let Some(text) = read() {
        return Ok(Reasons::from_format(&text));
    }
    // A fresh machine may not have mounted tracefs: mounting it changes nothing else.
    let _ = nix::mount::mount(
        Some("nodev"),
        "/sys/kernel/tracing",
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    );
    read().map(|t| Reasons::from_format(&t)).ok_or_else(|| {
        format!("cannot read {} (mount tracefs: mount -t tracefs nodev /sys/kernel/tracing)", FORMAT_FILES[0])
    })
}

/// One line on what a common reason means, for reports.
pub fn explain(name: &str) -> Option<&'static str> {
    Some(match name {
        "NETFILTER_DROP" => "a netfilter rule or chain policy dropped it",
        "NO_SOCKET" => "nothing listens on the destination port",
        "IP_INADDRERRORS" => {
            "the host would have to forward it and forwarding is off (ip_forward = 0), or the destination is invalid"
        }
        "IP_INNOROUTES" => "no route to its destination",
        "IP_OUTNOROUTES" => "the sender has no route to its destination",
        "IP_RPFILTER" => {
            "reverse-path filtering: the reply route to its source leaves by another interface (rp_filter)"
        }
        "IP_LOCAL_SOURCE" => "its source address is one of the receiving host's own",
        "IP_INVALID_SOURCE" => "its source address is invalid (martian)",
        "NEIGH_FAILED" => "the next hop's link-layer address could not be resolved (no ARP / neighbour answer)",
        "NEIGH_QUEUEFULL" => "too many packets queued while the next hop's address was being resolved",
        "OTHERHOST" => "it was addressed to another host's MAC address",
        "BRIDGE_INGRESS_STP_STATE" => "the bridge port it came in on is not forwarding (STP state)",
        "IPV6DISABLED" => "IPv6 is disabled on the interface",
        "QDISC_DROP" => "the queueing discipline dropped it",
        "TC_INGRESS" | "TC_EGRESS" => "a tc filter dropped it",
        "XFRM_POLICY" => "an IPsec policy dropped it",
        "PKT_TOO_BIG" => "it is bigger than the path MTU and may not be fragmented",
        "NOT_SPECIFIED" => "the kernel gave no reason",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_numbers_come_from_the_format_file_and_the_names_from_the_table() {
        let r = Reasons::from_format(include_str!("fixtures/format_6.18.txt"));
        assert_eq!(r.name(87), Some("IP_INADDRERRORS"));
        assert_eq!(r.name(3), Some("NO_SOCKET"));
        assert_eq!(r.name(12), Some("NETFILTER_DROP"));
        assert!(r.len() > 100, "{}", r.len());
        for name in r.0.values() {
            assert!(name == "MAX" || known(name), "{name} is missing from NAMES");
        }
        assert!(!known("IP_INADDRERROR"), "a misspelt name is not a reason");
    }

    #[test]
    fn a_kernel_without_the_reason_field_has_no_reasons() {
        let old = "name: kfree_skb\nformat:\n\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n                   \tfield:void * location;\toffset:16;\tsize:8;\tsigned:0;\n                   print fmt: \"skbaddr=%p protocol=%u location=%p\", REC->skbaddr, REC->protocol, REC->location\n";
        assert!(!Reasons::from_format(old).any());
    }
}
