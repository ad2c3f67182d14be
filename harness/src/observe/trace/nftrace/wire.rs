//! The wire format of nf_tables trace events: `nlmsghdr` + `nfgenmsg` + `NFTA_TRACE_*`
//! attributes, decoded into [`NfTraceMsg`].

use std::fmt;

use crate::evidence::packet::PacketInfo;

/// `NFNL_SUBSYS_NFTABLES`.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_TRACE` (enum nf_tables_msg_types).
pub const NFT_MSG_TRACE: u16 = 17;
/// The netlink message type of a trace event: `(NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE`.
pub const NFT_TRACE_MSG_TYPE: u16 = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_TRACE;
/// `NFNLGRP_NFTRACE`, the multicast group of trace events.
pub const NFNLGRP_NFTRACE: u32 = 9;

pub(super) const NLMSG_HDRLEN: usize = 16;
pub(super) const NFGENMSG_LEN: usize = 4;
pub(super) const NLA_HDRLEN: usize = 4;
pub(super) const NLA_TYPE_MASK: u16 = 0x3fff;

// enum nft_trace_attributes
pub(super) const NFTA_TRACE_TABLE: u16 = 1;
pub(super) const NFTA_TRACE_CHAIN: u16 = 2;
pub(super) const NFTA_TRACE_RULE_HANDLE: u16 = 3;
pub(super) const NFTA_TRACE_TYPE: u16 = 4;
pub(super) const NFTA_TRACE_VERDICT: u16 = 5;
pub(super) const NFTA_TRACE_ID: u16 = 6;
pub(super) const NFTA_TRACE_LL_HEADER: u16 = 7;
pub(super) const NFTA_TRACE_NETWORK_HEADER: u16 = 8;
pub(super) const NFTA_TRACE_TRANSPORT_HEADER: u16 = 9;
pub(super) const NFTA_TRACE_IIF: u16 = 10;
pub(super) const NFTA_TRACE_IIFTYPE: u16 = 11;
pub(super) const NFTA_TRACE_OIF: u16 = 12;
pub(super) const NFTA_TRACE_OIFTYPE: u16 = 13;
pub(super) const NFTA_TRACE_MARK: u16 = 14;
pub(super) const NFTA_TRACE_NFPROTO: u16 = 15;
pub(super) const NFTA_TRACE_POLICY: u16 = 16;
// 17 is NFTA_TRACE_PAD; 18..=21 (conntrack information) were added by newer kernels.
pub(super) const NFTA_TRACE_CT_ID: u16 = 18;
pub(super) const NFTA_TRACE_CT_DIRECTION: u16 = 19;
pub(super) const NFTA_TRACE_CT_STATUS: u16 = 20;
pub(super) const NFTA_TRACE_CT_STATE: u16 = 21;

// enum nft_verdict_attributes
pub(super) const NFTA_VERDICT_CODE: u16 = 1;
pub(super) const NFTA_VERDICT_CHAIN: u16 = 2;

/// Address families (`nfgen_family`, `NFPROTO_*`).
pub mod family {
    pub const INET: u8 = 1;
    pub const IPV4: u8 = 2;
    pub const ARP: u8 = 3;
    pub const NETDEV: u8 = 5;
    pub const BRIDGE: u8 = 7;
    pub const IPV6: u8 = 10;
}

/// The nft name of a family number (`ip`, `ip6`, `inet`, `arp`, `bridge`, `netdev`).
pub fn family_name(family: u8) -> Option<&'static str> {
    Some(match family {
        family::INET => "inet",
        family::IPV4 => "ip",
        family::ARP => "arp",
        family::NETDEV => "netdev",
        family::BRIDGE => "bridge",
        family::IPV6 => "ip6",
        _ => return None,
    })
}

/// The family number of an nft family name (inverse of [`family_name`]).
pub fn family_from_name(name: &str) -> Option<u8> {
    Some(match name {
        "inet" => family::INET,
        "ip" => family::IPV4,
        "arp" => family::ARP,
        "netdev" => family::NETDEV,
        "bridge" => family::BRIDGE,
        "ip6" => family::IPV6,
        _ => return None,
    })
}

impl NfTraceMsg {
    /// The packet's network and transport headers, where this message carries them (the
    /// kernel sends them with a packet's first event in each hook only).
    pub fn headers(&self) -> Option<PacketInfo> {
        let mut bytes = self.network_header.clone()?;
        bytes.extend_from_slice(self.transport_header.as_deref().unwrap_or_default());
        PacketInfo::from_ip_header(&bytes)
    }

    /// The payload bytes the transport header attribute brought after the transport header of
    /// `info` (the kernel sends up to 20 bytes: 12 of an ICMP echo's or a UDP datagram's payload).
    pub fn payload_start(&self, info: &PacketInfo) -> Option<&[u8]> {
        let header = match info.proto? {
            1 | 58 | 17 => 8,
            _ => return None,
        };
        self.transport_header.as_deref()?.get(header..).filter(|b| !b.is_empty())
    }
}

/// `NFTA_TRACE_TYPE` (enum nft_trace_types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceType {
    /// `NFT_TRACETYPE_UNSPEC` (0).
    Unspec,
    /// The end of a base chain was reached: its policy decided (1).
    Policy,
    /// Implicit return at the end of a chain (2). Linux 6.18 no longer sends it: the chain end
    /// comes as a `Rule` event without handle (see [`NfTraceMsg::is_chain_end`]).
    Return,
    /// A rule matched; its verdict is in [`NfTraceMsg::verdict`] (3).
    Rule,
    /// A type this module does not know.
    Other(u32),
}

impl TraceType {
    pub fn from_u32(v: u32) -> TraceType {
        match v {
            0 => TraceType::Unspec,
            1 => TraceType::Policy,
            2 => TraceType::Return,
            3 => TraceType::Rule,
            n => TraceType::Other(n),
        }
    }

    pub fn as_u32(self) -> u32 {
        match self {
            TraceType::Unspec => 0,
            TraceType::Policy => 1,
            TraceType::Return => 2,
            TraceType::Rule => 3,
            TraceType::Other(n) => n,
        }
    }
}

/// Verdict codes (`NF_*` from linux/netfilter.h, `NFT_*` from nf_tables.h).
pub mod verdict {
    pub const DROP: i32 = 0;
    pub const ACCEPT: i32 = 1;
    pub const STOLEN: i32 = 2;
    pub const QUEUE: i32 = 3;
    pub const REPEAT: i32 = 4;
    pub const STOP: i32 = 5;
    pub const CONTINUE: i32 = -1;
    pub const BREAK: i32 = -2;
    pub const JUMP: i32 = -3;
    pub const GOTO: i32 = -4;
    pub const RETURN: i32 = -5;
}

/// `NFTA_TRACE_VERDICT`: the nested `NFTA_VERDICT_CODE` and, for jump/goto, `NFTA_VERDICT_CHAIN`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Verdict {
    /// The raw code. Netfilter verdicts (>= 0) may carry data in the upper 16 bits
    /// (queue number, drop errno); [`Verdict::base`] strips it.
    pub code: i32,
    /// Target chain of a jump or goto.
    pub chain: Option<String>,
}

impl Verdict {
    /// The code without the data bits of `NF_QUEUE`/`NF_DROP_ERR` (`code & NF_VERDICT_MASK`
    /// for codes >= 0; negative nf_tables codes as they are).
    pub fn base(&self) -> i32 {
        if self.code >= 0 { self.code & 0xff } else { self.code }
    }

    /// The nft keyword: `accept`, `drop`, `continue`, `jump`, `goto`, `return`, `break`,
    /// `queue`, `stolen`, `repeat`, `stop`, or `unknown`.
    pub fn name(&self) -> &'static str {
        match self.base() {
            verdict::DROP => "drop",
            verdict::ACCEPT => "accept",
            verdict::STOLEN => "stolen",
            verdict::QUEUE => "queue",
            verdict::REPEAT => "repeat",
            verdict::STOP => "stop",
            verdict::CONTINUE => "continue",
            verdict::BREAK => "break",
            verdict::JUMP => "jump",
            verdict::GOTO => "goto",
            verdict::RETURN => "return",
            _ => "unknown",
        }
    }

    /// True for verdicts that end the packet's traversal of the hook (accept, drop, queue, stolen...).
    pub fn is_terminal(&self) -> bool {
        self.code >= 0
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.chain, self.name()) {
            (Some(c), n) => write!(f, "{n} {c}"),
            (None, "unknown") => write!(f, "unknown({})", self.code),
            (None, n) => f.write_str(n),
        }
    }
}

/// One decoded trace event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NfTraceMsg {
    /// `NFTA_TRACE_ID`: the same for every event of one packet (a hash, may collide).
    pub id: u32,
    /// `nfgen_family` of the table (see [`family`]).
    pub family: u8,
    pub trace_type: TraceType,
    pub table: String,
    pub chain: String,
    /// `NFTA_TRACE_RULE_HANDLE` (rule events only).
    pub rule_handle: Option<u64>,
    /// `NFTA_TRACE_VERDICT` (rule and return events).
    pub verdict: Option<Verdict>,
    /// `NFTA_TRACE_POLICY` of the base chain (policy events): 1 accept, 0 drop.
    pub policy: Option<u32>,
    /// Input interface index (in the packet's netns).
    pub iif: Option<u32>,
    /// Input device type (`ARPHRD_*`, 1 = ether).
    pub iiftype: Option<u16>,
    pub oif: Option<u32>,
    pub oiftype: Option<u16>,
    /// `skb->mark` when non-zero.
    pub mark: Option<u32>,
    /// `NFTA_TRACE_NFPROTO`: the protocol family the hook processes (for inet tables: 2 or 10).
    pub nfproto: Option<u32>,
    /// Link-layer header (sent with the first event of a packet in a hook, and only then).
    pub lladdr_header: Option<Vec<u8>>,
    /// Network header (IPv4/IPv6 header, ARP header...), first event of a hook only.
    pub network_header: Option<Vec<u8>>,
    /// Transport header (up to 20 bytes), first event of a hook only.
    pub transport_header: Option<Vec<u8>>,
    /// `NFTA_TRACE_CT_STATE` (newer kernels): `NF_CT_STATE_*_BIT` bitmask
    /// (1 invalid, 2 established, 4 related, 8 new, 64 untracked).
    pub ct_state: Option<u32>,
    /// `NFTA_TRACE_CT_DIRECTION` (0 original, 1 reply).
    pub ct_direction: Option<u8>,
    /// `NFTA_TRACE_CT_ID` (opaque).
    pub ct_id: Option<u32>,
    /// `NFTA_TRACE_CT_STATUS` (`IPS_*` bits).
    pub ct_status: Option<u32>,
}

impl NfTraceMsg {
    /// True for the event sent when evaluation reached the end of a chain without a verdict:
    /// no rule handle, verdict `continue` (or none), type `Rule` (Linux 6.18) or `Return`
    /// (older kernels). In a user chain it is the implicit return to the caller (legacy
    /// `return:N`); in a base chain a `Policy` event follows.
    pub fn is_chain_end(&self) -> bool {
        matches!(self.trace_type, TraceType::Rule | TraceType::Return)
            && self.rule_handle.is_none()
            && self.verdict.as_ref().is_none_or(|v| v.code == verdict::CONTINUE)
    }

    /// The nft family name (`ip`, `bridge`...), or the number.
    pub fn family_name(&self) -> String {
        family_name(self.family).map_or_else(|| self.family.to_string(), str::to_string)
    }
}

impl fmt::Display for NfTraceMsg {
    /// Close to the first line `nft monitor trace` prints for an event
    /// (`trace id 1b2c3d4e ip filter FORWARD rule handle 4 verdict jump USER`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trace id {:08x} {} {} {}", self.id, self.family_name(), self.table, self.chain)?;
        match self.trace_type {
            TraceType::Rule => {
                f.write_str(" rule")?;
                if let Some(h) = self.rule_handle {
                    write!(f, " handle {h}")?;
                }
                if let Some(v) = &self.verdict {
                    write!(f, " verdict {v}")?;
                }
            }
            TraceType::Return => {
                f.write_str(" return")?;
                if let Some(v) = &self.verdict {
                    write!(f, " verdict {v}")?;
                }
            }
            TraceType::Policy => {
                f.write_str(" policy")?;
                match self.policy {
                    Some(1) => f.write_str(" accept")?,
                    Some(0) => f.write_str(" drop")?,
                    Some(p) => write!(f, " {p}")?,
                    None => {}
                }
            }
            TraceType::Unspec => f.write_str(" unspec")?,
            TraceType::Other(n) => write!(f, " type {n}")?,
        }
        if let Some(i) = self.iif {
            write!(f, " iif {i}")?;
        }
        if let Some(o) = self.oif {
            write!(f, " oif {o}")?;
        }
        if let Some(m) = self.mark {
            write!(f, " mark 0x{m:08x}")?;
        }
        Ok(())
    }
}

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("netlink message truncated: {0}")]
    Truncated(&'static str),
    #[error("netlink message length {len} invalid for a buffer of {buf} bytes")]
    BadLength { len: usize, buf: usize },
    #[error("attribute {attr} has an invalid length {len}")]
    BadAttribute { attr: u16, len: usize },
    #[error("trace event lacks attribute {0}")]
    Missing(&'static str),
}

/// Iterates over the attributes of `buf`: yields (type without flags, payload).
pub(super) struct Attrs<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        if self.buf.len() < NLA_HDRLEN {
            self.buf = &[];
            return Some(Err(DecodeError::Truncated("attribute header")));
        }
        let len = u16::from_ne_bytes([self.buf[0], self.buf[1]]) as usize;
        let ty = u16::from_ne_bytes([self.buf[2], self.buf[3]]) & NLA_TYPE_MASK;
        if len < NLA_HDRLEN || len > self.buf.len() {
            self.buf = &[];
            return Some(Err(DecodeError::BadAttribute { attr: ty, len }));
        }
        let payload = &self.buf[NLA_HDRLEN..len];
        let next = align4(len).min(self.buf.len());
        self.buf = &self.buf[next..];
        Some(Ok((ty, payload)))
    }
}

pub(super) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { buf }
}

pub(super) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

pub(super) fn be_u16(attr: u16, p: &[u8]) -> Result<u16, DecodeError> {
    let b: [u8; 2] = p
        .get(..2)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::BadAttribute { attr, len: p.len() + NLA_HDRLEN })?;
    Ok(u16::from_be_bytes(b))
}

pub(super) fn be_u32(attr: u16, p: &[u8]) -> Result<u32, DecodeError> {
    let b: [u8; 4] = p
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::BadAttribute { attr, len: p.len() + NLA_HDRLEN })?;
    Ok(u32::from_be_bytes(b))
}

pub(super) fn be_u64(attr: u16, p: &[u8]) -> Result<u64, DecodeError> {
    let b: [u8; 8] = p
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or(DecodeError::BadAttribute { attr, len: p.len() + NLA_HDRLEN })?;
    Ok(u64::from_be_bytes(b))
}

/// An NLA_STRING: up to the first NUL (lossy UTF-8).
pub(super) fn nla_string(p: &[u8]) -> String {
    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

pub(super) fn decode_verdict(p: &[u8]) -> Result<Verdict, DecodeError> {
    let mut code = None;
    let mut chain = None;
    for a in attrs(p) {
        let (ty, payload) = a?;
        match ty {
            NFTA_VERDICT_CODE => code = Some(be_u32(ty, payload)? as i32),
            NFTA_VERDICT_CHAIN => chain = Some(nla_string(payload)),
            _ => {}
        }
    }
    Ok(Verdict { code: code.ok_or(DecodeError::Missing("NFTA_VERDICT_CODE"))?, chain })
}

/// The netlink message type (`nlmsg_type`) of a message, if it has a full header.
pub fn message_type(msg: &[u8]) -> Option<u16> {
    msg.get(4..6).map(|b| u16::from_ne_bytes([b[0], b[1]]))
}

/// Decodes one complete netlink message (nlmsghdr + nfgenmsg + attributes).
///
/// `Ok(None)` when it is another message (not `NFT_MSG_TRACE`, e.g. `NLMSG_ERROR`
/// or an nf_tables ruleset notification). Bytes after `nlmsg_len` are ignored.
/// Unknown attributes are skipped. Never panics.
pub fn decode(msg: &[u8]) -> Result<Option<NfTraceMsg>, DecodeError> {
    if msg.len() < NLMSG_HDRLEN {
        return Err(DecodeError::Truncated("nlmsghdr"));
    }
    let len = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize;
    if len < NLMSG_HDRLEN || len > msg.len() {
        return Err(DecodeError::BadLength { len, buf: msg.len() });
    }
    if message_type(msg) != Some(NFT_TRACE_MSG_TYPE) {
        return Ok(None);
    }
    let msg = &msg[..len];
    if msg.len() < NLMSG_HDRLEN + NFGENMSG_LEN {
        return Err(DecodeError::Truncated("nfgenmsg"));
    }
    let family = msg[NLMSG_HDRLEN];

    let mut id = None;
    let mut trace_type = None;
    let mut table = None;
    let mut chain = None;
    let mut out = NfTraceMsg {
        id: 0,
        family,
        trace_type: TraceType::Unspec,
        table: String::new(),
        chain: String::new(),
        rule_handle: None,
        verdict: None,
        policy: None,
        iif: None,
        iiftype: None,
        oif: None,
        oiftype: None,
        mark: None,
        nfproto: None,
        lladdr_header: None,
        network_header: None,
        transport_header: None,
        ct_state: None,
        ct_direction: None,
        ct_id: None,
        ct_status: None,
    };
    for a in attrs(&msg[NLMSG_HDRLEN + NFGENMSG_LEN..]) {
        let (ty, p) = a?;
        match ty {
            NFTA_TRACE_TABLE => table = Some(nla_string(p)),
            NFTA_TRACE_CHAIN => chain = Some(nla_string(p)),
            NFTA_TRACE_RULE_HANDLE => out.rule_handle = Some(be_u64(ty, p)?),
            NFTA_TRACE_TYPE => trace_type = Some(TraceType::from_u32(be_u32(ty, p)?)),
            NFTA_TRACE_VERDICT => out.verdict = Some(decode_verdict(p)?),
            NFTA_TRACE_ID => id = Some(be_u32(ty, p)?),
            NFTA_TRACE_LL_HEADER => out.lladdr_header = Some(p.to_vec()),
            NFTA_TRACE_NETWORK_HEADER => out.network_header = Some(p.to_vec()),
            NFTA_TRACE_TRANSPORT_HEADER => out.transport_header = Some(p.to_vec()),
            NFTA_TRACE_IIF => out.iif = Some(be_u32(ty, p)?),
            NFTA_TRACE_IIFTYPE => out.iiftype = Some(be_u16(ty, p)?),
            NFTA_TRACE_OIF => out.oif = Some(be_u32(ty, p)?),
            NFTA_TRACE_OIFTYPE => out.oiftype = Some(be_u16(ty, p)?),
            NFTA_TRACE_MARK => out.mark = Some(be_u32(ty, p)?),
            NFTA_TRACE_NFPROTO => out.nfproto = Some(be_u32(ty, p)?),
            NFTA_TRACE_POLICY => out.policy = Some(be_u32(ty, p)?),
            NFTA_TRACE_CT_ID => out.ct_id = Some(be_u32(ty, p)?),
            NFTA_TRACE_CT_DIRECTION => {
                out.ct_direction = Some(*p.first().ok_or(DecodeError::BadAttribute { attr: ty, len: NLA_HDRLEN })?)
            }
            NFTA_TRACE_CT_STATUS => out.ct_status = Some(be_u32(ty, p)?),
            NFTA_TRACE_CT_STATE => out.ct_state = Some(be_u32(ty, p)?),
            _ => {}
        }
    }
    out.id = id.ok_or(DecodeError::Missing("NFTA_TRACE_ID"))?;
    out.trace_type = trace_type.ok_or(DecodeError::Missing("NFTA_TRACE_TYPE"))?;
    out.table = table.ok_or(DecodeError::Missing("NFTA_TRACE_TABLE"))?;
    out.chain = chain.ok_or(DecodeError::Missing("NFTA_TRACE_CHAIN"))?;
    Ok(Some(out))
}

/// Splits a datagram into its netlink messages (each slice starts with its nlmsghdr and is
/// `nlmsg_len` long). Stops at the first malformed header.
pub fn split_messages(buf: &[u8]) -> NlMessages<'_> {
    NlMessages { buf }
}

/// Iterator returned by [`split_messages`].
pub struct NlMessages<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for NlMessages<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len < NLMSG_HDRLEN || len > self.buf.len() {
            self.buf = &[];
            return None;
        }
        let msg = &self.buf[..len];
        let next = align4(len).min(self.buf.len());
        self.buf = &self.buf[next..];
        Some(msg)
    }
}
