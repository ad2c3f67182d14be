//! Conntrack entries of a netns (`conntrack -L`), for expectations on original and reply tuples.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::error::Result;
use crate::firewall::run_tool;
use crate::lab::Lab;
use crate::scenario::{Scenario, Tuple};

/// One entry: protocol and its two directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub proto: String,
    pub orig: (Option<IpAddr>, Option<IpAddr>, Option<u16>, Option<u16>),
    pub reply: (Option<IpAddr>, Option<IpAddr>, Option<u16>, Option<u16>),
    /// The line as conntrack printed it.
    pub line: String,
}

impl Entry {
    /// Whether the entry fits a tuple expectation on each side.
    pub fn matches(&self, proto: Option<&str>, orig: &Tuple, reply: &Tuple) -> bool {
        let side = |got: &(Option<IpAddr>, Option<IpAddr>, Option<u16>, Option<u16>), want: &Tuple| {
            want.src.is_none_or(|a| got.0 == Some(a))
                && want.dst.is_none_or(|a| got.1 == Some(a))
                && want.sport.is_none_or(|p| got.2 == Some(p))
                && want.dport.is_none_or(|p| got.3 == Some(p))
        };
        proto.is_none_or(|p| p == self.proto) && side(&self.orig, orig) && side(&self.reply, reply)
    }

    /// How many of what an expectation names (its protocol, each address and port it sets on
    /// either side) this entry has: a failure lists the entries closest to the one expected.
    pub fn closeness(&self, proto: &str, orig: &Tuple, reply: &Tuple) -> usize {
        type Side = (Option<IpAddr>, Option<IpAddr>, Option<u16>, Option<u16>);
        let side = |got: &Side, want: &Tuple| {
            [
                want.src.is_some_and(|a| got.0 == Some(a)),
                want.dst.is_some_and(|a| got.1 == Some(a)),
                want.sport.is_some_and(|p| got.2 == Some(p)),
                want.dport.is_some_and(|p| got.3 == Some(p)),
            ]
            .into_iter()
            .filter(|m| *m)
            .count()
        };
        usize::from(proto == self.proto) + side(&self.orig, orig) + side(&self.reply, reply)
    }
}

/// Parse `conntrack -L` output: `icmp 1 29 src=A dst=B type=8 ... src=B dst=C ...`; the first
/// src/dst/sport/dport are the original direction, the second the reply.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let proto = words.next()?.to_string();
            let mut sides = [(None, None, None, None), (None, None, None, None)];
            let mut side = 0;
            for w in words {
                let Some((k, v)) = w.split_once('=') else { continue };
                let s = &mut sides[side];
                match k {
                    "src" if s.0.is_some() && side == 0 => {
                        side = 1;
                        sides[1].0 = v.parse().ok();
                    }
                    "src" => s.0 = v.parse().ok(),
                    "dst" => s.1 = v.parse().ok(),
                    "sport" => s.2 = v.parse().ok(),
                    "dport" => s.3 = v.parse().ok(),
                    _ => {}
                }
            }
            Some(Entry { proto, orig: sides[0], reply: sides[1], line: line.to_string() })
        })
        .collect()
}

/// The entries of every netns some probe has a conntrack expectation for: IPv4's (what
/// `conntrack -L` lists), and IPv6's (`-f ipv6`) where a probe to an IPv6 address expects some.
pub fn snapshot(lab: &Lab, sc: &Scenario) -> Result<BTreeMap<String, Vec<Entry>>> {
    let mut wanted: BTreeMap<&str, bool> = BTreeMap::new();
    for p in &sc.probe {
        let v6 = p.to.addr().is_some_and(|a| a.is_ipv6());
        for c in &p.conntrack {
            *wanted.entry(c.netns.as_str()).or_default() |= v6;
        }
    }
    let mut out = BTreeMap::new();
    for (netns, v6) in wanted {
        let ns = lab.netns(netns)?;
        let mut entries = parse(&run_tool(ns, "conntrack", &["-L"], None)?);
        if v6 {
            entries.extend(parse(&run_tool(ns, "conntrack", &["-L", "-f", "ipv6"], None)?));
        }
        out.insert(netns.to_string(), entries);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_directions() {
        let text = "tcp      6 117 TIME_WAIT src=10.171.77.30 dst=10.171.77.2 sport=40000 dport=8080 src=192.168.0.2 dst=10.171.77.30 sport=80 dport=40000 [ASSURED] mark=0 use=1\n\
                    icmp     1 29 src=192.168.0.2 dst=10.171.77.30 type=8 code=0 id=6036 src=10.171.77.30 dst=10.171.77.2 type=0 code=0 id=6036 mark=0 use=1\n";
        let e = parse(text);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].proto, "tcp");
        assert_eq!(e[0].orig.3, Some(8080));
        assert_eq!(e[0].reply.0, Some("192.168.0.2".parse().unwrap()));
        assert_eq!(e[0].reply.2, Some(80));
        let dnat = Tuple { dport: Some(8080), ..Default::default() };
        let to_c1 = Tuple { src: Some("192.168.0.2".parse().unwrap()), sport: Some(80), ..Default::default() };
        assert!(e[0].matches(Some("tcp"), &dnat, &to_c1));
        assert!(!e[0].matches(Some("udp"), &dnat, &to_c1));
        let v6 = parse(
            "icmpv6   58 29 src=fd00:a::2 dst=fd00:b::2 type=128 code=0 id=4711 src=fd00:b::2 dst=fd00:a::2 type=129 code=0 id=4711 mark=0 use=1\n",
        );
        let want = Tuple { src: Some("fd00:A:0::2".parse().unwrap()), ..Default::default() };
        assert!(v6[0].matches(Some("icmpv6"), &want, &Tuple::default()), "{v6:?}");
        assert!(!v6[0].matches(Some("icmp"), &want, &Tuple::default()));
        assert_eq!(v6[0].reply.1, Some("fd00:a::2".parse().unwrap()));
        let dnat_to_c2 = Tuple { src: Some("192.168.0.3".parse().unwrap()), sport: Some(80), ..Default::default() };
        assert_eq!(e[0].closeness("tcp", &dnat, &dnat_to_c2), 3, "proto, dport and sport, not src");
        assert_eq!(e[1].closeness("tcp", &dnat, &dnat_to_c2), 0);
        assert!(e[1].matches(
            None,
            &Tuple::default(),
            &Tuple { dst: Some("10.171.77.2".parse().unwrap()), ..Default::default() }
        ));
    }
}
