//! netpath: integration tests for Linux packet datapaths. Build a topology of network
//! namespaces, send real packets, capture them on every interface, collect the netfilter trace
//! of each, and assert the hooks it met and the addresses it carried.

pub mod artifacts;
pub mod caps;
pub mod cidr;
pub mod conntrack;
pub mod drops;
pub mod error;
pub mod evidence;
pub mod expect;
pub mod firewall;
pub mod global_sysctl;
pub mod handle;
pub mod junit;
pub mod kernel;
pub mod lab;
pub mod netns;
pub mod observe;
pub mod packet;
pub mod pcap_thread;
pub mod probe;
mod random;
pub mod reader;
pub mod record;
pub mod report;
pub mod requires;
pub mod results;
pub mod run;
pub mod scenario;
pub mod step;
pub mod sysctl;
pub mod testing;
pub mod timings;
pub mod tool;
pub mod trace;
pub mod wireguard;

pub use error::{Error, Result};
pub use firewall::Backend;
pub use run::{Outcome, RunOptions, run};
pub use scenario::Scenario;
