-- The fleet's hottest functions: each function's share of all sampled time, summed over
-- every host (cpu-clock and cycles alike: shares of each event's period), with how many
-- hosts and captures it appears in.
SELECT event, symbol, dso, sum(period) AS period, count() AS samples,
       uniqExact(host) AS hosts, uniqExact(capture_id) AS captures
FROM ms_raw_samples
GROUP BY event, symbol, dso
ORDER BY event, period DESC, symbol, dso
LIMIT 50
