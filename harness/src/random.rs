//! Random numbers for names and nonces, from the kernel (no crate needed for a few bytes).

use std::io::Read;

pub fn u64() -> u64 {
    let mut buf = [0u8; 8];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).is_ok() {
        return u64::from_ne_bytes(buf);
    }
    // /dev/urandom is always there on Linux; this only keeps names distinct if it is not.
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    (t.as_nanos() as u64) ^ ((std::process::id() as u64) << 32)
}
