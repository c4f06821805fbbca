-- What got slower between two captures (`msen diff BASE NEW --sort sym`, shares only):
-- each function's share of its event's period in both captures, and the change in
-- percentage points, largest rise first. Replace BASE-CAPTURE-ID and NEW-CAPTURE-ID
-- (ms_captures.capture_id) everywhere below, e.g. with sed.
SELECT event, symbol,
       round(100 * base_period / base_total, 4) AS base_percent,
       round(100 * new_period / new_total, 4) AS new_percent,
       round(new_percent - base_percent, 4) AS delta_pp,
       base_samples, new_samples
FROM
(
    SELECT event, symbol,
           sumIf(period, capture_id = 'BASE-CAPTURE-ID') AS base_period,
           sumIf(period, capture_id = 'NEW-CAPTURE-ID') AS new_period,
           countIf(capture_id = 'BASE-CAPTURE-ID') AS base_samples,
           countIf(capture_id = 'NEW-CAPTURE-ID') AS new_samples
    FROM ms_raw_samples
    WHERE capture_id IN ('BASE-CAPTURE-ID', 'NEW-CAPTURE-ID')
    GROUP BY event, symbol
) AS main
ALL INNER JOIN
(
    SELECT event,
           sumIf(period, capture_id = 'BASE-CAPTURE-ID') AS base_total,
           sumIf(period, capture_id = 'NEW-CAPTURE-ID') AS new_total
    FROM ms_raw_samples
    WHERE capture_id IN ('BASE-CAPTURE-ID', 'NEW-CAPTURE-ID')
    GROUP BY event
) AS joined USING (event)
WHERE base_total > 0 AND new_total > 0
ORDER BY delta_pp DESC, event, symbol
