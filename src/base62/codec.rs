//! Conversion between non-negative bigints and codes over any alphabet, on top of `base-x`.
//!
//! `base-x` does the arithmetic. This module adds what SQL needs around it: alphabet checks,
//! errors that name the offending character, the bigint range, and padding.

use std::sync::LazyLock;

use crate::error::{SqlError, SqlState};

/// Digits, then lower case, then upper case. Not in ASCII order: under the C collation 'Z' < 'a',
/// so equal-length codes do not sort like their numbers.
pub const BASE62_DIGITS: &str = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Padding beyond this is a mistake, not a code: base 2 needs only 63 digits for any bigint.
pub const MAX_MIN_LENGTH: i32 = 1024;

/// Error messages quote at most this many characters of a code or an alphabet.
const QUOTE_LIMIT: usize = 64;

const NOT_A_DIGIT: u8 = u8::MAX;

static BASE62: LazyLock<Alphabet<'static>> =
    LazyLock::new(|| Alphabet::new(BASE62_DIGITS).expect("the base62 alphabet is valid"));

/// A checked alphabet: at least two distinct characters (Unicode scalar values, never bytes).
#[derive(Debug)]
pub struct Alphabet<'a> {
    text: &'a str,
    digits: Vec<char>,
    /// Digit value of each ASCII character, so that base62 input needs no search.
    ascii_values: [u8; 128],
    /// How many digits i64::MAX has in this base: longer codes cannot fit a bigint.
    max_significant_digits: usize,
}

impl<'a> Alphabet<'a> {
    pub fn base62() -> &'static Alphabet<'static> {
        &BASE62
    }

    pub fn new(text: &'a str) -> Result<Self, SqlError> {
        let digits: Vec<char> = text.chars().collect();
        if digits.len() < 2 {
            return Err(SqlError::new(
                SqlState::InvalidParameter,
                format!("alphabet {} has fewer than 2 characters", quoted(text)),
            ));
        }
        let mut sorted = digits.clone();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(SqlError::new(
                SqlState::InvalidParameter,
                format!(
                    "alphabet {} repeats the character \"{}\"",
                    quoted(text),
                    pair[0].escape_debug()
                ),
            )
            .with_detail("Each character of an alphabet must be distinct."));
        }

        let mut ascii_values = [NOT_A_DIGIT; 128];
        for (value, digit) in digits.iter().enumerate() {
            if digit.is_ascii() {
                // An alphabet holds at most 128 ASCII characters, so the value fits.
                ascii_values[*digit as usize] = value as u8;
            }
        }
        let base = digits.len() as u64;
        let mut max_significant_digits = 0;
        let mut rest = i64::MAX as u64;
        while rest > 0 {
            rest /= base;
            max_significant_digits += 1;
        }
        Ok(Alphabet {
            text,
            digits,
            ascii_values,
            max_significant_digits,
        })
    }

    fn zero(&self) -> char {
        self.digits[0]
    }

    fn contains(&self, c: char) -> bool {
        if c.is_ascii() {
            self.ascii_values[c as usize] != NOT_A_DIGIT
        } else {
            self.digits.contains(&c)
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
    let mut padded = String::with_capacity(code.len() + padding * alphabet.zero().len_utf8());
    padded.extend(std::iter::repeat_n(alphabet.zero(), padding));
    padded.push_str(&code);
    Ok(padded)
}

/// Decodes `code` written in `alphabet`. Leading zero digits are allowed, since padding makes them.
pub fn decode(code: &str, alphabet: &Alphabet) -> Result<i64, SqlError> {
    if code.is_empty() {
        return Err(SqlError::new(
            SqlState::InvalidText,
            "cannot decode an empty string",
        ));
    }
    if let Some((index, invalid)) = code
        .chars()
        .enumerate()
        .find(|(_, c)| !alphabet.contains(*c))
    {
        return Err(SqlError::new(
            SqlState::InvalidText,
            format!(
                "invalid character \"{}\" at position {} of code {}",
                invalid.escape_debug(),
                index + 1,
                quoted(code)
            ),
        )
        .with_detail(format!("The alphabet is {}.", quoted(alphabet.text))));
    }

    let significant = code.trim_start_matches(alphabet.zero());
    if significant.is_empty() {
        return Ok(0);
    }
    let out_of_range = || {
        SqlError::new(
            SqlState::OutOfRange,
            format!("code {} is out of range for type bigint", quoted(code)),
        )
        .with_detail("Codes stand for numbers from 0 to 9223372036854775807.")
    };
    // Checked before decoding, so that a huge code costs nothing.
    if significant.chars().count() > alphabet.max_significant_digits {
        return Err(out_of_range());
    }
    let bytes = base_x::decode(alphabet.text, significant).map_err(|_| out_of_range())?;
    let bytes = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
    if bytes.len() > 8 {
        return Err(out_of_range());
    }
    let mut big_endian = [0u8; 8];
    big_endian[8 - bytes.len()..].copy_from_slice(bytes);
    i64::try_from(u64::from_be_bytes(big_endian)).map_err(|_| out_of_range())
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
        decode(code, Alphabet::base62())
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
        let emoji = Alphabet::new("🙂🙃").unwrap();
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
        assert_eq!(
            Alphabet::new("a").unwrap_err().state,
            SqlState::InvalidParameter
        );
        assert_eq!(
            Alphabet::new("abca").unwrap_err().state,
            SqlState::InvalidParameter
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

    fn alphabet_text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(BASE62_DIGITS.to_string()),
            proptest::collection::hash_set(proptest::char::range('!', '~'), 2..94)
                .prop_map(|set| set.into_iter().collect()),
            proptest::collection::hash_set(any::<char>(), 2..300)
                .prop_map(|set| set.into_iter().collect()),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(value in 0..=i64::MAX, text in alphabet_text(), min_length in 0..80i32) {
            let alphabet = Alphabet::new(&text).unwrap();
            let code = encode(value, &alphabet, min_length).unwrap();
            prop_assert!(code.chars().count() >= min_length as usize);
            prop_assert_eq!(decode(&code, &alphabet), Ok(value));
        }

        #[test]
        fn agrees_with_repeated_division(value in 0..=i64::MAX, text in alphabet_text()) {
            let alphabet = Alphabet::new(&text).unwrap();
            let digits: Vec<char> = text.chars().collect();
            prop_assert_eq!(encode(value, &alphabet, 0).unwrap(), reference_encode(value as u64, &digits));
        }

        #[test]
        fn any_string_decodes_or_fails_cleanly(code in any::<String>(), text in alphabet_text()) {
            let alphabet = Alphabet::new(&text).unwrap();
            match decode(&code, &alphabet) {
                Ok(value) => {
                    let canonical = encode(value, &alphabet, 0).unwrap();
                    let zero = alphabet.zero();
                    let stripped = code.trim_start_matches(zero);
                    prop_assert_eq!(if stripped.is_empty() { zero.to_string() } else { stripped.to_string() }, canonical);
                }
                Err(error) => {
                    let expected_state = if code.is_empty() || code.chars().any(|c| !text.contains(c)) {
                        SqlState::InvalidText
                    } else {
                        SqlState::OutOfRange
                    };
                    prop_assert_eq!(error.state, expected_state);
                }
            }
        }

        #[test]
        fn codes_from_the_alphabet_decode_or_overflow(code in "[0-9a-zA-Z]{1,14}") {
            match base62_decode(&code) {
                Ok(value) => prop_assert_eq!(encode(value, Alphabet::base62(), code.len() as i32).unwrap(), code),
                Err(error) => {
                    prop_assert_eq!(error.state, SqlState::OutOfRange);
                    prop_assert!(code.trim_start_matches('0').len() >= 11);
                }
            }
        }
    }
}
