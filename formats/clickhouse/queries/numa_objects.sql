-- Remote-memory hot spots by data object: `msen numa`'s object table for every capture.
SELECT host, capture_id, if(data_symbol = '', '[unknown]', data_symbol) AS object,
       countIf(numa_access = 'local') AS local, countIf(numa_access = 'remote') AS remote,
       round(remote / (local + remote), 4) AS remote_ratio
FROM ms_raw_samples
WHERE numa_access != ''
GROUP BY host, capture_id, object
ORDER BY host, capture_id, remote DESC, local DESC, object
