//! Conversion between non-negative bigints and codes over any alphabet.
//!
//! `base-x` encodes. Decoding is a loop over the code with a lookup per character, which stops at
//! the first character that is not a digit or that makes the value too large, so that its cost
//! grows with the code and not with the alphabet. This module adds what SQL needs around them:
//! alphabet checks, errors that name the offending character, the bigint range, and padding.
//! Loops over input of any length call back now and then, so that SQL can check for interrupts.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::error::{SqlError, SqlState};

/// Digits, then lower case, then upper case. Not in ASCII order: under the C collation 'Z' < 'a',
/// so equal-length codes do not sort like their numbers.
pub const BASE62_DIGITS: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Padding beyond this is a mistake, not a code: base 2 needs only 63 digits for any bigint.
pub const MAX_MIN_LENGTH: i32 = 1024;

/// Error messages quote at most this many characters of a code or an alphabet.
const QUOTE_LIMIT: usize = 64;

/// Loops call back after this many characters of a code or an alphabet.
const CHARACTERS_BETWEEN_CALLBACKS: usize = 1 << 16;

static BASE62: LazyLock<Alphabet<'static>> = LazyLock::new(|| {
    Alphabet::new(BASE62_DIGITS, &mut || ()).expect("the base62 alphabet is valid")
});

/// A checked alphabet: at least two distinct characters (Unicode scalar values, never bytes).
#[derive(Debug)]
pub struct Alphabet<'a> {
    text: &'a str,
    zero: char,
    base: u64,
    /// Digit value of each ASCII character, so that base62 input needs no hashing.
    ascii_values: [Option<u32>; 128],
    non_ascii_values: HashMap<char, u32>,
}

impl<'a> Alphabet<'a> {
    pub fn base62() -> &'static Alphabet<'static> {
        &BASE62
    }

    /// Checks `text` as an alphabet. Calls `now_and_then` every so many characters.
    pub fn new(text: &'a str, now_and_then: &mut dyn FnMut()) -> Result<Self, SqlError> {
        let mut ascii_values = [None; 128];
        let mut non_ascii_values = HashMap::new();
        let mut count: u32 = 0;
        for digit in text.chars() {
            let repeated = if digit.is_ascii() {
                ascii_values[digit as usize].replace(count).is_some()
            } else {
                non_ascii_values.insert(digit, count).is_some()
            };
            if repeated {
                return Err(SqlError::new(
                    SqlState::InvalidParameter,
                    format!(
                        "alphabet {} repeats the character \"{}\"",
                        quoted(text),
                        digit.escape_debug()
                    ),
                )
                .with_detail("Each character of an alphabet must be distinct."));
            }
            count += 1;
            if (count as usize).is_multiple_of(CHARACTERS_BETWEEN_CALLBACKS) {
                now_and_then();
            }
        }
        let Some(zero) = text.chars().next().filter(|_| count >= 2) else {
            return Err(SqlError::new(
                SqlState::InvalidParameter,
                format!("alphabet {} has fewer than 2 characters", quoted(text)),
            ));
        };
        Ok(Alphabet {
            text,
            zero,
            base: u64::from(count),
            ascii_values,
            non_ascii_values,
        })
    }

    fn value_of(&self, c: char) -> Option<u32> {
        if c.is_ascii() {
            self.ascii_values[c as usize]
        } else {
            self.non_ascii_values.get(&c).copied()
        }
    }
}

/// Encodes `value` in `alphabet`, left-padded with the alphabet's zero digit to `min_length`
/// characters.
pub fn encode(value: i64, alphabet: &Alphabet, min_length: i32) -> Result<String, SqlError> {
    if value < 0 {
        return Err(SqlError::new(
            SqlState::OutOfRange,
            format!("cannot encode negative number {value}"),
        )
        .with_detail("Only numbers from 0 to 9223372036854775807 have a code."));
    }
    if !(0..=MAX_MIN_LENGTH).contains(&min_length) {
        return Err(SqlError::new(
            SqlState::InvalidParameter,
            format!("min_length must be between 0 and {MAX_MIN_LENGTH}, not {min_length}"),
        ));
    }

    let bytes = value.to_be_bytes();
    // base-x writes one zero digit per leading zero byte; keep exactly one byte for zero.
    let first_significant = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    let code = base_x::encode(alphabet.text, &bytes[first_significant..]);

    let length = code.chars().count();
    let padding = (min_length as usize).saturating_sub(length);
    if padding == 0 {
        return Ok(code);
    }
    let mut padded = String::with_capacity(code.len() + padding * alphabet.zero.len_utf8());
    padded.extend(std::iter::repeat_n(alphabet.zero, padding));
    padded.push_str(&code);
    Ok(padded)
}

/// Decodes `code` written in `alphabet`. Leading zero digits are allowed, since padding makes them.
/// Reads the code from the left and fails at the first character that is not a digit or that
/// makes the value larger than a bigint. Calls `now_and_then` every so many characters.
pub fn decode(
    code: &str,
    alphabet: &Alphabet,
    now_and_then: &mut dyn FnMut(),
) -> Result<i64, SqlError> {
    if code.is_empty() {
        return Err(SqlError::new(
            SqlState::InvalidText,
            "cannot decode an empty string",
        ));
    }
    let mut value: u64 = 0;
    for (index, c) in code.chars().enumerate() {
        let Some(digit) = alphabet.value_of(c) else {
            return Err(SqlError::new(
                SqlState::InvalidText,
                format!(
                    "invalid character \"{}\" at position {} of code {}",
                    c.escape_debug(),
                    index + 1,
                    quoted(code)
                ),
            )
            .with_detail(format!("The alphabet is {}.", quoted(alphabet.text))));
        };
        value = value
            .checked_mul(alphabet.base)
            .and_then(|value| value.checked_add(u64::from(digit)))
            .filter(|value| *value <= i64::MAX as u64)
            .ok_or_else(|| {
                SqlError::new(
                    SqlState::OutOfRange,
                    format!("code {} is out of range for type bigint", quoted(code)),
                )
                .with_detail("Codes stand for numbers from 0 to 9223372036854775807.")
            })?;
        if (index + 1).is_multiple_of(CHARACTERS_BETWEEN_CALLBACKS) {
            now_and_then();
        }
    }
    Ok(value as i64)
}

/// Quotes text for an error message, cut short so that a huge input cannot flood the log.
fn quoted(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(QUOTE_LIMIT)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(QUOTE_LIMIT).is_some() {
        shown.push_str("...");
    }
    format!("\"{shown}\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base62_encode(value: i64) -> String {
        encode(value, Alphabet::base62(), 0).unwrap()
    }

    fn base62_decode(code: &str) -> Result<i64, SqlError> {
        decode(code, Alphabet::base62(), &mut || ())
    }

    fn alphabet(text: &str) -> Result<Alphabet<'_>, SqlError> {
        Alphabet::new(text, &mut || ())
    }

    /// Textbook repeated division, to check base-x against.
    fn reference_encode(mut value: u64, digits: &[char]) -> String {
        let base = digits.len() as u64;
        let mut reversed = vec![digits[(value % base) as usize]];
        value /= base;
        while value > 0 {
            reversed.push(digits[(value % base) as usize]);
            value /= base;
        }
        reversed.iter().rev().collect()
    }

    #[test]
    fn issue_examples() {
        assert_eq!(base62_encode(0), "0");
        assert_eq!(base62_encode(61), "Z");
        assert_eq!(base62_encode(62), "10");
        assert_eq!(base62_encode(56800235584), "1000000");
        assert_eq!(base62_encode(i64::MAX), "aZl8N0y58M7");
        assert_eq!(base62_decode("aZl8N0y58M7"), Ok(i64::MAX));
        assert_eq!(base62_decode("0000Z"), Ok(61));
    }

    #[test]
    fn reference_check_from_the_design() {
        let mut value = 56800235584_i64;
        // The reference's loop is `range(1, 99)`: i runs from 1 to 98.
        for i in 1..99 {
            value += i;
            assert_eq!(base62_decode(&base62_encode(value)), Ok(value));
        }
        assert_eq!(value, 56800240435);
        assert_eq!(base62_encode(value), "10001gf");
    }

    #[test]
    fn padding() {
        let base62 = Alphabet::base62();
        assert_eq!(encode(61, base62, 4).unwrap(), "000Z");
        assert_eq!(encode(62, base62, 1).unwrap(), "10");
        assert_eq!(encode(0, base62, 0).unwrap(), "0");
        assert_eq!(encode(5, base62, MAX_MIN_LENGTH).unwrap().len(), 1024);
        let emoji = alphabet("🙂🙃").unwrap();
        assert_eq!(encode(1, &emoji, 3).unwrap(), "🙂🙂🙃");
    }

    #[test]
    fn errors_carry_their_sqlstate() {
        let base62 = Alphabet::base62();
        let state = |result: Result<i64, SqlError>| result.unwrap_err().state;
        assert_eq!(
            encode(-1, base62, 0).unwrap_err().state,
            SqlState::OutOfRange
        );
        assert_eq!(
            encode(1, base62, -1).unwrap_err().state,
            SqlState::InvalidParameter
        );
        assert_eq!(
            encode(1, base62, 1025).unwrap_err().state,
            SqlState::InvalidParameter
        );
        assert_eq!(state(base62_decode("")), SqlState::InvalidText);
        assert_eq!(state(base62_decode("ab-c")), SqlState::InvalidText);
        assert_eq!(state(base62_decode("aZl8N0y58M8")), SqlState::OutOfRange);
        assert_eq!(state(base62_decode("100000000000")), SqlState::OutOfRange);
        assert_eq!(state(base62_decode("ZZZZZZZZZZZ")), SqlState::OutOfRange);
        assert_eq!(alphabet("a").unwrap_err().state, SqlState::InvalidParameter);
        assert_eq!(alphabet("").unwrap_err().state, SqlState::InvalidParameter);
        assert_eq!(
            alphabet("abca").unwrap_err().message,
            "alphabet \"abca\" repeats the character \"a\""
        );
    }

    #[test]
    fn invalid_character_is_named_by_position_not_byte_offset() {
        let error = base62_decode("ab€c").unwrap_err();
        assert_eq!(
            error.message,
            "invalid character \"€\" at position 3 of code \"ab€c\""
        );
    }

    #[test]
    fn huge_codes_are_cut_short_in_messages() {
        let code = "z".repeat(100_000);
        let error = base62_decode(&code).unwrap_err();
        assert_eq!(error.state, SqlState::OutOfRange);
        assert!(
            error.message.contains("zzz...\" is out of range"),
            "{}",
            error.message
        );
        assert!(error.message.len() < 120, "{}", error.message);
        // Leading zeros are padding, however many there are.
        assert_eq!(base62_decode(&format!("{}1", "0".repeat(100_000))), Ok(1));
    }

    #[test]
    fn the_first_problem_from_the_left_is_the_error() {
        // The value overflows at the 12th character, before the invalid one.
        assert_eq!(
            base62_decode("ZZZZZZZZZZZZ-").unwrap_err().state,
            SqlState::OutOfRange
        );
        assert_eq!(
            base62_decode("ZZ-ZZZZZZZZZZ").unwrap_err().state,
            SqlState::InvalidText
        );
    }

    #[test]
    fn an_ascii_digit_at_any_position_decodes() {
        for position in [0, 127, 128, 254, 255, 256, 299] {
            let mut digits: Vec<char> = ('\u{100}'..).take(300).collect();
            digits[position] = 'x';
            let text: String = digits.iter().collect();
            let alphabet = alphabet(&text).unwrap();
            assert_eq!(encode(position as i64, &alphabet, 0).unwrap(), "x");
            assert_eq!(decode("x", &alphabet, &mut || ()), Ok(position as i64));
        }
    }

    /// A quadratic decoder would take hours here: 200,000 digits, a code of a million characters.
    #[test]
    fn huge_alphabets_and_codes_take_time_in_proportion() {
        let text: String = ('\u{100}'..).take(200_000).collect();
        let alphabet = alphabet(&text).unwrap();
        let mut code: String = std::iter::repeat_n('\u{100}', 1_000_000).collect();
        code.push('\u{101}');
        let mut callbacks = 0;
        assert_eq!(decode(&code, &alphabet, &mut || callbacks += 1), Ok(1));
        assert_eq!(callbacks, 1_000_001 / CHARACTERS_BETWEEN_CALLBACKS);
        let last = text.chars().last().unwrap();
        let overflowing: String = std::iter::repeat_n(last, 1_000_000).collect();
        let mut callbacks = 0;
        assert_eq!(
            decode(&overflowing, &alphabet, &mut || callbacks += 1)
                .unwrap_err()
                .state,
            SqlState::OutOfRange
        );
        assert_eq!(callbacks, 0, "it stops at the digit that overflows");
    }

    /// Alphabets of 2 to 600 characters, ASCII and others mixed in any order.
    fn alphabet_text() -> impl Strategy<Value = String> {
        let digit = prop_oneof![proptest::char::range('!', '~'), any::<char>()];
        prop_oneof![
            Just(BASE62_DIGITS.to_string()),
            proptest::collection::hash_set(proptest::char::range('!', '~'), 2..94)
                .prop_map(|set| set.into_iter().collect()),
            proptest::collection::hash_set(digit, 2..600)
                .prop_map(|set| set.into_iter().collect::<Vec<char>>())
                .prop_shuffle()
                .prop_map(|digits| digits.into_iter().collect()),
        ]
    }

    /// What decoding must give, worked out with wide arithmetic.
    fn reference_decode(code: &str, digits: &[char]) -> Result<i64, SqlState> {
        if code.is_empty() {
            return Err(SqlState::InvalidText);
        }
        let mut value: u128 = 0;
        for c in code.chars() {
            let digit = digits
                .iter()
                .position(|d| *d == c)
                .ok_or(SqlState::InvalidText)?;
            value = value * digits.len() as u128 + digit as u128;
            if value > i64::MAX as u128 {
                return Err(SqlState::OutOfRange);
            }
        }
        Ok(value as i64)
    }

    proptest! {
        #[test]
        fn round_trip(value in 0..=i64::MAX, text in alphabet_text(), min_length in 0..80i32) {
            let alphabet = alphabet(&text).unwrap();
            let code = encode(value, &alphabet, min_length).unwrap();
            prop_assert!(code.chars().count() >= min_length as usize);
            prop_assert_eq!(decode(&code, &alphabet, &mut || ()), Ok(value));
        }

        #[test]
        fn agrees_with_repeated_division(value in 0..=i64::MAX, text in alphabet_text()) {
            let alphabet = alphabet(&text).unwrap();
            let digits: Vec<char> = text.chars().collect();
            prop_assert_eq!(encode(value, &alphabet, 0).unwrap(), reference_encode(value as u64, &digits));
        }

        #[test]
        fn any_string_decodes_as_the_reference_says(code in any::<String>(), text in alphabet_text()) {
            let alphabet = alphabet(&text).unwrap();
            let digits: Vec<char> = text.chars().collect();
            prop_assert_eq!(
                decode(&code, &alphabet, &mut || ()).map_err(|error| error.state),
                reference_decode(&code, &digits)
            );
        }

        #[test]
        fn codes_of_digits_decode_as_the_reference_says(
            text in alphabet_text(),
            picks in proptest::collection::vec(any::<proptest::sample::Index>(), 1..30),
        ) {
            let alphabet = alphabet(&text).unwrap();
            let digits: Vec<char> = text.chars().collect();
            let code: String = picks.iter().map(|pick| *pick.get(&digits)).collect();
            prop_assert_eq!(
                decode(&code, &alphabet, &mut || ()).map_err(|error| error.state),
                reference_decode(&code, &digits)
            );
        }
    }
}
