//! Whether a link resolves: the one definition that resolve()'s index read (link_lookup.rs) uses,
//! and that the extension's SQL calls (`_shortlink_is_live()`, `_shortlink_is_spent()`) wherever
//! it reads links with a query. Plain Rust; times are PostgreSQL timestamps (µs).

/// The columns of a link that decide whether it resolves.
#[derive(Debug, Default, Clone, Copy)]
pub struct LinkState {
    pub disabled: bool,
    pub valid_from: Option<i64>,
    pub expires_at: Option<i64>,
    pub max_visits: Option<i64>,
    pub visits: i64,
}

impl LinkState {
    /// Whether the link resolves at `now`: enabled, started, and not spent.
    pub fn is_live(&self, now: i64) -> bool {
        !self.disabled && self.valid_from.is_none_or(|from| from <= now) && !self.is_spent(now)
    }

    /// Whether the link can never resolve again after `now`: expired, or every visit used. A
    /// disabled link can be enabled, and one not yet valid becomes so: neither is spent.
    pub fn is_spent(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|expiry| expiry <= now)
            || self.max_visits.is_some_and(|max| self.visits >= max)
    }
}

#[cfg(test)]
mod tests {
    use super::LinkState;

    const NOW: i64 = 1_000_000;

    #[test]
    fn a_plain_link_is_live() {
        assert!(LinkState::default().is_live(NOW));
        assert!(!LinkState::default().is_spent(NOW));
    }

    #[test]
    fn disabled_links_are_not_live_but_not_spent() {
        let state = LinkState {
            disabled: true,
            ..LinkState::default()
        };
        assert!(!state.is_live(NOW));
        assert!(!state.is_spent(NOW));
    }

    #[test]
    fn validity_starts_at_valid_from_and_ends_before_expires_at() {
        let window = |valid_from, expires_at| LinkState {
            valid_from,
            expires_at,
            ..LinkState::default()
        };
        assert!(window(Some(NOW), None).is_live(NOW));
        assert!(!window(Some(NOW + 1), None).is_live(NOW));
        assert!(!window(Some(NOW + 1), None).is_spent(NOW));
        assert!(window(None, Some(NOW + 1)).is_live(NOW));
        assert!(!window(None, Some(NOW)).is_live(NOW));
        assert!(window(None, Some(NOW)).is_spent(NOW));
    }

    #[test]
    fn a_limited_link_lives_until_its_last_visit() {
        let visited = |visits| LinkState {
            max_visits: Some(2),
            visits,
            ..LinkState::default()
        };
        assert!(visited(1).is_live(NOW));
        assert!(!visited(2).is_live(NOW));
        assert!(visited(2).is_spent(NOW));
    }
}
