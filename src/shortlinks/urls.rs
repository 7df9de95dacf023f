//! Which URLs a short link may point to, and their normal form.
//!
//! A shortener that redirects anywhere is an attack tool, so the rules are strict: absolute URLs
//! with an allowed scheme and a host written `scheme://host`, no whitespace, control characters,
//! credentials or backslashes in the host. An accepted URL is stored as a browser reads it: the
//! serialization of the WHATWG URL standard (the `url` crate), so that the stored URL, resolve()
//! and the Location header are the same ASCII text, and go where a browser would go.

use url::{Host, Url};

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
    // Only scheme://host...: "http:evil.example", "http:\\evil.example" and "https:///evil.example"
    // parse too, to a host that a reader of the link would not expect.
    let after_slashes = scheme.len() + 3;
    if input.get(scheme.len()..after_slashes) != Some("://")
        || input[after_slashes..].starts_with(['/', '\\'])
    {
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
    match parsed.host() {
        None => return Err(no_host()),
        Some(Host::Domain(name)) => check_host_name(name).map_err(|problem| {
            invalid(format!(
                "URL \"{}\" has an invalid host: {problem}",
                shortened(input)
            ))
        })?,
        Some(Host::Ipv4(_) | Host::Ipv6(_)) => {}
    }
    // As a browser serializes it: scheme and host in lower case, the host in punycode, no default
    // port, dot segments resolved, and what may not stand in a URL (non-ASCII and invisible
    // characters, quotes, angle brackets) percent-encoded as UTF-8.
    let normalized = parsed.as_str();
    if normalized.len() > policy.max_length {
        return Err(refused(format!(
            "URL is {} bytes long as a browser writes it, more than snowlink.max_url_length ({})",
            normalized.len(),
            policy.max_length
        )));
    }
    Ok(normalized.to_string())
}

/// The longest host name and label that DNS can look up (RFC 1035), in bytes of its ASCII form.
const MAX_HOST_NAME: usize = 253;
const MAX_HOST_LABEL: usize = 63;

/// Why a host name, as the URL standard serializes it (punycode for non-ASCII), cannot be looked
/// up: an empty label ("..", "a..b", ".a"), or a label or name too long for DNS. One dot at the
/// end, a fully qualified name, is allowed.
fn check_host_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > MAX_HOST_NAME {
        return Err(format!(
            "it is {} bytes long, more than {MAX_HOST_NAME}",
            name.len()
        ));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label".into());
        }
        if label.len() > MAX_HOST_LABEL {
            return Err(format!(
                "a label of it is {} bytes long, more than {MAX_HOST_LABEL}",
                label.len()
            ));
        }
    }
    Ok(())
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
    fn urls_are_stored_as_a_browser_reads_them() {
        assert_eq!(normal("HTTPS://Example.COM"), "https://example.com/");
        assert_eq!(
            normal("https://EXAMPLE.com:8443/A/../B/%7e?Q=1&q=2#Frag"),
            "https://example.com:8443/B/%7e?Q=1&q=2#Frag"
        );
        assert_eq!(normal("http://example.com:80/"), "http://example.com/");
        assert_eq!(
            normal("https://Bücher.Example/straße?q=ä#ü"),
            "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%A4#%C3%BC"
        );
        assert_eq!(normal("http://[::1]:8080/x"), "http://[::1]:8080/x");
        assert_eq!(normal("http://example.com?x"), "http://example.com/?x");
        assert_eq!(
            normal("https://example.com/a\\b/\"q\"<>`{}"),
            "https://example.com/a/b/%22q%22%3C%3E%60%7B%7D"
        );
    }

    /// Invisible and direction-changing characters never reach a Location header as they are.
    #[test]
    fn invisible_characters_are_percent_encoded() {
        for (character, encoded) in [
            ('\u{202E}', "%E2%80%AE"),
            ('\u{200B}', "%E2%80%8B"),
            ('\u{FEFF}', "%EF%BB%BF"),
            ('\u{2060}', "%E2%81%A0"),
        ] {
            assert_eq!(
                normal(&format!("https://example.com/a{character}b?c={character}")),
                format!("https://example.com/a{encoded}b?c={encoded}")
            );
        }
    }

    #[test]
    fn extra_slashes_after_the_scheme_are_refused() {
        for url in [
            "https:///example.com",
            "https:////evil.com/x",
            "https://\\evil.com/x",
        ] {
            let (state, message) = refusal(url);
            assert_eq!(state, SqlState::InvalidParameter, "{url}");
            assert_eq!(message, format!("URL \"{url}\" has no host"));
        }
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
    fn hosts_that_dns_cannot_look_up_are_refused() {
        let label = "a".repeat(63);
        let longest_name = [label.as_str(); 4].join(".")[..253].to_string();
        assert_eq!(
            normal(&format!("https://{label}.example/")),
            format!("https://{label}.example/")
        );
        assert_eq!(
            normal(&format!("https://{longest_name}/")),
            format!("https://{longest_name}/")
        );
        assert_eq!(normal("https://example.com./"), "https://example.com./");
        for (url, problem) in [
            ("https://../", "it has an empty label"),
            ("https://./", "it has an empty label"),
            ("https://a..example/", "it has an empty label"),
            ("https://.example/", "it has an empty label"),
            ("https://example.com../", "it has an empty label"),
            (
                &format!("https://a{label}.example/"),
                "a label of it is 64 bytes long, more than 63",
            ),
            (
                &format!("https://{longest_name}a/"),
                "it is 254 bytes long, more than 253",
            ),
        ] {
            let (state, message) = refusal(url);
            assert_eq!(state, SqlState::InvalidText, "{url}");
            assert!(
                message.ends_with(&format!("has an invalid host: {problem}")),
                "{url}: {message}"
            );
        }
        // A label that is long only in punycode counts as DNS sees it.
        let (_, message) = refusal(&format!("https://{}.example/", "ü".repeat(60)));
        assert!(message.contains("a label of it is"), "{message}");
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
        /// Whatever is stored is ASCII, normalizes to itself, and parses to what it was read as.
        #[test]
        fn never_panics_and_accepted_urls_are_stable(input in "\\PC{0,60}", path in "\\PC{0,40}") {
            let _ = normalize(&input, &WEB);
            let given = format!("https://Example.com/{path}");
            if let Ok(first) = normalize(&given, &WEB) {
                prop_assert!(first.is_ascii());
                prop_assert_eq!(normalize(&first, &WEB).unwrap(), first.clone());
                prop_assert_eq!(Url::parse(&first).unwrap(), Url::parse(&given).unwrap());
            }
        }
    }
}
