-- shortlink_daily_visits(code, from_day, to_day) -> (day, visits): the visits of a link per day
-- (UTC), with 0 for a day without any, to draw its clicks over time.
-- Each test file starts from no links; PL/pgSQL line numbers stay out of the output.
TRUNCATE shortlinks, shortlink_visits;
\set SHOW_CONTEXT never
SET snowlink.visit_write_mode = transaction;
SELECT (now() AT TIME ZONE 'UTC')::date AS today \gset
SELECT (shorten('https://example.com/campaign', code => 'campaign')).code;
SELECT count(resolve('campaign')) AS visited_today FROM generate_series(1, 3);
-- Visits of earlier days, as if made then (written straight into the table, which only the
-- extension's owner can do).
INSERT INTO shortlink_visits (link_id, day, visits, first_at, last_at, code)
SELECT id, :'today'::date - 3, 5, now() - interval '3 days', now() - interval '3 days', code
FROM shortlinks WHERE code = 'campaign';

-- By default, from the day the link was made to today.
SELECT day = :'today' AS is_today, visits FROM shortlink_daily_visits('campaign');
-- Any range of days, each day once, with 0 for the days without visits.
SELECT :'today'::date - day AS days_ago, visits
FROM shortlink_daily_visits('campaign', :'today'::date - 5, :'today');
SELECT count(*) AS days, sum(visits) AS visits
FROM shortlink_daily_visits('campaign', :'today'::date - 365);
-- shortlink_stats() has the total.
SELECT visits FROM shortlink_stats('campaign');
-- shortlinks_stats() has it for many codes at once, in one query: a row per code of a link, none
-- for an unknown code or a NULL, each code once.
SELECT (shorten('https://example.com/quiet', code => 'quiet')).code;
SELECT code, visits, first_visit_at IS NOT NULL AS visited, last_visit_at >= first_visit_at AS in_order
FROM shortlinks_stats(ARRAY['quiet', 'campaign', 'unknown', NULL, 'campaign']);
SELECT count(*) AS empty FROM shortlinks_stats('{}');
SELECT count(*) AS of_another_domain FROM shortlinks_stats(ARRAY['campaign'], 'other.example.com');

-- No row for an unknown code, nor for a range that ends before it starts.
SELECT count(*) AS unknown_code FROM shortlink_daily_visits('unknown');
SELECT count(*) AS empty_range FROM shortlink_daily_visits('campaign', :'today', :'today'::date - 1);
SELECT count(*) AS null_code FROM shortlink_daily_visits(NULL);
-- An infinite bound is an open one, as NULL is: from the day the link was made, to today. From
-- 'infinity', or to '-infinity', there is no day.
SELECT count(*) = (SELECT count(*) FROM shortlink_daily_visits('campaign')) AS infinite_is_open
FROM shortlink_daily_visits('campaign', '-infinity', 'infinity');
SELECT count(*) AS from_infinity FROM shortlink_daily_visits('campaign', 'infinity');
SELECT count(*) AS to_minus_infinity FROM shortlink_daily_visits('campaign', NULL, '-infinity');

-- Up to the last day a date can hold; a range of more than 36,600 days (100 years) is an error,
-- which comes at once.
SELECT count(*) AS days, max(day) AS last_day
FROM shortlink_daily_visits('campaign', '5874897-12-01', '5874897-12-31');
SELECT count(*) AS days FROM shortlink_daily_visits('campaign', '2000-01-01', date '2000-01-01' + 36599);
SELECT count(*) FROM shortlink_daily_visits('campaign', '2000-01-01', date '2000-01-01' + 36600);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) FROM shortlink_daily_visits('campaign', '4713-01-01 BC', '294276-12-31');
\echo :LAST_ERROR_SQLSTATE

-- A link with max_visits counts its visits in its own row only: no days.
SELECT (shorten('https://example.com/once', code => 'once', max_visits => 5)).code;
SELECT resolve('once');
SELECT visits FROM shortlink_stats('once');
SELECT sum(visits) AS on_days FROM shortlink_daily_visits('once');
RESET snowlink.visit_write_mode;
