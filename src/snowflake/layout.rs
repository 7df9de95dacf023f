//! The bits of a snowflake ID, from the top: 1 sign bit (always 0), 41 bits of milliseconds since
//! the epoch, 10 node bits, 12 sequence bits.
//!
//! 41 timestamp bits, not 42: bigint is signed, and a 42nd bit would turn IDs negative (and out of
//! time order) from 2079-09-07 on. With the sign bit kept 0 every ID is a positive bigint that sorts
//! by time until then.

use crate::error::{SqlError, SqlState};

/// 2010-01-01 08:00:00 UTC, in milliseconds since the Unix epoch.
pub const EPOCH_UNIX_MS: i64 = 1_262_332_800_000;
pub const NODE_BITS: u32 = 10;
pub const SEQUENCE_BITS: u32 = 12;
const TIMESTAMP_BITS: u32 = 63 - NODE_BITS - SEQUENCE_BITS;

pub const MAX_NODE: i32 = (1 << NODE_BITS) - 1;
pub const MAX_SEQUENCE: i32 = (1 << SEQUENCE_BITS) - 1;
/// The last millisecond an ID can carry: 2079-09-07 23:47:35.551 UTC.
pub const MAX_ELAPSED_MS: i64 = (1 << TIMESTAMP_BITS) - 1;

/// The DETAIL of every error about a time outside the range.
pub const TIME_RANGE_DETAIL: &str =
    "Snowflake IDs carry times from 2010-01-01 08:00:00 UTC to 2079-09-07 23:47:35.551 UTC.";

/// An ID taken apart. `unix_ms` is milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts {
    pub unix_ms: i64,
    pub node: i32,
    pub sequence: i32,
}

/// Puts an ID together. The caller keeps node and sequence in range; the time is checked.
pub fn compose(unix_ms: i64, node: i32, sequence: i32) -> Result<i64, SqlError> {
    debug_assert!((0..=MAX_NODE).contains(&node) && (0..=MAX_SEQUENCE).contains(&sequence));
    let elapsed = elapsed_ms(unix_ms).ok_or_else(|| {
        SqlError::new(
            SqlState::OutOfRange,
            format!(
                "the system clock ({unix_ms} ms since 1970) is outside the snowflake time range"
            ),
        )
        .with_detail(TIME_RANGE_DETAIL)
    })?;
    Ok((elapsed << (NODE_BITS + SEQUENCE_BITS))
        | (i64::from(node) << SEQUENCE_BITS)
        | i64::from(sequence))
}

/// Takes an ID apart. Every non-negative bigint is a valid ID.
pub fn decompose(id: i64) -> Result<Parts, SqlError> {
    if id < 0 {
        return Err(SqlError::new(
            SqlState::OutOfRange,
            format!("snowflake ID {id} is negative"),
        )
        .with_detail("Snowflake IDs run from 0 to 9223372036854775807."));
    }
    Ok(Parts {
        unix_ms: EPOCH_UNIX_MS + (id >> (NODE_BITS + SEQUENCE_BITS)),
        node: ((id >> SEQUENCE_BITS) & i64::from(MAX_NODE)) as i32,
        sequence: (id & i64::from(MAX_SEQUENCE)) as i32,
    })
}

/// The smallest ID whose millisecond is at or after `unix_us` (microseconds since the Unix epoch),
/// so that `id >= min_id(t)` holds exactly for IDs made at or after `t`: 0 for any time before the
/// epoch, when every ID is made after it. None after the last millisecond, when no ID is.
pub fn min_id(unix_us: i64) -> Option<i64> {
    let unix_ms = unix_us.div_euclid(1000) + i64::from(unix_us.rem_euclid(1000) != 0);
    let elapsed = unix_ms.saturating_sub(EPOCH_UNIX_MS).max(0);
    (elapsed <= MAX_ELAPSED_MS).then_some(elapsed << (NODE_BITS + SEQUENCE_BITS))
}

fn elapsed_ms(unix_ms: i64) -> Option<i64> {
    let elapsed = unix_ms.checked_sub(EPOCH_UNIX_MS)?;
    (0..=MAX_ELAPSED_MS).contains(&elapsed).then_some(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_epoch_is_id_zero() {
        assert_eq!(compose(EPOCH_UNIX_MS, 0, 0), Ok(0));
        assert_eq!(
            decompose(0),
            Ok(Parts {
                unix_ms: EPOCH_UNIX_MS,
                node: 0,
                sequence: 0
            })
        );
    }

    #[test]
    fn the_largest_id_is_the_last_millisecond_of_the_last_node() {
        let last = compose(EPOCH_UNIX_MS + MAX_ELAPSED_MS, MAX_NODE, MAX_SEQUENCE);
        assert_eq!(last, Ok(i64::MAX));
        // 2079-09-07 23:47:35.551 UTC
        assert_eq!(EPOCH_UNIX_MS + MAX_ELAPSED_MS, 3_461_356_055_551);
        assert!(compose(EPOCH_UNIX_MS + MAX_ELAPSED_MS + 1, 0, 0).is_err());
        assert!(compose(EPOCH_UNIX_MS - 1, 0, 0).is_err());
    }

    #[test]
    fn min_id_rounds_up_to_the_next_whole_millisecond() {
        let at = EPOCH_UNIX_MS * 1000;
        assert_eq!(min_id(at), Some(0));
        assert_eq!(min_id(at + 1), Some(1 << 22));
        assert_eq!(min_id(at + 1000), Some(1 << 22));
        assert_eq!(min_id(at + 1001), Some(2 << 22));
        assert_eq!(min_id(at - 999), Some(0));
        assert_eq!(min_id(at - 1000), Some(0), "every ID is made after it");
        assert_eq!(min_id(i64::MIN), Some(0));
        assert_eq!(
            min_id((EPOCH_UNIX_MS + MAX_ELAPSED_MS) * 1000),
            Some(MAX_ELAPSED_MS << 22)
        );
        assert_eq!(min_id((EPOCH_UNIX_MS + MAX_ELAPSED_MS) * 1000 + 1), None);
        assert_eq!(min_id(i64::MAX), None);
        assert_eq!(decompose(-1).unwrap_err().state, SqlState::OutOfRange);
    }

    proptest! {
        #[test]
        fn compose_and_decompose_are_inverse(
            elapsed in 0..=MAX_ELAPSED_MS, node in 0..=MAX_NODE, sequence in 0..=MAX_SEQUENCE
        ) {
            let id = compose(EPOCH_UNIX_MS + elapsed, node, sequence).unwrap();
            prop_assert!(id >= 0);
            prop_assert_eq!(decompose(id).unwrap(), Parts { unix_ms: EPOCH_UNIX_MS + elapsed, node, sequence });
        }

        #[test]
        fn ids_sort_by_time_first(a in 0..MAX_ELAPSED_MS, node_a in 0..=MAX_NODE, node_b in 0..=MAX_NODE,
                                  seq_a in 0..=MAX_SEQUENCE, seq_b in 0..=MAX_SEQUENCE) {
            let earlier = compose(EPOCH_UNIX_MS + a, node_a, seq_a).unwrap();
            let later = compose(EPOCH_UNIX_MS + a + 1, node_b, seq_b).unwrap();
            prop_assert!(earlier < later);
            prop_assert!(min_id((EPOCH_UNIX_MS + a + 1) * 1000).unwrap() > earlier);
            prop_assert!(min_id((EPOCH_UNIX_MS + a + 1) * 1000).unwrap() <= later);
        }

        #[test]
        fn every_non_negative_bigint_decomposes(id in 0..=i64::MAX) {
            let parts = decompose(id).unwrap();
            prop_assert_eq!(compose(parts.unix_ms, parts.node, parts.sequence), Ok(id));
        }
    }
}
