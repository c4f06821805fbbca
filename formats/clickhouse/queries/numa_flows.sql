-- Remote-memory accesses by the network flow the CPU was serving: `msen numa`'s flow table.
SELECT host, capture_id, if(flow_id = 0, '[no flow]', flow) AS flow,
       local, remote, round(remote / (local + remote), 4) AS remote_ratio
FROM
(
    SELECT host, capture_id, flow_id,
           countIf(numa_access = 'local') AS local, countIf(numa_access = 'remote') AS remote
    FROM ms_raw_samples
    WHERE numa_access != ''
    GROUP BY host, capture_id, flow_id
) AS main
ALL LEFT JOIN
(
    SELECT capture_id, flow_id, flow FROM ms_flows
) AS joined USING (capture_id, flow_id)
ORDER BY host, capture_id, remote DESC, local DESC, flow
