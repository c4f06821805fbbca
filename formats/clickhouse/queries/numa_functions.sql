-- Remote-memory hot spots by function: `msen numa`'s function table for every capture.
-- Names as msen numa prints them: "function (object)", or "object+0xOFFSET" when unresolved.
SELECT host, capture_id,
       if(match(symbol, '^0x[0-9a-f]+$'), concat(dso, '+', symbol), concat(symbol, ' (', dso, ')')) AS function,
       countIf(numa_access = 'local') AS local, countIf(numa_access = 'remote') AS remote,
       round(remote / (local + remote), 4) AS remote_ratio
FROM ms_raw_samples
WHERE numa_access != ''
GROUP BY host, capture_id, function
ORDER BY host, capture_id, remote DESC, local DESC, function
