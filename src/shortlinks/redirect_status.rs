//! The HTTP statuses a link redirects with. shorten() checks a link's status here, and resolve()
//! tells permanent redirects from temporary ones here.

use crate::error::{SqlError, SqlState};

/// 301 Moved Permanently, 302 Found, 307 Temporary Redirect, 308 Permanent Redirect.
pub const REDIRECT_STATUSES: [i16; 4] = [301, 302, 307, 308];

/// `status` as a link's redirect status, or the error that says which statuses there are.
pub fn check(status: Option<i32>) -> Result<i16, SqlError> {
    status
        .and_then(|status| i16::try_from(status).ok())
        .filter(|status| REDIRECT_STATUSES.contains(status))
        .ok_or_else(|| {
            let (last, others) = REDIRECT_STATUSES.split_last().expect("statuses");
            let others: Vec<String> = others.iter().map(i16::to_string).collect();
            let given = status.map_or("NULL".to_string(), |status| status.to_string());
            SqlError::new(
                SqlState::InvalidParameter,
                format!(
                    "redirect_status must be {} or {last}, not {given}",
                    others.join(", ")
                ),
            )
        })
}

/// Whether browsers and proxies may keep the redirect: 301 and 308.
pub fn is_permanent(status: i16) -> bool {
    matches!(status, 301 | 308)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_redirect_statuses_pass() {
        for status in REDIRECT_STATUSES {
            assert_eq!(check(Some(i32::from(status))), Ok(status));
        }
    }

    #[test]
    fn other_statuses_are_refused_with_the_list() {
        for (status, shown) in [(Some(200), "200"), (Some(70_000), "70000"), (None, "NULL")] {
            let error = check(status).unwrap_err();
            assert_eq!(error.state, SqlState::InvalidParameter);
            assert_eq!(
                error.message,
                format!("redirect_status must be 301, 302, 307 or 308, not {shown}")
            );
        }
    }

    #[test]
    fn only_301_and_308_are_permanent() {
        let permanent: Vec<i16> = REDIRECT_STATUSES
            .into_iter()
            .filter(|&status| is_permanent(status))
            .collect();
        assert_eq!(permanent, [301, 308]);
    }
}
