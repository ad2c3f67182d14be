//! Trace collection: every source turns what the kernel reports into [`event::TraceEvent`]s.

pub mod event;
pub mod kmsg;
pub mod nflog;
pub mod nftrace;
pub mod text;

pub use event::{Hook, RuleKind, TraceEvent, TraceSource};
pub mod nft_events;
