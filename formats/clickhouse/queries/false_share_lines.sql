-- Contended cache lines across hosts: `msen false-share` (perf c2c's Shared Data Cache Line
-- Table, ranked by total HITMs) for every capture. A line is its owner (the data mapping,
-- '[X]' without one), the pid for private anonymous memory, and its map-relative address;
-- shown, as in perf, when it holds at least 0.1% of the capture's HITMs.
SELECT host, capture_id, line_object, line_pid, line_addr,
       tot_hitm, lcl_hitm, rmt_hitm, records, stores, loads,
       round(100 * tot_hitm / capture_hitm, 2) AS hitm_percent
FROM
(
    SELECT host, capture_id, line_object, line_pid, line_addr,
           sum(c2c_tot_hitm) AS tot_hitm, sum(c2c_lcl_hitm) AS lcl_hitm, sum(c2c_rmt_hitm) AS rmt_hitm,
           sum(c2c_records) AS records, sum(c2c_stores) AS stores, records - stores AS loads
    FROM ms_raw_samples
    WHERE line_object != ''
    GROUP BY host, capture_id, line_object, line_pid, line_addr
    HAVING tot_hitm > 0
) AS main
ALL INNER JOIN
(
    SELECT capture_id, sum(c2c_tot_hitm) AS capture_hitm
    FROM ms_raw_samples
    WHERE line_object != ''
    GROUP BY capture_id
) AS joined USING (capture_id)
WHERE tot_hitm * 1000 >= capture_hitm
ORDER BY tot_hitm DESC, host, capture_id, line_object, line_pid, line_addr
