//! A kernel's refusal of an item the lab builds from the scenario (a veth end, a bridge, an
//! address, a route), told where the user wrote it: its `FILE:LINE:COL`, the netns by the
//! scenario's name, why the kernel may have refused it, and a near interface name for one it
//! does not have. Load-time checks ([`crate::scenario::validate`]) catch what the file alone
//! shows; this is for what only the kernel knows.

use crate::error::Error;
use crate::lab::Lab;
use crate::scenario::Scenario;

/// What the engine knows of the item beyond the kernel's answer.
pub struct Item<'a> {
    /// `route[2]`, `veth[0].a`: where [`crate::firewall::located::Source::place`] finds it.
    pub item: String,
    pub netns: &'a str,
    /// Why the kernel may refuse it, said when it does (`IPv6 needs an MTU of at least 1280`).
    pub hint: Option<String>,
}

/// `e` located at `it`: a netlink refusal becomes [`Error::LabItem`]; any other error is
/// returned as it was.
pub fn locate(e: Error, lab: &Lab, sc: &Scenario, it: Item<'_>) -> Error {
    let Error::Netlink { what, message, .. } = e else { return e };
    let mut message = message;
    if let Some(h) = it.hint {
        message = format!("{message}; {h}");
    }
    if let Some(missing) = missing_interface(&message) {
        let names: Vec<String> = lab.links(it.netns).map(|l| l.into_values().collect()).unwrap_or_default();
        let near = names
            .iter()
            .map(|n| (crate::scenario::edit_distance(missing, n), n))
            .filter(|(d, n)| *d <= 2 && *d < n.len())
            .min();
        message = match near {
            Some((_, n)) => format!("{message}; did you mean `{n}`?"),
            None => format!("{message} (its interfaces: {})", names.join(", ")),
        };
    }
    Error::LabItem { at: sc.source.place(&it.item), netns: it.netns.to_string(), what, message }
}

/// The interface name a "no interface `NAME`" answer is about.
fn missing_interface(message: &str) -> Option<&str> {
    let rest = &message[message.find("no interface `")? + "no interface `".len()..];
    Some(&rest[..rest.find('`')?])
}

/// Why the kernel refuses IPv6 on an interface of `mtu`: it turns IPv6 off on a link whose MTU
/// is below IPv6's minimum (RFC 8200), so an IPv6 address or route there is refused (EINVAL,
/// ENODEV).
pub fn ipv6_mtu_hint(v6: bool, iface: &str, mtu: Option<u32>) -> Option<String> {
    let mtu = mtu.filter(|m| v6 && *m < 1280)?;
    Some(format!(
        "IPv6 needs an MTU of at least 1280 and {iface} has mtu = {mtu}, so the kernel turned IPv6 off on it: raise its mtu to 1280 or more"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_missing_interface_is_read_from_the_answer() {
        assert_eq!(missing_interface("no interface `eht0`"), Some("eht0"));
        assert_eq!(missing_interface("File exists (os error 17)"), None);
        assert!(ipv6_mtu_hint(true, "eth0", Some(1000)).unwrap().contains("eth0 has mtu = 1000"));
        assert_eq!(ipv6_mtu_hint(true, "eth0", Some(1280)), None);
        assert_eq!(ipv6_mtu_hint(false, "eth0", Some(1000)), None);
    }
}
