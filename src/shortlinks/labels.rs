//! A link's title and tags: what an application shows and finds links by. Plain Rust; shorten()
//! keeps them in the normal form given here, so that equal tags compare equal and one GIN index
//! finds a tag.

use crate::error::{SqlError, SqlState};

/// The longest tag, in characters.
pub const MAX_TAG_LENGTH: usize = 64;
/// The longest title, in characters.
pub const MAX_TITLE_LENGTH: usize = 500;

/// `tags` trimmed, lower-cased, sorted and without repeats; an error names the first tag that is
/// NULL, empty, longer than 64 characters or holds a control character.
pub fn normalize_tags(tags: &[Option<&str>]) -> Result<Vec<String>, SqlError> {
    let mut normal = Vec::with_capacity(tags.len());
    for tag in tags {
        let tag = tag.ok_or_else(|| refused("a tag must not be NULL".into()))?;
        let trimmed = tag.trim().to_lowercase();
        let length = trimmed.chars().count();
        if length == 0 || length > MAX_TAG_LENGTH {
            return Err(refused(format!(
                "tag \"{tag}\" is not 1 to {MAX_TAG_LENGTH} characters"
            )));
        }
        if trimmed.chars().any(char::is_control) {
            return Err(refused(format!(
                "tag \"{}\" holds a control character",
                tag.escape_default()
            )));
        }
        normal.push(trimmed);
    }
    normal.sort_unstable();
    normal.dedup();
    Ok(normal)
}

/// `title` without surrounding white space, None when nothing is left; an error when it is longer
/// than 500 characters or holds a control character other than a tab.
pub fn normalize_title(title: &str) -> Result<Option<String>, SqlError> {
    let trimmed = title.trim();
    if trimmed.chars().count() > MAX_TITLE_LENGTH {
        return Err(refused(format!(
            "title is longer than {MAX_TITLE_LENGTH} characters"
        )));
    }
    if trimmed.chars().any(|c| c.is_control() && c != '\t') {
        return Err(refused("title holds a control character".into()));
    }
    Ok((!trimmed.is_empty()).then(|| trimmed.to_string()))
}

fn refused(message: String) -> SqlError {
    SqlError::new(SqlState::InvalidParameter, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_lower_cased_sorted_and_once_each() {
        let tags = normalize_tags(&[Some(" Spring "), Some("sale"), Some("SPRING"), Some("Été")]);
        assert_eq!(tags.unwrap(), ["sale", "spring", "été"]);
        assert_eq!(normalize_tags(&[]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_tag_is_1_to_64_characters() {
        assert!(normalize_tags(&[Some(&"é".repeat(MAX_TAG_LENGTH))]).is_ok());
        for refused in ["", "   ", &"a".repeat(MAX_TAG_LENGTH + 1)] {
            let error = normalize_tags(&[Some("ok"), Some(refused)]).unwrap_err();
            assert_eq!(error.state, SqlState::InvalidParameter);
            assert_eq!(
                error.message,
                format!("tag \"{refused}\" is not 1 to 64 characters")
            );
        }
    }

    #[test]
    fn null_and_control_characters_are_refused() {
        assert_eq!(
            normalize_tags(&[None]).unwrap_err().message,
            "a tag must not be NULL"
        );
        assert_eq!(
            normalize_tags(&[Some("a\nb")]).unwrap_err().message,
            "tag \"a\\nb\" holds a control character"
        );
    }

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(
            normalize_title("  Spring sale\t2026 ").unwrap().as_deref(),
            Some("Spring sale\t2026")
        );
        assert_eq!(normalize_title("   ").unwrap(), None);
        assert!(normalize_title(&"t".repeat(MAX_TITLE_LENGTH)).is_ok());
        assert_eq!(
            normalize_title(&"t".repeat(MAX_TITLE_LENGTH + 1))
                .unwrap_err()
                .message,
            "title is longer than 500 characters"
        );
        assert_eq!(
            normalize_title("a\u{0}b").unwrap_err().message,
            "title holds a control character"
        );
    }
}
