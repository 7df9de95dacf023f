//! Which strings can be codes. Plain Rust without dependencies, so that snowlink-http (http/)
//! compiles this same file and answers 404 for anything else without asking the database.

/// The longest custom code.
pub const MAX_CUSTOM_LENGTH: usize = 64;

/// Whether `code` may be a custom code: 1 to 64 characters of 0-9, A-Z, a-z, _ and -. Generated
/// codes follow the same rule. shorten() checks it with a regular expression (sql/shortlinks.sql).
pub fn is_custom_code(code: &str) -> bool {
    (1..=MAX_CUSTOM_LENGTH).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
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
}
