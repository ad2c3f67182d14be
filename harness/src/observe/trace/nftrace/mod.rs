//! nf_tables trace events (`NFT_MSG_TRACE` on `NETLINK_NETFILTER` group `NFNLGRP_NFTRACE`).
//!
//! When a packet carries the nftrace bit (iptables-nft `-j TRACE`, native
//! `meta nftrace set 1`), the kernel multicasts one message per traced step to
//! the listeners of group 9 in the packet's network namespace: what `nft monitor
//! trace` and `xtables-monitor --trace` print. This module decodes those messages
//! ([`decode`]), collects them from a socket ([`NfTraceSocket`]) and names the
//! rule positions the way legacy iptables TRACE does ([`RuleIndex`]).
//!
//! Wire format (include/uapi/linux/netfilter/nf_tables.h, net/netfilter/nf_tables_trace.c):
//! `nlmsghdr` (host order) + `nfgenmsg` (family, version, res_id) + attributes
//! `NFTA_TRACE_*`. Integer attributes are big-endian, as in the rest of nf_tables
//! (`NFTA_TRACE_ID` is an opaque hash written in host order by recent kernels but
//! read with `ntohl` by libnftnl; it is read big-endian here so that it equals the
//! `trace id` that `nft monitor trace` prints).
//!
//! In three parts: the wire format (`wire`: constants, [`decode`], [`split_messages`]), the
//! socket ([`NfTraceSocket`], on netlink-sys) and the rule index ([`RuleIndex`]).
//!
//! # What the kernel sends (measured on Linux 6.18, see the fixtures)
//!
//! For each base chain a traced packet meets, in order:
//! - one `Rule` event per rule that matched (non-matching rules send nothing), carrying the
//!   rule handle and its verdict: `continue` for non-terminal rules (`-j TRACE` / `meta nftrace
//!   set 1`, counter, `mark set`...), `jump X`/`goto X`, `return`, `accept`, `drop`;
//! - when the end of a chain is reached (base or user chain, also a chain without rules):
//!   a "chain end" event, `Rule` type **without handle** with verdict `continue` (kernels before
//!   the `NF_VERDICT_MASK` change sent it as type `Return`); see [`NfTraceMsg::is_chain_end`].
//!   Neither `nft monitor trace` nor `xtables-monitor --trace` prints it;
//! - at the end of a base chain, after its chain-end event, a `Policy` event.
//!
//! The first event of each base chain carries the packet (`iif`/`oif`, headers, and conntrack
//! information once conntrack has seen the packet); later events of that chain do not.

mod rules;
mod socket;
mod wire;

pub use rules::*;
pub use socket::{NfTraceSocket, Received};
pub use wire::*;

/// Netlink messages of a fixture: one hex message a line, `#` lines are comments.
#[cfg(test)]
pub(crate) fn fixture(text: &str) -> Vec<Vec<u8>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| (0..l.len()).step_by(2).map(|i| u8::from_str_radix(&l[i..i + 2], 16).expect("hex")).collect())
        .collect()
}

/// The trace events of a fixture (see [`fixture`]).
#[cfg(test)]
pub(crate) fn fixture_messages(text: &str) -> Vec<NfTraceMsg> {
    fixture(text).iter().map(|m| decode(m).expect("decodes").expect("is a trace event")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::os::fd::AsRawFd;

    const IPT_FORWARD: &str = include_str!("../fixtures/nftrace_ipt_forward.hex");
    const NATIVE_INET: &str = include_str!("../fixtures/nftrace_native_inet.hex");
    const BRIDGE: &str = include_str!("../fixtures/nftrace_bridge.hex");
    const IPT_RULESET: &str = include_str!("../fixtures/nftrace_ipt_ruleset.json");
    const IPT_SAVE: &str = include_str!("../fixtures/nftrace_ipt_save.txt");
    const NATIVE_RULESET: &str = include_str!("../fixtures/nftrace_native_ruleset.json");

    pub(crate) use super::fixture_messages as decode_all;

    /// (table, chain, type, handle, verdict) of an event.
    type Step = (String, String, TraceType, Option<u64>, Option<String>);

    fn steps(msgs: &[NfTraceMsg]) -> Vec<Step> {
        msgs.iter()
            .map(|m| {
                (
                    m.table.clone(),
                    m.chain.clone(),
                    m.trace_type,
                    m.rule_handle,
                    m.verdict.as_ref().map(|v| v.to_string()),
                )
            })
            .collect()
    }

    fn step(table: &str, chain: &str, ty: TraceType, handle: Option<u64>, verdict: Option<&str>) -> Step {
        (table.into(), chain.into(), ty, handle, verdict.map(str::to_string))
    }

    fn names(idx: &RuleIndex, msgs: &[NfTraceMsg]) -> Vec<Option<String>> {
        msgs.iter().map(|m| idx.name(m).map(|(t, c, k, n)| format!("{t}:{c}:{k}:{n}"))).collect()
    }

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| if s.is_empty() { None } else { Some(s.to_string()) }).collect()
    }

    use TraceType::{Policy, Rule};

    #[test]
    fn iptables_nft_forward_sequence() {
        let msgs = decode_all(IPT_FORWARD);
        assert_eq!(
            steps(&msgs),
            vec![
                step("raw", "PREROUTING", Rule, Some(3), Some("continue")),
                step("raw", "PREROUTING", Rule, None, Some("continue")),
                step("raw", "PREROUTING", Policy, None, None),
                step("mangle", "PREROUTING", Rule, None, Some("continue")),
                step("mangle", "PREROUTING", Policy, None, None),
                step("mangle", "FORWARD", Rule, None, Some("continue")),
                step("mangle", "FORWARD", Policy, None, None),
                step("filter", "FORWARD", Rule, Some(6), Some("jump EMPTY")),
                step("filter", "EMPTY", Rule, None, Some("continue")),
                step("filter", "FORWARD", Rule, Some(7), Some("jump USER")),
                step("filter", "USER", Rule, Some(8), Some("continue")),
                step("filter", "USER", Rule, None, Some("continue")),
                step("filter", "FORWARD", Rule, None, Some("continue")),
                step("filter", "FORWARD", Policy, None, None),
            ]
        );
        for m in &msgs {
            assert_eq!(m.id, 0xf32d5b6c, "one packet, one id (as nft monitor prints it)");
            assert_eq!(m.family, family::IPV4);
            assert_eq!(m.nfproto, Some(2));
            assert_eq!(m.mark, None);
            if m.trace_type == Policy {
                assert_eq!(m.policy, Some(1));
            }
        }
        let chain_ends: Vec<usize> = (0..msgs.len()).filter(|&i| msgs[i].is_chain_end()).collect();
        assert_eq!(chain_ends, vec![1, 3, 5, 8, 11, 12]);
        // The first event of each base chain carries the packet, the others do not.
        let with_headers: Vec<usize> = (0..msgs.len()).filter(|&i| msgs[i].network_header.is_some()).collect();
        assert_eq!(with_headers, vec![0, 3, 5, 7]);
        assert_eq!((msgs[0].iif, msgs[0].iiftype, msgs[0].oif), (Some(2), Some(1), None));
        assert_eq!((msgs[7].iif, msgs[7].oif, msgs[7].oiftype), (Some(2), Some(3), Some(1)));
    }

    #[test]
    fn iptables_trace_of_icmp_echo_has_ipv4_headers() {
        let m = &decode_all(IPT_FORWARD)[0];
        let ll = m.lladdr_header.as_deref().unwrap();
        assert_eq!(ll.len(), 14);
        assert_eq!(&ll[12..14], &[0x08, 0x00], "ethertype IPv4");
        let ip = m.network_header.as_deref().unwrap();
        assert_eq!(ip.len(), 20);
        assert_eq!(ip[0] >> 4, 4, "IPv4");
        assert_eq!((ip[0] & 0xf) * 4, 20, "IHL");
        assert_eq!(ip[9], 1, "ICMP");
        assert_eq!(ip[8], 64, "TTL before forwarding");
        assert_eq!(&ip[12..16], &[10, 0, 1, 2]);
        assert_eq!(&ip[16..20], &[10, 0, 2, 2]);
        let icmp = m.transport_header.as_deref().unwrap();
        assert_eq!((icmp[0], icmp[1]), (8, 0), "echo request");
        // In FORWARD the TTL is decremented already.
        assert_eq!(decode_all(IPT_FORWARD)[7].network_header.as_ref().unwrap()[8], 63);
    }

    #[test]
    fn jump_verdict_and_display() {
        let msgs = decode_all(IPT_FORWARD);
        let v = msgs[7].verdict.as_ref().unwrap();
        assert_eq!(v.code, verdict::JUMP);
        assert_eq!(v.chain.as_deref(), Some("EMPTY"));
        assert_eq!(v.name(), "jump");
        assert!(!v.is_terminal());
        assert_eq!(
            msgs[7].to_string(),
            "trace id f32d5b6c ip filter FORWARD rule handle 6 verdict jump EMPTY iif 2 oif 3"
        );
        assert_eq!(msgs[13].to_string(), "trace id f32d5b6c ip filter FORWARD policy accept");
    }

    #[test]
    fn policy_accept_event() {
        let m = &decode_all(IPT_FORWARD)[2];
        assert_eq!(m.trace_type, Policy);
        assert_eq!(m.policy, Some(1));
        assert_eq!(m.verdict, None);
        assert_eq!(m.rule_handle, None);
        assert!(!m.is_chain_end());
    }

    #[test]
    fn rule_index_names_like_legacy_trace() {
        let idx = RuleIndex::from_nft_json(IPT_RULESET).unwrap().with_iptables_save(IPT_SAVE);
        let msgs = decode_all(IPT_FORWARD);
        assert_eq!(
            names(&idx, &msgs),
            some(&[
                "raw:PREROUTING:rule:1",
                "",
                "raw:PREROUTING:policy:2",
                "",
                "mangle:PREROUTING:policy:1",
                "",
                "mangle:FORWARD:policy:1",
                "filter:FORWARD:rule:1",
                "filter:EMPTY:return:1",
                "filter:FORWARD:rule:2",
                "filter:USER:rule:1",
                "filter:USER:return:3",
                "",
                "filter:FORWARD:policy:3",
            ])
        );
        let r = idx.rule_of(&msgs[0]).unwrap();
        assert_eq!(r.iptables.as_deref(), Some("-A PREROUTING -p icmp -j TRACE"));
        assert_eq!(r.summary, "meta l4proto icmp counter meta nftrace set 1");
        assert_eq!(r.text(), "-A PREROUTING -p icmp -j TRACE");
        assert_eq!(idx.rule_of(&msgs[10]).unwrap().text(), "-A USER -p icmp -m comment --comment nonterminal");
        assert_eq!(idx.rule(family::IPV4, "filter", "USER", 9).unwrap().position, 2);
        assert_eq!(idx.rule(family::IPV4, "filter", "USER", 9).unwrap().summary, "meta l4proto tcp counter drop");
        assert_eq!(idx.chain_len(family::IPV4, "filter", "EMPTY"), Some(0));
        assert_eq!(idx.chain_len(family::IPV4, "mangle", "PREROUTING"), Some(0));
        assert_eq!(idx.chain_len(family::IPV4, "nat", "PREROUTING"), None);
        assert!(idx.is_base_chain(family::IPV4, "filter", "FORWARD"));
        assert!(!idx.is_base_chain(family::IPV4, "filter", "USER"));
        // Without the iptables listing, the summary is the text.
        let bare = RuleIndex::from_nft_json(IPT_RULESET).unwrap();
        assert_eq!(bare.rule_of(&msgs[9]).unwrap().text(), "meta l4proto icmp counter jump USER");
        assert_eq!(names(&bare, &msgs), names(&idx, &msgs));
    }

    #[test]
    fn iptables_save_with_counters() {
        let save = "*filter\n:FORWARD ACCEPT [0:0]\n[5:420] -A FORWARD -p icmp -j EMPTY\n[1:84] -A FORWARD -p icmp -j USER\nCOMMIT\n";
        let idx = RuleIndex::from_nft_json(IPT_RULESET).unwrap().with_iptables_save(save);
        let r = idx.rule(family::IPV4, "filter", "FORWARD", 7).unwrap();
        assert_eq!(r.iptables.as_deref(), Some("-A FORWARD -p icmp -j USER"));
        // Other families are not touched.
        let idx6 = RuleIndex::from_nft_json(IPT_RULESET).unwrap().with_iptables_save_family(family::IPV6, save);
        assert_eq!(idx6.rule(family::IPV4, "filter", "FORWARD", 7).unwrap().iptables, None);
    }

    #[test]
    fn native_inet_goto_return_ct_mark_drop() {
        let msgs = decode_all(NATIVE_INET);
        assert_eq!(
            steps(&msgs),
            vec![
                // echo request, forwarded
                step("t", "pre", Rule, Some(6), Some("continue")),
                step("t", "pre", Rule, None, Some("continue")),
                step("t", "pre", Policy, None, None),
                step("t", "fwdc", Rule, Some(7), Some("continue")),
                step("t", "fwdc", Rule, Some(8), Some("jump userc")),
                step("t", "userc", Rule, Some(11), Some("continue")),
                step("t", "userc", Rule, None, Some("continue")),
                step("t", "fwdc", Rule, Some(9), Some("goto gotoc")),
                step("t", "gotoc", Rule, Some(12), Some("accept")),
                // echo reply, forwarded
                step("t", "pre", Rule, Some(6), Some("continue")),
                step("t", "pre", Rule, None, Some("continue")),
                step("t", "pre", Policy, None, None),
                step("t", "fwdc", Rule, Some(7), Some("continue")),
                step("t", "fwdc", Rule, Some(8), Some("jump userc")),
                step("t", "userc", Rule, Some(10), Some("return")),
                step("t", "fwdc", Rule, None, Some("continue")),
                step("t", "fwdc", Policy, None, None),
                // echo request to the router itself: input policy drop
                step("t", "pre", Rule, Some(6), Some("continue")),
                step("t", "pre", Rule, None, Some("continue")),
                step("t", "pre", Policy, None, None),
                step("t", "inc", Rule, None, Some("continue")),
                step("t", "inc", Policy, None, None),
            ]
        );
        assert!(msgs.iter().all(|m| m.family == family::INET && m.nfproto == Some(2)));
        let ids: Vec<u32> = msgs.iter().map(|m| m.id).collect();
        assert_eq!(ids[..9], [0xb7efc2cd; 9]);
        assert_eq!(ids[9..17], [0x169ee0be; 8]);
        assert_eq!(ids[17..], [0x3dc16b4a; 5]);
        // goto carries its target; explicit return is a rule event with verdict return.
        assert_eq!(msgs[7].verdict, Some(Verdict { code: verdict::GOTO, chain: Some("gotoc".into()) }));
        assert_eq!(msgs[14].verdict.as_ref().unwrap().code, verdict::RETURN);
        assert!(!msgs[14].is_chain_end());
        assert!(msgs[8].verdict.as_ref().unwrap().is_terminal());
        // meta mark set 0x2a shows in the following events.
        assert_eq!((msgs[4].mark, msgs[5].mark, msgs[8].mark), (None, Some(0x2a), Some(0x2a)));
        // Conntrack information on the first event after conntrack: new/original, established/reply.
        assert_eq!((msgs[3].ct_state, msgs[3].ct_direction, msgs[3].ct_status), (Some(8), Some(0), None));
        assert_eq!((msgs[12].ct_state, msgs[12].ct_direction, msgs[12].ct_status), (Some(2), Some(1), Some(10)));
        assert_eq!(msgs[3].ct_id, msgs[12].ct_id);
        assert_eq!(msgs[0].ct_state, None, "raw priority runs before conntrack");
        assert_eq!(msgs[21].policy, Some(0), "policy drop");
        assert_eq!(msgs[21].to_string(), "trace id 3dc16b4a inet t inc policy drop");

        let idx = RuleIndex::from_nft_json(NATIVE_RULESET).unwrap();
        assert_eq!(
            names(&idx, &msgs),
            some(&[
                "t:pre:rule:1",
                "",
                "t:pre:policy:2",
                "t:fwdc:rule:1",
                "t:fwdc:rule:2",
                "t:userc:rule:2",
                "t:userc:return:3",
                "t:fwdc:rule:3",
                "t:gotoc:rule:1",
                "t:pre:rule:1",
                "",
                "t:pre:policy:2",
                "t:fwdc:rule:1",
                "t:fwdc:rule:2",
                "t:userc:rule:1",
                "",
                "t:fwdc:policy:4",
                "t:pre:rule:1",
                "",
                "t:pre:policy:2",
                "",
                "t:inc:policy:1",
            ])
        );
        let pre = idx.rule_of(&msgs[0]).unwrap();
        assert_eq!(pre.comment.as_deref(), Some("trace icmp"));
        assert_eq!(pre.text(), "ip protocol icmp meta nftrace set 1 comment \"trace icmp\"");
        assert_eq!(idx.rule_of(&msgs[3]).unwrap().summary, "ct state { established, new } counter");
        assert_eq!(idx.rule_of(&msgs[7]).unwrap().summary, "icmp type echo-request goto gotoc");
        assert_eq!(idx.rule_of(&msgs[5]).unwrap().summary, "meta mark set 42");
        assert_eq!(idx.chain(family::INET, "t", "inc").unwrap().policy.as_deref(), Some("drop"));
    }

    #[test]
    fn bridge_family_event() {
        let msgs = decode_all(BRIDGE);
        assert_eq!(
            steps(&msgs),
            vec![
                step("t", "pre", Rule, Some(3), Some("continue")),
                step("t", "pre", Rule, None, Some("continue")),
                step("t", "pre", Policy, None, None),
                step("t", "fwdc", Rule, Some(4), Some("continue")),
                step("t", "fwdc", Rule, None, Some("continue")),
                step("t", "fwdc", Policy, None, None),
            ]
        );
        let m = &msgs[3];
        assert_eq!(m.family, family::BRIDGE);
        assert_eq!(m.family_name(), "bridge");
        assert_eq!(m.nfproto, Some(7));
        assert_eq!((m.iif, m.oif), (Some(3), Some(4)), "bridge ports");
        assert_eq!(&m.lladdr_header.as_ref().unwrap()[12..14], &[0x08, 0x00]);
        let ip = m.network_header.as_deref().unwrap();
        assert_eq!((ip[0] >> 4, ip[9]), (4, 1));
        assert_eq!(&ip[12..20], &[10, 9, 0, 1, 10, 9, 0, 2]);
    }

    /// Offset of the payload of top-level attribute `ty` in a message.
    fn attr_offset(msg: &[u8], ty: u16) -> usize {
        let mut off = NLMSG_HDRLEN + NFGENMSG_LEN;
        while off + 4 <= msg.len() {
            let len = u16::from_ne_bytes([msg[off], msg[off + 1]]) as usize;
            if u16::from_ne_bytes([msg[off + 2], msg[off + 3]]) & NLA_TYPE_MASK == ty {
                return off + 4;
            }
            off += align4(len);
        }
        panic!("no attribute {ty}");
    }

    #[test]
    fn return_type_of_older_kernels() {
        // Older kernels send the end of a user chain as NFT_TRACETYPE_RETURN: patch the
        // recorded chain-end event of EMPTY (type 3) to type 2.
        let mut msg = fixture(IPT_FORWARD)[8].clone();
        let off = attr_offset(&msg, NFTA_TRACE_TYPE);
        assert_eq!(&msg[off..off + 4], &3u32.to_be_bytes());
        msg[off..off + 4].copy_from_slice(&2u32.to_be_bytes());
        let m = decode(&msg).unwrap().unwrap();
        assert_eq!(m.trace_type, TraceType::Return);
        assert!(m.is_chain_end());
        assert_eq!(m.to_string(), "trace id f32d5b6c ip filter EMPTY return verdict continue");
        let idx = RuleIndex::from_nft_json(IPT_RULESET).unwrap();
        assert_eq!(idx.name(&m), Some(("filter".into(), "EMPTY".into(), "return", 1)));
        msg[off..off + 4].copy_from_slice(&77u32.to_be_bytes());
        let m = decode(&msg).unwrap().unwrap();
        assert_eq!(m.trace_type, TraceType::Other(77));
        assert_eq!(idx.name(&m), None);
    }

    #[test]
    fn unknown_attributes_are_ignored() {
        let orig = fixture(IPT_FORWARD)[0].clone();
        let mut msg = orig.clone();
        // type 30, 5 bytes of payload, padded to 12; also a nested-flagged unknown one.
        msg.extend_from_slice(&9u16.to_ne_bytes());
        msg.extend_from_slice(&30u16.to_ne_bytes());
        msg.extend_from_slice(&[1, 2, 3, 4, 5, 0, 0, 0]);
        msg.extend_from_slice(&4u16.to_ne_bytes());
        msg.extend_from_slice(&(31u16 | 0x8000).to_ne_bytes());
        let len = msg.len() as u32;
        msg[..4].copy_from_slice(&len.to_ne_bytes());
        assert_eq!(decode(&msg).unwrap(), decode(&orig).unwrap());
    }

    #[test]
    fn other_messages_are_not_trace_events() {
        let mut msg = fixture(IPT_FORWARD)[0].clone();
        msg[4..6].copy_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | 6).to_ne_bytes()); // NEWRULE
        assert_eq!(decode(&msg), Ok(None));
        let mut err = vec![0u8; 36];
        err[..4].copy_from_slice(&36u32.to_ne_bytes());
        err[4..6].copy_from_slice(&2u16.to_ne_bytes()); // NLMSG_ERROR
        assert_eq!(decode(&err), Ok(None));
        assert_eq!(message_type(&err), Some(2));
    }

    #[test]
    fn missing_mandatory_attribute_is_an_error() {
        let mut msg = fixture(IPT_FORWARD)[2].clone();
        let off = attr_offset(&msg, NFTA_TRACE_ID);
        // Retype the id attribute as an unknown one.
        msg[off - 2..off].copy_from_slice(&60u16.to_ne_bytes());
        assert_eq!(decode(&msg), Err(DecodeError::Missing("NFTA_TRACE_ID")));
    }

    fn all_fixture_messages() -> Vec<Vec<u8>> {
        [IPT_FORWARD, NATIVE_INET, BRIDGE].iter().flat_map(|f| fixture(f)).collect()
    }

    #[test]
    fn prefixes_never_panic() {
        for msg in all_fixture_messages() {
            for n in 0..msg.len() {
                // A cut buffer: nlmsg_len no longer fits.
                assert!(decode(&msg[..n]).is_err(), "prefix {n} of {}", msg.len());
                // A consistent but short message: nlmsg_len = n, attributes cut anywhere.
                let mut short = msg[..n].to_vec();
                if n >= 4 {
                    short[..4].copy_from_slice(&(n as u32).to_ne_bytes());
                }
                let _ = decode(&short);
                let _ = split_messages(&short).count();
            }
        }
    }

    #[test]
    fn corrupted_bytes_never_panic() {
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for msg in all_fixture_messages() {
            for i in 0..msg.len() {
                for v in [0x00, 0xff, 0x01, 0x80] {
                    let mut m = msg.clone();
                    m[i] = v;
                    let _ = decode(&m);
                }
            }
            for _ in 0..200 {
                let mut m = msg.clone();
                for _ in 0..4 {
                    let i = (rnd() as usize) % m.len();
                    m[i] = rnd() as u8;
                }
                let _ = decode(&m);
            }
        }
        for _ in 0..2000 {
            let len = (rnd() % 300) as usize;
            let mut m: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
            if len >= 6 {
                m[..4].copy_from_slice(&(len as u32).to_ne_bytes());
                m[4..6].copy_from_slice(&NFT_TRACE_MSG_TYPE.to_ne_bytes());
            }
            let _ = decode(&m);
            let _ = split_messages(&m).map(decode).count();
        }
    }

    #[test]
    fn split_datagram_with_several_messages() {
        let msgs = fixture(IPT_FORWARD);
        let mut dgram = Vec::new();
        for m in &msgs {
            dgram.extend_from_slice(m);
            dgram.resize(align4(dgram.len()), 0);
        }
        let parts: Vec<&[u8]> = split_messages(&dgram).collect();
        assert_eq!(parts.len(), msgs.len());
        for (p, m) in parts.iter().zip(&msgs) {
            assert_eq!(p, &m.as_slice());
        }
        // A broken header ends the iteration.
        dgram.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(split_messages(&dgram).count(), msgs.len());
    }

    #[test]
    fn verdict_names() {
        let v = |code| Verdict { code, chain: None };
        assert_eq!(v(1).name(), "accept");
        assert_eq!(v(0).name(), "drop");
        assert_eq!(v((7 << 16) | 3).name(), "queue");
        assert_eq!(v((7 << 16) | 3).base(), 3);
        assert_eq!(v(-1).name(), "continue");
        assert_eq!(v(-2).name(), "break");
        assert_eq!(v(-5).name(), "return");
        assert_eq!(v(-9).to_string(), "unknown(-9)");
        assert_eq!(family_from_name("bridge"), Some(family::BRIDGE));
        assert_eq!(family_name(10), Some("ip6"));
    }

    #[test]
    fn rule_index_rejects_other_json() {
        assert!(matches!(RuleIndex::from_nft_json("{"), Err(RuleIndexError::Json(_))));
        assert!(matches!(RuleIndex::from_nft_json("{\"x\":1}"), Err(RuleIndexError::Format(_))));
        let empty = RuleIndex::from_nft_json("{\"nftables\":[]}").unwrap();
        assert_eq!(empty.name(&decode_all(IPT_FORWARD)[0]), None);
    }

    #[test]
    fn socket_opens_and_drains_without_blocking() {
        // Joining NFNLGRP_NFTRACE needs CAP_NET_ADMIN; skip where the test runs without it.
        let mut s = match NfTraceSocket::open() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return,
            Err(e) => panic!("open: {e}"),
        };
        assert!(s.as_raw_fd() >= 0);
        // As root SO_RCVBUFFORCE passes rmem_max; the kernel doubles what it is asked.
        if nix::unistd::geteuid().is_root() {
            assert_eq!(s.rcvbuf().unwrap(), 2 * socket::RCVBUF as usize);
        }
        let got = s.recv_all().expect("recv_all");
        // Events of other tests' traffic in this netns are possible; none must be malformed.
        assert!(got.iter().all(|m| !m.table.is_empty()));
        assert_eq!(s.decode_errors(), 0);
    }
}
