-- base62_encode(value bigint [, min_length int]) -> text
-- Digits, then lower case, then upper case: 0-9 a-z A-Z.
SELECT base62_encode(0) AS zero,
       base62_encode(9) AS nine,
       base62_encode(10) AS ten,
       base62_encode(35) AS thirty_five,
       base62_encode(36) AS thirty_six,
       base62_encode(61) AS sixty_one,
       base62_encode(62) AS sixty_two;

-- 62^6 is the smallest 7-character code; the largest bigint needs 11 characters.
SELECT base62_encode(56800235584) AS "62^6",
       base62_encode(56800235583) AS "62^6 - 1",
       base62_encode(9223372036854775807) AS bigint_max;

-- Padding with '0' to at least min_length characters; longer codes are never cut.
SELECT base62_encode(61, 4) AS padded,
       base62_encode(62, 1) AS already_longer,
       base62_encode(0, 0) AS zero_padding,
       base62_encode(125, 7) AS seven,
       length(base62_encode(1, 1024)) AS longest_padding;

-- NULL in, NULL out (STRICT).
SELECT base62_encode(NULL) IS NULL AS null_value,
       base62_encode(1, NULL) IS NULL AS null_min_length;

-- Errors. Each is followed by its SQLSTATE.
SELECT base62_encode(-1);
\echo :LAST_ERROR_SQLSTATE
SELECT base62_encode(-9223372036854775808);
\echo :LAST_ERROR_SQLSTATE
SELECT base62_encode(1, -1);
\echo :LAST_ERROR_SQLSTATE
SELECT base62_encode(1, 1025);
\echo :LAST_ERROR_SQLSTATE
SELECT base62_encode(1, 2147483647);
\echo :LAST_ERROR_SQLSTATE
