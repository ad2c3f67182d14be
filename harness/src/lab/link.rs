//! rtnetlink requests, one per `ip` command they mirror.

use std::net::IpAddr;
use std::os::fd::RawFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, State};
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

/// rtnetlink's error as text, or netpath's own when the request could not be made.
pub type R<T> = Result<T, String>;

fn text(e: rtnetlink::Error) -> String {
    e.to_string()
}

pub async fn index_of(h: &Handle, name: &str) -> R<u32> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(m)) => Ok(m.header.index),
        Ok(None) => Err(format!("no interface `{name}`")),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {
            Err(format!("no interface `{name}`"))
        }
        Err(e) => Err(text(e)),
    }
}

pub async fn set_up(h: &Handle, index: u32) -> R<()> {
    h.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await.map_err(text)
}

pub async fn set_mtu(h: &Handle, index: u32, mtu: u32) -> R<()> {
    h.link().set(LinkUnspec::new_with_index(index).mtu(mtu).build()).execute().await.map_err(text)
}

pub async fn set_master(h: &Handle, port: u32, master: u32) -> R<()> {
    h.link().set(LinkUnspec::new_with_index(port).controller(master).build()).execute().await.map_err(text)
}

/// Mirrors `ip link set PORT type bridge_slave hairpin on`: the bridge may send a frame back
/// out of the port it came in on (what a pod reaching itself through a Service needs).
pub async fn set_hairpin(h: &Handle, port: u32, on: bool) -> R<()> {
    h.link().set_port(LinkBridgePort::new(port).hairpin(on).build()).execute().await.map_err(text)
}

/// The operational state of an interface (`ip -br link` column 2).
pub async fn oper_state(h: &Handle, index: u32) -> R<Option<State>> {
    let mut links = h.link().get().match_index(index).execute();
    let msg = links.try_next().await.map_err(text)?.ok_or_else(|| format!("no interface with index {index}"))?;
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
    h.link().add(b.build()).execute().await.map_err(text)
}

pub async fn add_wireguard(h: Handle, name: String) -> R<()> {
    h.link().add(rtnetlink::LinkWireguard::new(&name).build()).execute().await.map_err(text)
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
    h.link().add(veth.build()).execute().await.map_err(text)
}

pub async fn add_route(h: &Handle, dst: Option<Cidr>, via: Option<IpAddr>, oif: Option<u32>) -> R<()> {
    let v4 = |a: IpAddr| match a {
        IpAddr::V4(a) => Ok(a),
        IpAddr::V6(_) => Err(format!("{a}: IPv6 routes are not supported yet")),
    };
    let mut b = RouteMessageBuilder::<std::net::Ipv4Addr>::new();
    if let Some(d) = dst {
        b = b.destination_prefix(v4(d.addr)?, d.prefix);
    }
    if let Some(g) = via {
        b = b.gateway(v4(g)?);
    }
    if let Some(i) = oif {
        b = b.output_interface(i);
        if via.is_none() {
            // `ip route add PREFIX dev X` is on-link: without scope link the kernel refuses a
            // later gateway that only this route makes reachable (ENETUNREACH).
            b = b.scope(rtnetlink::packet_route::route::RouteScope::Link);
        }
    }
    h.route().add(b.build()).execute().await.map_err(text)
}
