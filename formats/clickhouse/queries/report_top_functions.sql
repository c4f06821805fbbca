-- Top functions per host and capture: `msen report --sort sym --no-children` for every
-- exported capture at once (samples, period, and the share of the event's period).
-- Narrow it with e.g. WHERE host = 'web-17' AND capture_date >= today() - 7 in both subqueries.
SELECT host, capture_id, event, symbol, kernel, samples, period,
       round(100 * period / event_period, 4) AS percent
FROM
(
    SELECT host, capture_id, event, symbol, kernel, count() AS samples, sum(period) AS period
    FROM ms_raw_samples
    GROUP BY host, capture_id, event, symbol, kernel
) AS main
ALL INNER JOIN
(
    SELECT capture_id, event, sum(period) AS event_period
    FROM ms_raw_samples
    GROUP BY capture_id, event
) AS joined USING (capture_id, event)
ORDER BY host, capture_id, event, period DESC, symbol, kernel
