"""Replay msen's recorded ClickHouse INSERT requests into chdb (ClickHouse
26.x in process) with the modern DDL, then run the shipped fleet queries.

usage: replay_chdb.py TABLES-MODERN.SQL REQUESTS-DIR QUERIES-DIR OUT-DIR

REQUESTS-DIR holds NNNNN.sql (the request's `query` parameter, e.g.
"INSERT INTO ms_raw_samples (capture_id, ...) FORMAT RowBinary") and
NNNNN.bin (its body, the exact bytes msen sent). OUT-DIR gets one
<query>.sql.tsv per shipped query, types.tsv (column types of
ms_raw_samples), counts.tsv (samples per capture) and max_time.tsv.
"""
import os
import re
import sys

from chdb import session


def main():
    ddl_path, req_dir, queries_dir, out_dir = sys.argv[1:5]
    os.makedirs(out_dir, exist_ok=True)
    s = session.Session()
    ddl = open(ddl_path).read()
    # Statements end with ';' on a line of its own; comments stay.
    for stmt in ddl.split("\n;\n"):
        if "CREATE TABLE" in stmt:
            s.query(stmt)
    names = sorted(n[:-4] for n in os.listdir(req_dir) if n.endswith(".sql"))
    for n in names:
        q = open(os.path.join(req_dir, n + ".sql")).read()
        body = open(os.path.join(req_dir, n + ".bin"), "rb").read()
        m = re.match(r"^(INSERT INTO \S+ \([^)]*\)) FORMAT RowBinary$", q.strip())
        if not m:
            sys.exit(f"{n}: not an INSERT ... FORMAT RowBinary: {q[:120]}")
        # Not as a context manager: its exit after finish() drops the rows.
        ins = s.send_insert(m.group(1), "RowBinary")
        ins.append(body)
        r = ins.finish()
        if r.rows_written == 0:
            sys.exit(f"{n}: chdb wrote no rows for {m.group(1)[:60]}")
    def tsv(sql):
        return str(s.query(sql, "TabSeparated"))
    for q in sorted(os.listdir(queries_dir)):
        if not q.endswith(".sql") or q == "regression.sql":
            continue
        with open(os.path.join(out_dir, q + ".tsv"), "w") as f:
            f.write(tsv(open(os.path.join(queries_dir, q)).read()))
    with open(os.path.join(out_dir, "types.tsv"), "w") as f:
        f.write(tsv("SELECT name, type FROM system.columns WHERE table = 'ms_raw_samples' AND database = currentDatabase()"))
    with open(os.path.join(out_dir, "counts.tsv"), "w") as f:
        f.write(tsv("SELECT capture_id, count() FROM ms_raw_samples GROUP BY capture_id"))
    with open(os.path.join(out_dir, "max_time.tsv"), "w") as f:
        f.write(tsv("SELECT toUnixTimestamp64Nano(time) FROM ms_raw_samples ORDER BY time DESC LIMIT 1"))


if __name__ == "__main__":
    main()
