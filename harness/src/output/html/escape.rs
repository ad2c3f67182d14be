//! Every string a page shows that came from a scenario, a tool or the kernel is untrusted: it
//! goes through [`esc`] before it reaches the HTML, in text and in attribute values alike.

/// `s` with `&`, `<`, `>`, `"` and `'` as character references: safe as element text and as a
/// quoted attribute value. Control characters other than tab and newline become `\u{..}`
/// escapes (a scenario file may not hold them, a tool's output may).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn markup_in_a_name_stays_text() {
        assert_eq!(esc("<script>alert('x')</script>"), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
        assert_eq!(esc("a\"b&c"), "a&quot;b&amp;c");
        assert_eq!(esc("a\u{1b}[31m\u{0}"), "a\\u{1b}[31m\\u{0}");
        assert_eq!(esc("eth0\n10.0.0.1"), "eth0\n10.0.0.1");
    }
}
