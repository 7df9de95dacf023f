//! Generated short codes: a keyed permutation of a dense counter, written in base 62.
//!
//! Counter values 0 .. 62^7 map one-to-one onto the 7-character codes, the next 62^8 onto the
//! 8-character codes, and so on. A permutation never repeats, so codes are unique by construction;
//! keyed, they reveal neither their neighbours nor how many links exist. The permutation is a
//! Feistel network on the smallest even number of bits that covers the length's codes, with
//! SipHash-2-4 as the round function; values that land outside the codes are permuted again
//! ("cycle walking"), which stays a permutation of the codes.

use siphasher::sip::SipHasher24;
use std::hash::Hasher;

use crate::base62::codec::{self, Alphabet};
use crate::error::{SqlError, SqlState};

/// The length of the shortest codes.
pub const FIRST_LENGTH: u32 = 7;
const LAST_LENGTH: u32 = 11;
const ROUNDS: u8 = 8;

/// The installation's secret, 128 bits.
pub struct CodeKey {
    k0: u64,
    k1: u64,
}

impl CodeKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SqlError> {
        let key: &[u8; 16] = bytes.try_into().map_err(|_| {
            SqlError::new(
                SqlState::InvalidParameter,
                format!("a code key has 16 bytes, not {}", bytes.len()),
            )
        })?;
        let (k0, k1) = key.split_at(8);
        Ok(CodeKey {
            k0: u64::from_le_bytes(k0.try_into().expect("8 bytes")),
            k1: u64::from_le_bytes(k1.try_into().expect("8 bytes")),
        })
    }
}

/// A server's generated codes come from a block of counter values of its own, which starts at its
/// lowest snowflake node × 2^32: servers with disjoint node ranges (the nodes of a Citus cluster)
/// never make the same code, and a server whose range starts at node 0 counts from 0.
const COUNTER_BLOCK_BITS: u32 = 32;

/// The counter value of the `local`-th code that a server with nodes `node_min..=node_max` makes.
pub fn server_counter(local: i64, node_min: i32, node_max: i32) -> Result<i64, SqlError> {
    let first = i64::from(node_min) << COUNTER_BLOCK_BITS;
    let size = i64::from(node_max - node_min + 1) << COUNTER_BLOCK_BITS;
    if !(0..size).contains(&local) {
        return Err(SqlError::new(
            SqlState::ConfigurationLimitExceeded,
            format!(
                "code counter {local} is past the {size} generated codes of this server's \
                 snowflake nodes {node_min} to {node_max}"
            ),
        )
        .with_hint(
            "Each node of the range gives the server 2^32 generated codes: widen the range, or set \
             snowlink.code_style = 'snowflake'.",
        ));
    }
    Ok(first + local)
}

/// The code for counter value `counter`: 7 characters for the first 62^7 values, then 8, ... 11.
pub fn keyed_code(counter: i64, key: &CodeKey) -> Result<String, SqlError> {
    if counter < 0 {
        return Err(SqlError::new(
            SqlState::OutOfRange,
            format!("code counter {counter} is negative"),
        ));
    }
    let mut rest = counter as u64;
    for length in FIRST_LENGTH..=LAST_LENGTH {
        let codes = codes_of_length(length);
        if rest < codes {
            let value = permute(rest, codes, length, key);
            // Every value below 2^63 fits a bigint, so encoding cannot fail.
            return codec::encode(value as i64, Alphabet::base62(), length as i32);
        }
        rest -= codes;
    }
    unreachable!("the 11-character codes cover every bigint")
}

/// How many codes of `length` characters the counter maps to: 62^length, but at most 2^63 so that
/// every code is a bigint in base 62. 2^63 alone exceeds the largest counter value.
fn codes_of_length(length: u32) -> u64 {
    62u64
        .checked_pow(length)
        .map_or(1 << 63, |n| n.min(1 << 63))
}

/// A keyed permutation of 0..domain.
fn permute(value: u64, domain: u64, tweak: u32, key: &CodeKey) -> u64 {
    let bits = u64::BITS - (domain - 1).leading_zeros();
    let half_bits = bits.div_ceil(2);
    let mut value = value;
    loop {
        value = feistel(value, half_bits, tweak, key);
        if value < domain {
            return value;
        }
    }
}

fn feistel(value: u64, half_bits: u32, tweak: u32, key: &CodeKey) -> u64 {
    let mask = (1u64 << half_bits) - 1;
    let (mut left, mut right) = (value >> half_bits, value & mask);
    for round in 0..ROUNDS {
        let mut hasher = SipHasher24::new_with_keys(key.k0, key.k1);
        hasher.write_u32(tweak);
        hasher.write_u8(round);
        hasher.write_u64(right);
        (left, right) = (right, left ^ (hasher.finish() & mask));
    }
    (left << half_bits) | right
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const KEY: CodeKey = CodeKey {
        k0: 0x0123_4567_89ab_cdef,
        k1: 0xfedc_ba98_7654_3210,
    };

    #[test]
    fn permutations_are_bijections() {
        for domain in [1, 2, 61, 62, 1000, 3844, 4096, 10_007] {
            let images: HashSet<u64> = (0..domain).map(|v| permute(v, domain, 0, &KEY)).collect();
            assert_eq!(images.len() as u64, domain);
            assert!(images.iter().all(|v| *v < domain));
        }
    }

    #[test]
    fn codes_are_unique_and_seven_characters_long() {
        let codes: HashSet<String> = (0..20_000).map(|n| keyed_code(n, &KEY).unwrap()).collect();
        assert_eq!(codes.len(), 20_000);
        assert!(codes.iter().all(|code| code.len() == 7));
    }

    #[test]
    fn lengths_grow_after_each_block() {
        let seven = 62i64.pow(7);
        assert_eq!(keyed_code(seven - 1, &KEY).unwrap().len(), 7);
        assert_eq!(keyed_code(seven, &KEY).unwrap().len(), 8);
        assert_eq!(keyed_code(seven + 62i64.pow(8), &KEY).unwrap().len(), 9);
        assert_eq!(keyed_code(i64::MAX, &KEY).unwrap().len(), 11);
        assert!(keyed_code(-1, &KEY).is_err());
    }

    #[test]
    fn neighbours_share_nothing_visible() {
        let codes: Vec<String> = (0..10_000).map(|n| keyed_code(n, &KEY).unwrap()).collect();
        let shared_prefixes = codes
            .windows(2)
            .filter(|pair| pair[0][..2] == pair[1][..2])
            .count();
        // Random codes share a 2-character prefix once in 3844 pairs.
        assert!(shared_prefixes < 10, "{shared_prefixes}");
        let sorted = codes.windows(2).filter(|pair| pair[0] < pair[1]).count();
        assert!((4_000..6_000).contains(&sorted), "{sorted}");
    }

    #[test]
    fn servers_with_disjoint_node_ranges_count_in_disjoint_blocks() {
        let block = 1i64 << 32;
        assert_eq!(server_counter(0, 0, 1023).unwrap(), 0);
        assert_eq!(server_counter(5, 0, 255).unwrap(), 5);
        assert_eq!(server_counter(0, 256, 511).unwrap(), 256 * block);
        // The last value of one server's block is just below the first of the next server's.
        assert_eq!(
            server_counter(256 * block - 1, 0, 255).unwrap(),
            256 * block - 1
        );
        let full = server_counter(256 * block, 0, 255).unwrap_err();
        assert_eq!(full.state, SqlState::ConfigurationLimitExceeded);
        assert!(
            full.message.contains("snowflake nodes 0 to 255"),
            "{}",
            full.message
        );
        assert!(server_counter(-1, 0, 255).is_err());
        // The highest block still makes codes.
        let last = server_counter(block - 1, 1023, 1023).unwrap();
        assert_eq!(keyed_code(last, &KEY).unwrap().len(), 8);
    }

    #[test]
    fn another_key_gives_other_codes() {
        let other = CodeKey::from_bytes(&[7; 16]).unwrap();
        let same = (0..1000)
            .filter(|n| keyed_code(*n, &KEY).unwrap() == keyed_code(*n, &other).unwrap())
            .count();
        assert!(same < 3, "{same}");
        assert!(CodeKey::from_bytes(&[0; 15]).is_err());
    }
}
