-- Hot functions per network flow and capture: `msen report --sort flow,sym --no-children`.
-- Samples without a flow have flow_id 0 and no ms_flows row.
SELECT host, capture_id, flow_id, flow, event, symbol, samples, period
FROM
(
    SELECT host, capture_id, flow_id, event, symbol, count() AS samples, sum(period) AS period
    FROM ms_raw_samples
    GROUP BY host, capture_id, flow_id, event, symbol
) AS main
ALL LEFT JOIN
(
    SELECT capture_id, flow_id, flow FROM ms_flows
) AS joined USING (capture_id, flow_id)
ORDER BY host, capture_id, flow_id, period DESC, symbol
