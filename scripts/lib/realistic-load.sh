# The realistic workload the benchmarks profile (sourced): a compiler (gcc
# on a generated N-function file), an interpreter (Python building and
# parsing JSON) and a shell pipeline spawning short processes, on every CPU.
#   realistic_load_start DIR [FUNCTIONS]   starts them in the background
#   realistic_load_stop                    ends them
realistic_load_start() {
  local dir=$1 n=${2:-3000}
  python3 - "$dir/big.c" "$n" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(f"int f{i}(int x){{ int s=0; for(int j=0;j<x;j++) s+=j*{i}^(s>>3); return s; }}\n")
PY
  ( while :; do gcc -O2 -c "$dir/big.c" -o /dev/null; done ) &
  ( while :; do python3 -c 'import json; d=[{"a":i,"b":str(i)} for i in range(300000)]; json.loads(json.dumps(d))'; done ) &
  ( while :; do for i in $(seq 100); do echo $i | sort | wc -l >/dev/null; done; done ) &
  REALISTIC_LOAD_DIR=$dir
}
realistic_load_stop() {
  kill $(jobs -p) 2>/dev/null; wait 2>/dev/null || true
  pkill -f "$REALISTIC_LOAD_DIR/big.c" 2>/dev/null || true
}
