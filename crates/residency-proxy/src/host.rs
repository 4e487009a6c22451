//! The `Host` header: its host without the port.

/// `host` without its `:port` (`acme.s3.localhost:9000`, `[::1]:9000`).
pub(crate) fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        // An IPv6 literal: the port, if any, follows the bracket.
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}
