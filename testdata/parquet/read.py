"""Read msen's Parquet export the way an analyst would, with pyarrow and
DuckDB, and print what the test compares as JSON:
- per table: rows, each column's Arrow type, the pages' compression codecs,
  whether string columns are dictionary-encoded, row groups;
- DuckDB: samples and period per (capture, event, symbol, kernel) -- msen
  report --sort sym --no-children's rows -- and samples per flow through a
  join of samples with flows -- msen flows' rows.

usage: read.py DIR
"""
import json
import sys

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq

root = sys.argv[1]
out = {"tables": {}}
for table in ["ms_raw_samples", "ms_stack_traces", "ms_flow_rollup", "ms_flows", "ms_data_objects", "ms_captures"]:
    d = ds.dataset(f"{root}/{table}", format="parquet")
    t = d.to_table()
    codecs, dict_cols, groups = set(), set(), 0
    for f in d.files:
        md = pq.ParquetFile(f).metadata
        groups += md.num_row_groups
        for g in range(md.num_row_groups):
            rg = md.row_group(g)
            for c in range(rg.num_columns):
                col = rg.column(c)
                codecs.add(col.compression)
                if any("DICTIONARY" in e for e in col.encodings):
                    dict_cols.add(col.path_in_schema)
    out["tables"][table] = {
        "rows": t.num_rows,
        "types": {f.name: str(f.type) for f in t.schema},
        "codecs": sorted(codecs),
        "dictionary_columns": sorted(dict_cols),
        "row_groups": groups,
    }

con = duckdb.connect()
q = f"""
SELECT capture_id, event, symbol, kernel, count(*) AS samples, sum(period) AS period
FROM read_parquet('{root}/ms_raw_samples/*.parquet')
GROUP BY ALL ORDER BY ALL
"""
out["by_symbol"] = [[str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), int(r[5])] for r in con.execute(q).fetchall()]
q = f"""
SELECT s.capture_id, f.flow, count(*) AS samples
FROM read_parquet('{root}/ms_raw_samples/*.parquet') s
JOIN read_parquet('{root}/ms_flows/*.parquet') f ON s.capture_id = f.capture_id AND s.flow_id = f.flow_id
GROUP BY ALL ORDER BY ALL
"""
out["by_flow"] = [[str(r[0]), str(r[1]), int(r[2])] for r in con.execute(q).fetchall()]
print(json.dumps(out))
