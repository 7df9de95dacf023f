//! Which URLs a short link may point to, and their normal form.
//!
//! A shortener that redirects anywhere is an attack tool, so the rules are strict: absolute URLs
//! with an allowed scheme and a host, no whitespace, control characters or credentials. Only the
//! scheme and host are normalised (lower case, IDN to punycode); the rest stays as given, because
//! servers may treat paths and queries byte for byte.

use url::Url;

use crate::error::{SqlError, SqlState};

/// Schemes that no setting can allow: they run code or read local files in the visitor's browser.
const NEVER_ALLOWED: [&str; 4] = ["javascript", "data", "vbscript", "file"];

pub struct UrlPolicy<'a> {
    pub max_length: usize,
    /// Comma-separated, as in snowlink.allowed_url_schemes.
    pub allowed_schemes: &'a str,
}

/// Checks `input` against `policy` and returns its normal form.
pub fn normalize(input: &str, policy: &UrlPolicy) -> Result<String, SqlError> {
    let invalid = |message: String| SqlError::new(SqlState::InvalidText, message);
    let refused = |message: String| SqlError::new(SqlState::InvalidParameter, message);

    if input.len() > policy.max_length {
        return Err(refused(format!(
            "URL is {} bytes long, more than snowlink.max_url_length ({})",
            input.len(),
            policy.max_length
        )));
    }
    if let Some((index, c)) = input
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(format!(
            "URL contains whitespace or a control character (U+{:04X}) at position {}",
            u32::from(c),
            index + 1
        )));
    }

    let scheme = match input.split_once(':') {
        Some((scheme, _)) if is_scheme(scheme) => scheme.to_ascii_lowercase(),
        _ => {
            return Err(
                invalid(format!("URL \"{}\" is not absolute", shortened(input)))
                    .with_detail("A short link needs a full URL such as https://example.com/page."),
            )
        }
    };
    if NEVER_ALLOWED.contains(&scheme.as_str()) {
        return Err(
            refused(format!("URL scheme \"{scheme}\" is not allowed")).with_detail(
                "javascript:, data:, vbscript: and file: URLs are never redirect targets.",
            ),
        );
    }
    let allowed = policy
        .allowed_schemes
        .split(',')
        .any(|allowed| allowed.trim().eq_ignore_ascii_case(&scheme));
    if !allowed {
        return Err(
            refused(format!("URL scheme \"{scheme}\" is not allowed")).with_hint(format!(
                "snowlink.allowed_url_schemes lists the schemes accepted: {}.",
                policy.allowed_schemes
            )),
        );
    }

    let no_host = || refused(format!("URL \"{}\" has no host", shortened(input)));
    // Only scheme://authority/...: "http:evil.example" or "http:\\evil.example" parse too, to
    // a host that a reader of the link would not expect.
    let after_slashes = scheme.len() + 3;
    if input.get(scheme.len()..after_slashes) != Some("://") {
        return Err(no_host());
    }
    let authority_end = input[after_slashes..]
        .find(['/', '?', '#'])
        .map_or(input.len(), |offset| after_slashes + offset);
    let authority = &input[after_slashes..authority_end];
    if authority.contains('\\') {
        return Err(invalid(format!(
            "URL \"{}\" has a backslash in its host",
            shortened(input)
        )));
    }
    if authority.contains('@') {
        return Err(refused(format!(
            "URL \"{}\" contains user credentials",
            shortened(input)
        ))
        .with_detail("In http://bank.example@evil.example/ the host is evil.example."));
    }

    let parsed = Url::parse(input).map_err(|error| match error {
        url::ParseError::EmptyHost => no_host(),
        error => invalid(format!("invalid URL \"{}\": {error}", shortened(input))),
    })?;
    let host = parsed
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(no_host)?;

    // The port as given: the authority minus the host, which may be a bracketed IPv6 address.
    let host_end = if authority.starts_with('[') {
        authority.find(']').map_or(authority.len(), |end| end + 1)
    } else {
        authority.rfind(':').unwrap_or(authority.len())
    };
    let normalized = format!(
        "{scheme}://{host}{}{}",
        &authority[host_end..],
        &input[authority_end..]
    );
    if normalized.len() > policy.max_length {
        return Err(refused(format!(
            "URL is {} bytes long once its host is in punycode, more than snowlink.max_url_length ({})",
            normalized.len(),
            policy.max_length
        )));
    }
    Ok(normalized)
}

/// RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The start of a URL for an error message.
fn shortened(url: &str) -> String {
    const SHOWN: usize = 80;
    match url.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}...", &url[..cut]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WEB: UrlPolicy = UrlPolicy {
        max_length: 8000,
        allowed_schemes: "http,https",
    };

    fn normal(url: &str) -> String {
        normalize(url, &WEB).unwrap_or_else(|error| panic!("{url}: {}", error.message))
    }

    fn refusal(url: &str) -> (SqlState, String) {
        let error = normalize(url, &WEB).unwrap_err();
        (error.state, error.message)
    }

    #[test]
    fn only_scheme_and_host_change() {
        assert_eq!(normal("HTTPS://Example.COM"), "https://example.com");
        assert_eq!(
            normal("https://EXAMPLE.com:8443/A/../B/%7e?Q=1&q=2#Frag"),
            "https://example.com:8443/A/../B/%7e?Q=1&q=2#Frag"
        );
        assert_eq!(normal("http://example.com:80/"), "http://example.com:80/");
        assert_eq!(
            normal("https://Bücher.Example/ü"),
            "https://xn--bcher-kva.example/ü"
        );
        assert_eq!(normal("http://[::1]:8080/x"), "http://[::1]:8080/x");
        assert_eq!(normal("http://example.com?x"), "http://example.com?x");
    }

    #[test]
    fn dangerous_and_broken_urls_are_refused() {
        for url in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,<script>",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "ftp://example.com/",
            "mailto:someone@example.com",
            "http://",
            "http:/example.com",
            "http:example.com",
            "https://user:pass@example.com/",
            "https://bank.example@evil.example/",
        ] {
            assert_eq!(refusal(url).0, SqlState::InvalidParameter, "{url}");
        }
        for url in [
            "",
            "example.com/page",
            "/relative",
            "https://exa mple.com/",
            "https://example.com/\u{0}",
            "https://example.com/\ttab",
            "https://example.com/a\u{a0}b",
            "http://exa\\mple.com/",
            "http://evil.example\\@good.example/",
            "http://example.com:99999/",
        ] {
            assert_eq!(refusal(url).0, SqlState::InvalidText, "{url}");
        }
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            refusal("https://example.com/a b").1,
            "URL contains whitespace or a control character (U+0020) at position 22"
        );
        assert_eq!(
            refusal("javascript:x").1,
            "URL scheme \"javascript\" is not allowed"
        );
        assert_eq!(refusal("http:/x").1, "URL \"http:/x\" has no host");
    }

    #[test]
    fn length_limit_counts_bytes() {
        let at_limit = format!("https://example.com/{}", "a".repeat(8000 - 20));
        assert_eq!(at_limit.len(), 8000);
        assert_eq!(normal(&at_limit), at_limit);
        let (state, message) = refusal(&format!("{at_limit}a"));
        assert_eq!(state, SqlState::InvalidParameter);
        assert_eq!(
            message,
            "URL is 8001 bytes long, more than snowlink.max_url_length (8000)"
        );
    }

    #[test]
    fn a_setting_widens_the_schemes_but_never_to_dangerous_ones() {
        let wide = UrlPolicy {
            max_length: 8000,
            allowed_schemes: "https, ftp, javascript",
        };
        assert_eq!(
            normalize("FTP://Files.Example/x", &wide).unwrap(),
            "ftp://files.example/x"
        );
        assert!(normalize("http://example.com/", &wide).is_err());
        assert!(normalize("javascript://example.com/%0aalert(1)", &wide).is_err());
    }

    proptest! {
        #[test]
        fn never_panics_and_accepted_urls_are_stable(input in "\\PC{0,60}", path in "[!-~]{0,40}") {
            let _ = normalize(&input, &WEB);
            if let Ok(first) = normalize(&format!("https://Example.com/{path}"), &WEB) {
                prop_assert_eq!(normalize(&first, &WEB).unwrap(), first.clone());
                prop_assert!(first.ends_with(&path));
            }
        }
    }
}
