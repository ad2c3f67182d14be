//! The record the eBPF program writes to its ring buffer (`struct drop_event` in
//! `bpf/drops.bpf.c`: the two must stay in step), read without `unsafe`.

/// How many bytes from its IP header the program copies of a dropped packet.
pub const HEAD_BYTES: usize = 128;
/// The record's size: 48 bytes of fields, then the packet's first bytes.
pub const SIZE: usize = 48 + HEAD_BYTES;

/// One drop as the kernel reported it, numbers not yet named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDrop {
    /// The address of the function that freed the packet.
    pub location: u64,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC.
    pub ktime_ns: u64,
    /// The `enum skb_drop_reason` number (this kernel's numbering); 0 on kernels without it.
    pub reason: u32,
    /// The inode of the packet's network namespace.
    pub netns: u32,
    /// The device the packet was on (0: none).
    pub ifindex: i32,
    /// Its name, when it had one.
    pub device: Option<String>,
    /// The packet from its IP header on, at most [`HEAD_BYTES`].
    pub head: Vec<u8>,
}

impl RawDrop {
    /// Parse one ring buffer record; `None` if it is not one (wrong size).
    pub fn parse(b: &[u8]) -> Option<RawDrop> {
        if b.len() < SIZE {
            return None;
        }
        let u64_at = |o: usize| u64::from_ne_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let u32_at = |o: usize| u32::from_ne_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let name = &b[32..48];
        let name = &name[..name.iter().position(|&c| c == 0).unwrap_or(name.len())];
        let caplen = (u32_at(28) as usize).min(HEAD_BYTES);
        Some(RawDrop {
            location: u64_at(0),
            ktime_ns: u64_at(8),
            reason: u32_at(16),
            netns: u32_at(20),
            ifindex: u32_at(24) as i32,
            device: (!name.is_empty()).then(|| String::from_utf8_lossy(name).into_owned()),
            head: b[48..48 + caplen].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_read_field_by_field_and_a_short_one_is_refused() {
        let mut b = vec![0u8; SIZE];
        b[0..8].copy_from_slice(&0xffff_ffff_8100_1234u64.to_ne_bytes());
        b[8..16].copy_from_slice(&7u64.to_ne_bytes());
        b[16..20].copy_from_slice(&87u32.to_ne_bytes());
        b[20..24].copy_from_slice(&4026532000u32.to_ne_bytes());
        b[24..28].copy_from_slice(&5i32.to_ne_bytes());
        b[28..32].copy_from_slice(&3u32.to_ne_bytes());
        b[32..37].copy_from_slice(b"to-a\0");
        b[48..51].copy_from_slice(&[0x45, 0, 0]);
        let d = RawDrop::parse(&b).unwrap();
        assert_eq!(
            (d.location, d.ktime_ns, d.reason, d.netns, d.ifindex),
            (0xffff_ffff_8100_1234, 7, 87, 4026532000, 5)
        );
        assert_eq!(d.device.as_deref(), Some("to-a"));
        assert_eq!(d.head, vec![0x45, 0, 0], "only caplen bytes");
        assert_eq!(RawDrop::parse(&b[..SIZE - 1]), None);
    }
}
