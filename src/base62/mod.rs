//! SQL functions that turn bigints into short codes and back: base 62, or any alphabet.

pub mod codec;

use pgrx::prelude::*;

use crate::error::OrRaise;
use codec::Alphabet;

/// Encodes a non-negative bigint in base 62 (`0-9a-zA-Z`): `base62_encode(62)` is `'10'`.
#[pg_extern(immutable, parallel_safe)]
fn base62_encode(value: i64) -> String {
    codec::encode(value, Alphabet::base62(), 0).or_raise("base62_encode")
}

/// Encodes in base 62, left-padded with `'0'` to at least `min_length` characters.
#[pg_extern(immutable, parallel_safe, name = "base62_encode")]
fn base62_encode_padded(value: i64, min_length: i32) -> String {
    codec::encode(value, Alphabet::base62(), min_length).or_raise("base62_encode")
}

/// Decodes a base 62 code; leading `'0'`s are allowed.
#[pg_extern(immutable, parallel_safe)]
fn base62_decode(code: &str) -> i64 {
    codec::decode(code, Alphabet::base62(), &mut check_for_interrupts).or_raise("base62_decode")
}

/// Encodes a non-negative bigint with any alphabet of at least 2 distinct characters; the first
/// character is the zero digit.
#[pg_extern(immutable, parallel_safe)]
fn base_encode(value: i64, alphabet: &str) -> String {
    let alphabet = Alphabet::new(alphabet, &mut check_for_interrupts).or_raise("base_encode");
    codec::encode(value, &alphabet, 0).or_raise("base_encode")
}

/// Decodes a code written with `alphabet`, the inverse of `base_encode`.
#[pg_extern(immutable, parallel_safe)]
fn base_decode(code: &str, alphabet: &str) -> i64 {
    let alphabet = Alphabet::new(alphabet, &mut check_for_interrupts).or_raise("base_decode");
    codec::decode(code, &alphabet, &mut check_for_interrupts).or_raise("base_decode")
}

extension_sql_file!(
    "../../sql/src/base62.sql",
    requires = [
        base62_encode,
        base62_encode_padded,
        base62_decode,
        base_encode,
        base_decode
    ]
);

/// Lets a cancel, a statement timeout or a termination end a long loop over a huge input.
fn check_for_interrupts() {
    pg_sys::check_for_interrupts!();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn functions_are_immutable_strict_and_parallel_safe() {
        let unsafe_ones = Spi::get_one::<i64>(
            "SELECT count(*) FROM pg_proc
             WHERE proname IN ('base62_encode', 'base62_decode', 'base_encode', 'base_decode')
               AND NOT (provolatile = 'i' AND proisstrict AND proparallel = 's')",
        );
        assert_eq!(unsafe_ones, Ok(Some(0)));
    }

    #[pg_test]
    fn usable_in_an_expression_index() {
        Spi::run(
            "CREATE TABLE codes (id bigint);
             INSERT INTO codes SELECT generate_series(1, 1000);
             CREATE INDEX codes_by_code ON codes (base62_encode(id, 7));",
        )
        .unwrap();
        let id = Spi::get_one::<i64>("SELECT id FROM codes WHERE base62_encode(id, 7) = '00000g8'");
        assert_eq!(id, Ok(Some(1000)));
    }

    #[pg_test(error = "invalid character \"-\" at position 3 of code \"ab-c\"")]
    fn invalid_character_raises() {
        Spi::get_one::<i64>("SELECT base62_decode('ab-c')").unwrap();
    }
}
