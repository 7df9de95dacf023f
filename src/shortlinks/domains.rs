//! A link's domain: the host (and port) that serves it, as an HTTP front reads it from the request's
//! Host header. Plain Rust; links store a domain in the one form given here, lower-case ASCII
//! (IDNA) with the port if any, so that every way of writing a host finds the same links.

use url::Host;

use crate::error::{SqlError, SqlState};

/// The longest host name DNS allows.
const MAX_HOST_LENGTH: usize = 253;

/// `domain` as links store it: the host in lower-case ASCII (an international name in its IDNA
/// form, an IPv6 address in brackets) and the port, if one is given, without leading zeros. An
/// error says why it is not a host with an optional port.
pub fn normalize_domain(domain: &str) -> Result<String, SqlError> {
    if domain.is_empty() {
        return Err(refused(
            "domain must not be empty; NULL is the default domain".into(),
        ));
    }
    if domain.contains(['/', '@', '?', '#']) {
        return Err(refused(format!(
            "domain \"{}\" is not a host with an optional port, such as s.example.com or localhost:8080",
            domain.escape_default()
        )));
    }
    let (host, port) = split_port(domain);
    let port = port.map(|port| parse_port(domain, port)).transpose()?;
    let host = Host::parse(host).map_err(|error| {
        refused(format!(
            "domain \"{}\" is not a valid host: {error}",
            domain.escape_default()
        ))
    })?;
    // The root's dot ends a fully qualified name: the same host without it.
    let host = match host {
        Host::Domain(name) => match name.strip_suffix('.') {
            Some("") => return Err(refused(format!("domain \"{domain}\" names no host"))),
            Some(name) => name.to_string(),
            None => name,
        },
        address => address.to_string(),
    };
    if host.len() > MAX_HOST_LENGTH {
        return Err(refused(format!(
            "domain \"{}\" is longer than {MAX_HOST_LENGTH} characters",
            domain.escape_default()
        )));
    }
    Ok(match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

/// The host and the text after the port's colon, if any. An IPv6 address keeps its colons inside
/// brackets.
fn split_port(domain: &str) -> (&str, Option<&str>) {
    let host_end = match domain.find(']') {
        Some(bracket) if domain.starts_with('[') => bracket + 1,
        _ => domain.rfind(':').unwrap_or(domain.len()),
    };
    match domain[host_end..].strip_prefix(':') {
        Some(port) => (&domain[..host_end], Some(port)),
        // Text after an IPv6 address's bracket that is no port stays, for the host parser to
        // refuse.
        None => (domain, None),
    }
}

fn parse_port(domain: &str, port: &str) -> Result<u16, SqlError> {
    port.bytes()
        .all(|byte| byte.is_ascii_digit())
        .then(|| port.parse::<u16>().ok())
        .flatten()
        .filter(|&port| port > 0)
        .ok_or_else(|| {
            refused(format!(
                "domain \"{}\" has a port that is not a number from 1 to 65535",
                domain.escape_default()
            ))
        })
}

fn refused(message: String) -> SqlError {
    SqlError::new(SqlState::InvalidParameter, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(domain: &str) -> String {
        normalize_domain(domain).unwrap()
    }

    fn refusal(domain: &str) -> String {
        let error = normalize_domain(domain).unwrap_err();
        assert_eq!(error.state, SqlState::InvalidParameter);
        error.message
    }

    #[test]
    fn hosts_are_lower_case_ascii() {
        assert_eq!(normal("S.Example.COM"), "s.example.com");
        assert_eq!(normal("bücher.example"), "xn--bcher-kva.example");
        assert_eq!(normal("BÜCHER.example"), "xn--bcher-kva.example");
        assert_eq!(normal("localhost"), "localhost");
        assert_eq!(normal("s.example.com."), "s.example.com");
        assert_eq!(normal("s.example.com.:8080"), "s.example.com:8080");
    }

    #[test]
    fn ports_are_kept_without_leading_zeros() {
        assert_eq!(normal("S.example.com:8080"), "s.example.com:8080");
        assert_eq!(normal("s.example.com:080"), "s.example.com:80");
        assert_eq!(normal("[::1]:8443"), "[::1]:8443");
        assert_eq!(normal("127.0.0.1:443"), "127.0.0.1:443");
    }

    #[test]
    fn addresses_are_in_their_usual_form() {
        assert_eq!(normal("[0:0::1]"), "[::1]");
        assert_eq!(normal("127.1"), "127.0.0.1");
    }

    #[test]
    fn what_is_not_a_host_is_refused() {
        assert!(refusal("").contains("NULL is the default domain"));
        assert!(refusal("https://s.example.com").contains("not a host with an optional port"));
        assert!(refusal("s.example.com/path").contains("not a host with an optional port"));
        assert!(refusal("user@s.example.com").contains("not a host with an optional port"));
        assert!(refusal("s example.com").contains("is not a valid host"));
        assert!(refusal("s.example.com:").contains("port that is not a number"));
        assert!(refusal("s.example.com:0").contains("port that is not a number"));
        assert!(refusal("s.example.com:65536").contains("port that is not a number"));
        assert!(refusal("s.example.com:+80").contains("port that is not a number"));
        assert!(refusal("a:b:c").contains("port that is not a number"));
        assert!(refusal("[::1]x").contains("is not a valid host"));
        assert!(refusal(".").contains("names no host"));
        assert!(refusal(&"a".repeat(254)).contains("longer than 253"));
    }
}
