//! Which strings can be codes. Plain Rust without dependencies, so that snowlink-http (http/)
//! compiles this same file: it answers 404 for anything else without asking the database, and
//! routes its endpoints by the names here, which no link can take.

/// The longest custom code.
pub const MAX_CUSTOM_LENGTH: usize = 64;

/// The first segments of snowlink-http's routes that could be codes: /healthz, /readyz,
/// /metrics, /ids and /links (its unit test no_code_can_take_a_route checks that this is all of
/// them).
pub const HEALTH_ENDPOINT: &str = "healthz";
pub const READY_ENDPOINT: &str = "readyz";
pub const METRICS_ENDPOINT: &str = "metrics";
pub const IDS_ENDPOINT: &str = "ids";
pub const LINKS_ENDPOINT: &str = "links";
/// No custom code may be one of these, in any case, so that no link shadows an endpoint. A new
/// endpoint is a new entry here, in the library that shorten() runs: no SQL changes. A link made
/// before its code became an endpoint keeps it (and its owner may edit it), but snowlink-http
/// answers the endpoint.
pub const HTTP_ENDPOINTS: [&str; 5] = [
    HEALTH_ENDPOINT,
    READY_ENDPOINT,
    METRICS_ENDPOINT,
    IDS_ENDPOINT,
    LINKS_ENDPOINT,
];

/// Whether `code` has the shape of a code: 1 to 64 characters of 0-9, A-Z, a-z, _ and -.
/// Generated codes have it too.
pub fn is_custom_code(code: &str) -> bool {
    (1..=MAX_CUSTOM_LENGTH).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why `code` cannot be a custom code, or None: its shape, or an endpoint of snowlink-http. The
/// codes that an installation reserves, in the table shortlink_reserved_codes, are checked in SQL
/// (`_shortlink_reserved_refusal()`).
pub fn custom_code_refusal(code: &str) -> Option<String> {
    if !is_custom_code(code) {
        Some(format!(
            "custom code \"{code}\" is not 1 to {MAX_CUSTOM_LENGTH} characters of 0-9, A-Z, a-z, _ and -"
        ))
    } else if HTTP_ENDPOINTS
        .iter()
        .any(|endpoint| endpoint.eq_ignore_ascii_case(code))
    {
        Some(format!(
            "custom code \"{code}\" is an endpoint of snowlink-http"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_codes_are_1_to_64_of_a_small_set() {
        assert!(is_custom_code("spring-sale_2026"));
        assert!(is_custom_code(&"a".repeat(MAX_CUSTOM_LENGTH)));
        for refused in ["", "has space", "émoji", "a/b", "a.b", &"a".repeat(65)] {
            assert!(!is_custom_code(refused), "{refused}");
        }
    }

    #[test]
    fn refusals_name_the_code_and_the_reason() {
        assert_eq!(custom_code_refusal("spring-sale"), None);
        assert_eq!(
            custom_code_refusal("a b").as_deref(),
            Some("custom code \"a b\" is not 1 to 64 characters of 0-9, A-Z, a-z, _ and -")
        );
        assert_eq!(
            custom_code_refusal("Links").as_deref(),
            Some("custom code \"Links\" is an endpoint of snowlink-http")
        );
    }

    #[test]
    fn every_endpoint_has_the_shape_of_a_code() {
        // An endpoint that no code can spell needs no entry: no link could shadow it.
        assert!(HTTP_ENDPOINTS
            .iter()
            .all(|endpoint| is_custom_code(endpoint)));
    }
}
