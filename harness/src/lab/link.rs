//! rtnetlink requests, one per `ip` command they mirror.

use std::fmt;
use std::net::IpAddr;
use std::os::fd::RawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, State};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::cidr::Cidr;
use crate::evidence::packet::Mac;

/// One end of a veth pair.
#[derive(Debug, Clone)]
pub struct VethEnd {
    pub netns: String,
    pub name: String,
    pub mac: Option<Mac>,
}

/// Why an rtnetlink request failed: the kernel's errno where the kernel refused it, so callers
/// decide by number (EEXIST, EPERM...) rather than by the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// The kernel answered with an error: its errno (positive) and rtnetlink's text of it.
    Kernel { errno: i32, text: String },
    /// No interface of that name or index in the netns.
    NoInterface(String),
    /// The request could not be made or its answer not read.
    Request(String),
}

impl LinkError {
    /// The errno the kernel gave, if it gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LinkError::Kernel { errno, .. } => Some(*errno),
            LinkError::NoInterface(_) => Some(libc::ENODEV),
            LinkError::Request(_) => None,
        }
    }
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Kernel { text, .. } | LinkError::Request(text) => f.write_str(text),
            LinkError::NoInterface(what) => write!(f, "no interface {what}"),
        }
    }
}

impl From<rtnetlink::Error> for LinkError {
    fn from(e: rtnetlink::Error) -> LinkError {
        match &e {
            rtnetlink::Error::NetlinkError(m) if m.raw_code() < 0 => {
                LinkError::Kernel { errno: -m.raw_code(), text: e.to_string() }
            }
            _ => LinkError::Request(e.to_string()),
        }
    }
}

pub type R<T> = Result<T, LinkError>;

pub async fn index_of(h: &Handle, name: &str) -> R<u32> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(m)) => Ok(m.header.index),
        Ok(None) => Err(LinkError::NoInterface(format!("`{name}`"))),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
            Err(LinkError::NoInterface(format!("`{name}`")))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn set_up(h: &Handle, index: u32) -> R<()> {
    h.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(LinkError::from)
}

pub async fn set_mtu(h: &Handle, index: u32, mtu: u32) -> R<()> {
    h.link().set(LinkUnspec::new_with_index(index).mtu(mtu).build()).execute().await.map_err(LinkError::from)
}

pub async fn set_master(h: &Handle, port: u32, master: u32) -> R<()> {
    h.link().set(LinkUnspec::new_with_index(port).controller(master).build()).execute().await.map_err(LinkError::from)
}

/// Mirrors `ip link set PORT type bridge_slave hairpin on`: the bridge may send a frame back
/// out of the port it came in on (what a pod reaching itself through a Service needs).
pub async fn set_hairpin(h: &Handle, port: u32, on: bool) -> R<()> {
    h.link().set_port(LinkBridgePort::new(port).hairpin(on).build()).execute().await.map_err(LinkError::from)
}

/// The operational state of an interface (`ip -br link` column 2).
pub async fn oper_state(h: &Handle, index: u32) -> R<Option<State>> {
    let mut links = h.link().get().match_index(index).execute();
    let msg = links.try_next().await?.ok_or_else(|| LinkError::NoInterface(format!("with index {index}")))?;
    Ok(msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::OperState(s) => Some(*s),
        _ => None,
    }))
}

pub async fn add_bridge(h: Handle, name: String, mac: Option<Mac>) -> R<()> {
    let mut b = LinkBridge::new(&name).up();
    if let Some(mac) = mac {
        b = b.address(mac.0.to_vec());
    }
    h.link().add(b.build()).execute().await.map_err(LinkError::from)
}

pub async fn add_wireguard(h: Handle, name: String) -> R<()> {
    h.link().add(rtnetlink::LinkWireguard::new(&name).build()).execute().await.map_err(LinkError::from)
}

pub async fn add_veth(h: Handle, a: VethEnd, b: VethEnd, peer_ns: RawFd) -> R<()> {
    let mut peer = LinkMessageBuilder::<LinkUnspec>::new().name(b.name.clone()).setns_by_fd(peer_ns);
    if let Some(mac) = b.mac {
        peer = peer.address(mac.0.to_vec());
    }
    let mut veth = LinkVeth::new(&a.name, &b.name).set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())));
    if let Some(mac) = a.mac {
        veth = veth.address(mac.0.to_vec());
    }
    h.link().add(veth.build()).execute().await.map_err(LinkError::from)
}

/// Mirrors `ip -n NS addr add CIDR dev IFACE [nodad]`. An IPv6 address is usable at once
/// (IFA_F_NODAD): duplicate detection would leave it tentative for a second, and the lab's
/// addresses are unique by construction.
pub async fn add_address(h: &Handle, index: u32, cidr: Cidr) -> R<()> {
    let mut req = h.address().add(index, cidr.addr, cidr.prefix);
    if cidr.addr.is_ipv6() {
        req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    req.execute().await.map_err(LinkError::from)
}

/// Mirrors `ip -n NS route add {DST|default} [via GW] [dev IFACE]`; the family is the
/// destination's, or the gateway's for a default route (`default` alone is IPv4's, as in `ip`).
pub async fn add_route(h: &Handle, dst: Option<Cidr>, via: Option<IpAddr>, oif: Option<u32>) -> R<()> {
    let v6 = dst.map(|d| d.addr.is_ipv6()).or(via.map(|v| v.is_ipv6())).unwrap_or(false);
    let mut b = RouteMessageBuilder::<IpAddr>::new();
    // A default route has no destination: its family says which table of defaults it joins.
    b.get_mut().header.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    if let Some(d) = dst {
        b = b.destination_prefix(d.addr, d.prefix).map_err(|e| LinkError::Request(e.to_string()))?;
    }
    if let Some(g) = via {
        b = b.gateway(g).map_err(|e| LinkError::Request(e.to_string()))?;
    }
    if let Some(i) = oif {
        b = b.output_interface(i);
        if via.is_none() && !v6 {
            // `ip route add PREFIX dev X` is on-link: without scope link the kernel refuses a
            // later gateway that only this route makes reachable (ENETUNREACH). IPv6 routes
            // have no scope: a device route makes its gateways reachable as it is.
            b = b.scope(RouteScope::Link);
        }
    }
    h.route().add(b.build()).execute().await.map_err(LinkError::from)
}
