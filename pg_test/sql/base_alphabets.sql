-- base_encode(value bigint, alphabet text) -> text and base_decode(code text, alphabet text) -> bigint:
-- any alphabet of at least 2 distinct characters; the first character is the zero digit.
SELECT base_encode(10, '01') AS binary,
       base_decode('1010', '01') AS from_binary,
       base_encode(9223372036854775807, '01') AS bigint_max_in_binary,
       base_encode(255, '0123456789abcdef') AS hex,
       to_hex(255) AS to_hex;

-- base36, bitcoin's base58 (no 0, O, I, l) and the base64url characters.
SELECT base_encode(1679615, '0123456789abcdefghijklmnopqrstuvwxyz') AS base36,
       base_encode(1000000, '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz') AS base58,
       base_decode('68GP', '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz') AS from_base58,
       base_encode(4095, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_') AS base64url;

-- The base62 alphabet gives the same codes as base62_encode.
SELECT base_encode(9223372036854775807,
                   '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ') AS same_as_base62;

-- Non-ASCII alphabets work character by character, never byte by byte.
SELECT base_encode(5, 'αβγ') AS greek,
       base_decode('βγα', 'αβγ') AS from_greek,
       base_encode(9223372036854775807, '🌑🌒🌓🌔🌕🌖🌗🌘') AS moons,
       base_decode(base_encode(9223372036854775807, '🌑🌒🌓🌔🌕🌖🌗🌘'), '🌑🌒🌓🌔🌕🌖🌗🌘') AS moons_back;

-- Leading zero digits are padding here too.
SELECT base_decode('ααβ', 'αβγ') AS padded_greek, base_decode('0001', '01') AS padded_binary;

SELECT base_encode(NULL, '01') IS NULL AS null_value,
       base_encode(1, NULL) IS NULL AS null_alphabet,
       base_decode(NULL, '01') IS NULL AS null_code,
       base_decode('1', NULL) IS NULL AS null_alphabet;

-- Errors. Each is followed by its SQLSTATE.
SELECT base_encode(1, '');
\echo :LAST_ERROR_SQLSTATE
SELECT base_encode(1, 'a');
\echo :LAST_ERROR_SQLSTATE
SELECT base_encode(1, 'abca');
\echo :LAST_ERROR_SQLSTATE
SELECT base_decode('a', 'aa');
\echo :LAST_ERROR_SQLSTATE
SELECT base_encode(1, 'αβα');
\echo :LAST_ERROR_SQLSTATE
SELECT base_encode(-5, '01');
\echo :LAST_ERROR_SQLSTATE
SELECT base_decode('', '01');
\echo :LAST_ERROR_SQLSTATE
SELECT base_decode('0120', '01');
\echo :LAST_ERROR_SQLSTATE
SELECT base_decode('αδ', 'αβγ');
\echo :LAST_ERROR_SQLSTATE
-- 2^63 in binary: one more than the largest bigint.
SELECT base_decode('1' || repeat('0', 63), '01');
\echo :LAST_ERROR_SQLSTATE

-- An ASCII character is a digit wherever it stands in an alphabet, position 255 included.
SELECT string_agg(chr(256 + n), '' ORDER BY n) || 'x' || 'yz' AS mixed FROM generate_series(0, 254) AS n \gset
SELECT length(:'mixed') AS characters, base_encode(255, :'mixed') AS code_of_255,
       base_decode('x', :'mixed') AS value_of_x, base_decode('xz', :'mixed') AS value_of_xz;

-- Decoding takes time in proportion to the code, not to the code times the alphabet: a code of
-- a million characters in an alphabet of 200,000.
SELECT string_agg(chr(65536 + n), '' ORDER BY n) AS huge FROM generate_series(0, 199999) AS n \gset
SELECT base_decode(repeat(chr(65536), 1000000) || chr(65537), :'huge') AS one;
-- It stops at the character that makes the value too large, however long the code.
SELECT base_decode(repeat(chr(265535), 1000000), :'huge');
\echo :LAST_ERROR_SQLSTATE
\unset huge

-- Long loops over a code or an alphabet can be cancelled: here the cancel is already pending when
-- the decoding starts, and it stops within its first 65,536 characters.
CREATE TEMP TABLE long_code AS SELECT repeat('0', 200000) || '1' AS code;
SELECT pg_cancel_backend(pg_backend_pid()) AS cancelled, base62_decode(code) FROM long_code;
\echo :LAST_ERROR_SQLSTATE
SELECT pg_cancel_backend(pg_backend_pid()) AS cancelled,
       base_decode(code, '0123456789') FROM long_code;
\echo :LAST_ERROR_SQLSTATE
