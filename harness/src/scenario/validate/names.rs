//! What a name in a scenario file may be. Names reach the kernel (interfaces), paths
//! (/run/netns, artifact files), thread names and terminals, so none carries a NUL or another
//! control character, and each fits where it goes.

use std::borrow::Cow;

/// The longest name of a scenario, probe or step, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// The longest netns name, in bytes (the real one has `netpath-<run id>-` before it).
pub const MAX_NETNS_BYTES: usize = 32;
/// The kernel's IFNAMSIZ less its NUL.
pub const MAX_IFACE_BYTES: usize = 15;

/// `s` with its control characters written as escapes (`\u{0}`, `\n`), for a message.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect())
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Why `name` is no interface name the kernel accepts (`dev_valid_name`): 1 to 15 bytes, not
/// `.` or `..`, without `/`, `:` or white space; and netpath's rule, no control character.
pub fn iface(name: &str) -> Option<String> {
    let bad = name.is_empty()
        || name.len() > MAX_IFACE_BYTES
        || name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.chars().any(|c| c.is_whitespace() || c.is_control());
    bad.then(|| {
        format!(
            "interface name `{}` must be 1 to {MAX_IFACE_BYTES} bytes without `/`, `:`, spaces or control characters, and not `.` or `..`",
            printable(name)
        )
    })
}

/// Why `name` is no netns name: 1 to 32 bytes, not `.` or `..`, without `/`, white space or
/// control characters.
pub fn netns(name: &str) -> Option<String> {
    let bad = name.is_empty()
        || name.len() > MAX_NETNS_BYTES
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.chars().any(|c| c.is_whitespace() || c.is_control());
    bad.then(|| {
        format!(
            "netns name `{}` must be 1 to {MAX_NETNS_BYTES} bytes without `/`, spaces or control characters, and not `.` or `..`",
            printable(name)
        )
    })
}

/// Why `name`, the name of a `what` (`scenario`, `probe`, `step`), is not one: empty, longer
/// than [`MAX_NAME_BYTES`], or with a control character.
pub fn label(what: &str, name: &str) -> Option<String> {
    if name.trim().is_empty() {
        Some(format!("the {what}'s name is empty"))
    } else if name.len() > MAX_NAME_BYTES || has_control(name) {
        Some(format!(
            "{what} name `{}` must be at most {MAX_NAME_BYTES} bytes without control characters",
            printable(cut(name, MAX_NAME_BYTES))
        ))
    } else {
        None
    }
}

/// The longest start of `s` of at most `max` bytes that ends on a character boundary.
pub fn cut(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kernel_and_carry_no_control_character() {
        for ok in ["eth0", "veth0594f4b", "wg0", "eth0.100", "a-b_c@d", "123456789012345"] {
            assert_eq!(iface(ok), None, "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "a\tb", "eth\0x", "eth\u{7f}", "1234567890123456"] {
            assert!(iface(bad).is_some(), "{bad:?}");
        }
        assert!(iface("eth\0x").unwrap().starts_with("interface name `eth\\u{0}x` must be"));
        for bad in ["", ".", "..", "a/b", "a b", "c1\n", &"n".repeat(33)] {
            assert!(netns(bad).is_some(), "{bad:?}");
        }
        assert_eq!(netns("node-1.a"), None);
        assert_eq!(label("probe", " "), Some("the probe's name is empty".into()));
        assert!(label("step", "a\u{1b}[31m").unwrap().contains("`a\\u{1b}[31m`"));
        assert!(label("scenario", &"é".repeat(100)).is_some());
        assert_eq!(label("scenario", "docker-masquerade"), None);
    }
}
