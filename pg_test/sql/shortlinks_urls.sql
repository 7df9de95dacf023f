-- Which URLs shorten() accepts, and their normal form: shortlink_normalize_url(url) -> text.
-- Only absolute http and https URLs with a host, written scheme://host. They are stored as a
-- browser reads them (the WHATWG URL standard): scheme and host in lower case, IDN to punycode,
-- no default port, dot segments resolved, and what may not stand in a URL percent-encoded.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
SELECT shortlink_normalize_url('HTTPS://Example.COM') AS lower_case_with_a_path,
       shortlink_normalize_url('https://EXAMPLE.com:8443/A/../B/%7e?Q=1&q=2#Frag') AS dot_segments,
       shortlink_normalize_url('http://example.com:80/') AS default_port;
SELECT shortlink_normalize_url('https://Bücher.example/straße?q=ü') AS idn_to_punycode,
       shortlink_normalize_url('http://[::1]:8080/x') AS ipv6;

-- Invisible, direction-changing and non-ASCII characters never reach a Location header as they
-- are: the stored URL, resolve() and the header are the same ASCII text.
SELECT name, shortlink_normalize_url(format('https://example.com/a%sb?q=%s#%s', c, c, c)) AS stored
FROM (VALUES ('right-to-left override', E'\u202E'), ('zero width space', E'\u200B'),
             ('byte order mark', E'\uFEFF'), ('word joiner', E'\u2060'), ('a with umlaut', 'ä'))
     AS chars(name, c);
SELECT url, resolve(code) = url AS resolves_to_it
FROM shorten(E'https://example.com/\u202Etxt.exe?x="y"');

-- A URL of 8000 bytes (snowlink.max_url_length) shortens and resolves; one more byte does not.
SET snowlink.visit_write_mode = transaction;
SELECT 'https://example.com/' || repeat('a', 8000 - 20) AS long_url \gset
SELECT length(:'long_url') AS bytes, resolve((shorten(:'long_url')).code) = :'long_url' AS resolves;
SELECT shorten(:'long_url' || 'a');
\echo :LAST_ERROR_SQLSTATE

-- Refused. Each is followed by its SQLSTATE.
SELECT shortlink_normalize_url('javascript:alert(1)');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('JaVaScRiPt:alert(1)');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('data:text/html,<script>alert(1)</script>');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('vbscript:msgbox(1)');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('file:///etc/passwd');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('ftp://example.com/file');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('example.com/page');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('/relative/path');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('https://');
\echo :LAST_ERROR_SQLSTATE
-- A host that DNS cannot look up: an empty label, a label over 63 bytes, a name over 253.
SELECT shorten('https://../');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('https://www..example.com/');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('https://' || repeat('a', 100) || '.example/');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('https://' || repeat(repeat('a', 60) || '.', 5) || 'example/');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('https://' || repeat('a', 63) || '.example./') AS longest_label_and_root_dot;
-- A browser would read these as https://example.com/ and https://evil.com/x: a third reading is
-- never stored, so they are refused.
SELECT shortlink_normalize_url('https:///example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('https:////evil.com/x');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('http:example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('http:\\example.com');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('https://exa mple.com/');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url(E'https://example.com/\tpath');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url(E'https://example.com/\r\nSet-Cookie:x=1');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('https://bank.example@evil.example/login');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('https://user:secret@example.com/');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('https://example.com:99999/');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('https://example.com/' || repeat('a', 8000));
\echo :LAST_ERROR_SQLSTATE

-- A superuser may widen the schemes on purpose; the dangerous four stay refused.
SET snowlink.allowed_url_schemes = 'https, ftp, javascript';
SELECT shortlink_normalize_url('FTP://Files.Example/report.pdf') AS ftp_allowed;
SELECT shortlink_normalize_url('javascript://example.com/%0Aalert(1)');
\echo :LAST_ERROR_SQLSTATE
SELECT shortlink_normalize_url('http://example.com/');
\echo :LAST_ERROR_SQLSTATE
RESET snowlink.allowed_url_schemes;
SET snowlink.max_url_length = 30;
SELECT shortlink_normalize_url('https://example.com/01234567890');
\echo :LAST_ERROR_SQLSTATE
RESET snowlink.max_url_length;
SELECT shortlink_normalize_url(NULL) IS NULL AS strict;
