//! The lab: the namespaces of one run and the links, addresses and routes inside them, made
//! over rtnetlink (no `ip` processes) and removed on drop, also after a failure or a panic.

pub mod global_sysctl;
pub mod item;
pub mod netns;
pub mod step;
pub mod sweep;
pub mod sysctl;
pub mod wireguard;

mod link;

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::TryStreamExt;
use rtnetlink::Handle;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};

use crate::error::{Error, Result};
use netns::Netns;

pub use link::{LinkError, VethEnd};

/// One link as [`Lab::link_infos`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// IFLA_LINK: for a veth, its peer's index in the peer's netns.
    pub peer_index: Option<u32>,
    /// Administratively up (IFF_UP).
    pub up: bool,
}

/// How long one rtnetlink request (or a wait built of them) may take: the kernel answers in
/// microseconds, so a request still open after this was lost and must fail the run, not hang it.
const NETLINK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

const LOOPBACK_IFINDEX: u32 = 1;

/// One namespace of the lab and its rtnetlink handle (a socket bound to that namespace).
struct Node {
    ns: Netns,
    handle: Handle,
}

/// The namespaces of one run, named `netpath-<run id>-<name>`.
pub struct Lab {
    run_id: String,
    rt: tokio::runtime::Runtime,
    nodes: BTreeMap<String, Node>,
}

impl Lab {
    pub fn new() -> Result<Lab> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("start the netlink runtime", e))?;
        Ok(Lab { run_id: netns::new_run_id(), rt, nodes: BTreeMap::new() })
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The system-wide name of the lab's netns `name`.
    pub fn full_name(&self, name: &str) -> String {
        format!("{}{}-{}", netns::PREFIX, self.run_id, name)
    }

    /// Mirrors `ip netns add netpath-<run>-NAME; ip -n ... link set lo up`.
    pub fn add_netns(&mut self, name: &str) -> Result<&Netns> {
        if self.nodes.contains_key(name) {
            return Err(Error::Scenario {
                scenario: self.run_id.clone(),
                message: format!("netns `{name}` made twice"),
            });
        }
        let ns = Netns::create(&self.full_name(name))?;
        let (conn, handle) = ns.run(|| {
            let _guard = self.rt.enter();
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(|e| Error::netns(ns.name(), "open rtnetlink socket", e))?;
            Ok((conn, handle))
        })?;
        self.rt.spawn(conn);
        let node = Node { ns, handle };
        // Every netns's loopback is ifindex 1 (the kernel's LOOPBACK_IFINDEX): no lookup needed.
        self.block_on_node(&node, "set lo up", link::set_up(&node.handle, LOOPBACK_IFINDEX))?;
        no_dad(&node.ns)?;
        self.nodes.insert(name.to_string(), node);
        Ok(&self.nodes[name].ns)
    }

    fn node(&self, name: &str) -> Result<&Node> {
        self.nodes.get(name).ok_or_else(|| Error::Scenario {
            scenario: self.run_id.clone(),
            message: format!("no netns `{name}` in this lab (have: {})", self.names().join(", ")),
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    pub fn netns(&self, name: &str) -> Result<&Netns> {
        self.node(name).map(|n| &n.ns)
    }

    fn block_on_node<T>(
        &self,
        node: &Node,
        what: &str,
        fut: impl std::future::Future<Output = link::R<T>>,
    ) -> Result<T> {
        let bounded = async { tokio::time::timeout(NETLINK_TIMEOUT, fut).await };
        match self.rt.block_on(bounded) {
            Ok(answer) => answer.map_err(|e| netlink_error(node.ns.name(), what, e)),
            Err(_) => Err(netlink_error(
                node.ns.name(),
                what,
                LinkError::Request(format!("no answer from the kernel within {NETLINK_TIMEOUT:?}")),
            )),
        }
    }

    fn on<T, F, Fut>(&self, netns: &str, what: &str, f: F) -> Result<T>
    where
        F: FnOnce(Handle) -> Fut,
        Fut: std::future::Future<Output = link::R<T>>,
    {
        let node = self.node(netns)?;
        // Errors about what a scenario made name its netns as the scenario does, not as
        // `netpath-RUN-NAME`.
        self.block_on_node(node, what, f(node.handle.clone())).map_err(|e| match e {
            Error::Netlink { what, message, errno, .. } => {
                Error::Netlink { netns: netns.to_string(), what, message, errno }
            }
            e => e,
        })
    }

    /// Mirrors `ip -n NS link add NAME type bridge [address MAC]; ip -n NS link set NAME up`.
    pub fn add_bridge(&self, netns: &str, name: &str, mac: Option<crate::evidence::packet::Mac>) -> Result<()> {
        self.on(netns, &format!("add bridge {name}"), |h| link::add_bridge(h, name.to_string(), mac))
    }

    /// Mirrors `ip -n NS link add NAME type wireguard` (the kernel's WireGuard).
    pub fn add_wireguard(&self, netns: &str, name: &str) -> Result<()> {
        self.on(netns, &format!("add link {name} type wireguard (needs CONFIG_WIREGUARD)"), |h| {
            link::add_wireguard(h, name.to_string())
        })
    }

    /// Mirrors `ip -n A link add A_NAME type veth peer name B_NAME netns B`: each end is made in
    /// its own netns directly, so its name never has to be free in the init netns.
    pub fn add_veth(&self, a: &VethEnd, b: &VethEnd) -> Result<()> {
        let peer_ns = self.netns(&b.netns)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&peer_ns.fd());
        self.on(&a.netns, &format!("add veth {} peer {} in {}", a.name, b.name, b.netns), |h| {
            link::add_veth(h, a.clone(), b.clone(), fd)
        })
    }

    /// Mirrors `ip -n NS link set IFACE master BRIDGE`.
    pub fn set_master(&self, netns: &str, iface: &str, bridge: &str) -> Result<()> {
        self.on(netns, &format!("set {iface} master {bridge}"), |h| async move {
            let port = link::index_of(&h, iface).await?;
            let master = link::index_of(&h, bridge).await?;
            link::set_master(&h, port, master).await
        })
    }

    /// Mirrors `ip -n NS link set IFACE type bridge_slave hairpin on`.
    pub fn set_hairpin(&self, netns: &str, iface: &str, on: bool) -> Result<()> {
        self.on(netns, &format!("set hairpin {on} on bridge port {iface}"), |h| async move {
            let index = link::index_of(&h, iface).await?;
            link::set_hairpin(&h, index, on).await
        })
    }

    /// Wait until the kernel reports `iface` operationally up, polling until `deadline`.
    ///
    /// A veth whose peer just came up carries nothing until the kernel's link watcher has run
    /// (up to a second later): until then its queue discipline drops every packet, so a probe
    /// sent right after `set up` can lose its first ARP request and wait a whole retransmit.
    pub fn wait_until_up(&self, netns: &str, iface: &str, deadline: std::time::Instant) -> Result<()> {
        let index = self.on(netns, &format!("find {iface}"), |h| async move { link::index_of(&h, iface).await })?;
        loop {
            let state =
                self.on(
                    netns,
                    &format!("read the state of {iface}"),
                    |h| async move { link::oper_state(&h, index).await },
                )?;
            if state == Some(rtnetlink::packet_route::link::State::Up) {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Netlink {
                    netns: self.full_name(netns),
                    what: format!("wait for {iface} to come up"),
                    message: format!(
                        "still {state:?} after the deadline: is its peer up, or, for a bridge, has it a port that is up?"
                    ),
                    errno: None,
                });
            }
            // Polling: rtnetlink has no blocking wait for one link's state short of a monitor socket.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Mirrors `ip -n NS link set IFACE up`.
    pub fn set_up(&self, netns: &str, iface: &str) -> Result<()> {
        self.on(netns, &format!("set {iface} up"), |h| async move {
            let index = link::index_of(&h, iface).await?;
            link::set_up(&h, index).await
        })
    }

    /// Mirrors `ip -n NS link set IFACE mtu MTU`.
    pub fn set_mtu(&self, netns: &str, iface: &str, mtu: u32) -> Result<()> {
        self.on(netns, &format!("set {iface} mtu {mtu}"), |h| async move {
            let index = link::index_of(&h, iface).await?;
            link::set_mtu(&h, index, mtu).await
        })
    }

    /// Mirrors `ip -n NS addr add CIDR dev IFACE`.
    pub fn add_address(&self, netns: &str, iface: &str, cidr: crate::cidr::Cidr) -> Result<()> {
        self.on(netns, &format!("add address {cidr} to {iface}"), |h| async move {
            let index = link::index_of(&h, iface).await?;
            link::add_address(&h, index, cidr).await
        })
    }

    /// Mirrors `ip -n NS route add {DST|default} [via GW] [dev IFACE]`.
    pub fn add_route(
        &self,
        netns: &str,
        dst: Option<crate::cidr::Cidr>,
        via: Option<IpAddr>,
        dev: Option<&str>,
    ) -> Result<()> {
        let what = format!(
            "add route {}{}{}",
            dst.map(|d| d.to_string()).unwrap_or_else(|| "default".into()),
            via.map(|v| format!(" via {v}")).unwrap_or_default(),
            dev.map(|d| format!(" dev {d}")).unwrap_or_default()
        );
        self.on(netns, &what, |h| async move {
            let oif = match dev {
                Some(d) => Some(link::index_of(&h, d).await?),
                None => None,
            };
            link::add_route(&h, dst, via, oif).await
        })
    }

    /// The interfaces of a netns by index (`ip -n NS -br link`).
    pub fn links(&self, netns: &str) -> Result<BTreeMap<u32, String>> {
        self.on(netns, "list links", |h| async move {
            let msgs: Vec<LinkMessage> = h.link().get().execute().try_collect().await.map_err(LinkError::from)?;
            Ok(msgs.iter().filter_map(|m| Some((m.header.index, name_of(m)?))).collect())
        })
    }

    /// Every link of a netns with what the lab needs to find tools' interfaces (`ip -n NS -d link`).
    pub fn link_infos(&self, netns: &str) -> Result<Vec<LinkInfo>> {
        use rtnetlink::packet_route::link::LinkFlags;
        Ok(self
            .link_messages(netns)?
            .iter()
            .filter_map(|m| {
                let name = name_of(m)?;
                let peer_index = m.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Link(i) => Some(*i),
                    _ => None,
                });
                let up = m.header.flags.contains(LinkFlags::Up);
                Some(LinkInfo { index: m.header.index, name, peer_index, up })
            })
            .collect())
    }

    /// Every link of a netns as the kernel describes it (`ip -n NS -d link`).
    fn link_messages(&self, netns: &str) -> Result<Vec<LinkMessage>> {
        self.on(netns, "list links", |h| async move {
            h.link().get().execute().try_collect().await.map_err(LinkError::from)
        })
    }

    /// The addresses of one interface, by index (`ip -n NS addr show dev IFACE`).
    pub fn addresses_of(&self, netns: &str, index: u32) -> Result<Vec<IpAddr>> {
        use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
        self.on(netns, "list addresses", |h| async move {
            let msgs: Vec<AddressMessage> = h
                .address()
                .get()
                .set_link_index_filter(index)
                .execute()
                .try_collect()
                .await
                .map_err(LinkError::from)?;
            Ok(msgs
                .iter()
                .filter(|m| m.header.index == index)
                .filter_map(|m| {
                    m.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Address(ip) => Some(*ip),
                        _ => None,
                    })
                })
                .collect())
        })
    }

    /// The MAC of every interface that has one, by name (`ip -n NS link`).
    pub fn macs(&self, netns: &str) -> Result<BTreeMap<String, crate::evidence::packet::Mac>> {
        Ok(self
            .link_messages(netns)?
            .iter()
            .filter_map(|m| {
                let name = name_of(m)?;
                let mac = m.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Address(m) if m.len() == 6 => Some([m[0], m[1], m[2], m[3], m[4], m[5]]),
                    _ => None,
                })?;
                Some((name, crate::evidence::packet::Mac(mac)))
            })
            .collect())
    }

    /// Every address of the netns's interfaces (`ip -n NS addr`).
    pub fn local_addresses(&self, netns: &str) -> Result<std::collections::BTreeSet<IpAddr>> {
        use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
        self.on(netns, "list addresses", |h| async move {
            let msgs: Vec<AddressMessage> = h.address().get().execute().try_collect().await.map_err(LinkError::from)?;
            // IFA_LOCAL is the interface's own address where it differs from IFA_ADDRESS (the
            // peer's, on point-to-point links); IPv6 carries only IFA_ADDRESS.
            Ok(msgs
                .iter()
                .filter_map(|m| {
                    let local = m.attributes.iter().find_map(|a| match a {
                        AddressAttribute::Local(ip) => Some(*ip),
                        _ => None,
                    });
                    local.or_else(|| {
                        m.attributes.iter().find_map(|a| match a {
                            AddressAttribute::Address(ip) => Some(*ip),
                            _ => None,
                        })
                    })
                })
                .collect())
        })
    }

    /// The MAC of an interface (`ip -n NS link show IFACE`).
    pub fn link_mac(&self, netns: &str, iface: &str) -> Result<crate::evidence::packet::Mac> {
        let name = iface.to_string();
        let found = self.on(netns, &format!("read the MAC of {iface}"), |h| async move {
            let mut links = h.link().get().match_name(name.clone()).execute();
            let msg = links.try_next().await?.ok_or_else(|| LinkError::NoInterface(format!("`{name}`")))?;
            Ok(msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::Address(m) if m.len() == 6 => Some([m[0], m[1], m[2], m[3], m[4], m[5]]),
                _ => None,
            }))
        })?;
        found.map(crate::evidence::packet::Mac).ok_or_else(|| Error::Netlink {
            netns: self.full_name(netns),
            what: format!("read the MAC of {iface}"),
            message: "it has no Ethernet address".into(),
            errno: None,
        })
    }

    /// Remove every namespace now and report everything that failed (drop does the same quietly).
    pub fn teardown(mut self) -> Result<()> {
        let errors: Vec<Error> = std::mem::take(&mut self.nodes)
            .into_values()
            .filter_map(|node| {
                drop(node.handle);
                node.ns.remove().err()
            })
            .collect();
        if errors.is_empty() { Ok(()) } else { Err(Error::Many(errors)) }
    }
}

/// Links made in `ns` from now on skip IPv6 duplicate address detection, as the lab's own
/// addresses do (IFA_F_NODAD): a link-local address stays tentative for a second or two
/// otherwise, and while it is, the netns sends no neighbour solicitation for a packet it
/// forwards (its source would be the tentative address), so a router drops the first packets.
/// The setting belongs to the netns and goes with it; a kernel without IPv6 has no such file.
fn no_dad(ns: &Netns) -> Result<()> {
    const KEY: &str = "net.ipv6.conf.default.accept_dad";
    ns.run(|| match std::fs::write(crate::lab::sysctl::path_of(KEY), "0\n") {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Sysctl { netns: ns.name().to_string(), key: KEY.into(), source: e })
        }
        _ => Ok(()),
    })
}

/// IFLA_IFNAME of a link.
fn name_of(m: &LinkMessage) -> Option<String> {
    m.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
}

fn netlink_error(netns: &str, what: &str, e: LinkError) -> Error {
    let hint = match e.errno() {
        Some(libc::EPERM) => " (needs CAP_NET_ADMIN: run as root)",
        Some(libc::EEXIST) => " (the name or address is already in use in this netns)",
        Some(libc::EOPNOTSUPP) => " (the kernel lacks this link type or feature)",
        _ => "",
    };
    Error::Netlink { netns: netns.to_string(), what: what.to_string(), message: format!("{e}{hint}"), errno: e.errno() }
}
