-- base62 and other alphabets: the descriptions of the functions of src/base62/.
COMMENT ON FUNCTION base62_encode(bigint) IS
    'base 62 code (0-9a-zA-Z) of a non-negative bigint';
COMMENT ON FUNCTION base62_encode(bigint, integer) IS
    'base 62 code of a non-negative bigint, left-padded with 0 to min_length characters';
COMMENT ON FUNCTION base62_decode(text) IS
    'bigint that a base 62 code stands for';
COMMENT ON FUNCTION base_encode(bigint, text) IS
    'code of a non-negative bigint in the given alphabet (its first character is zero)';
COMMENT ON FUNCTION base_decode(text, text) IS
    'bigint that a code in the given alphabet stands for';
