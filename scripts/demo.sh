#!/usr/bin/env bash
# The main job on built-in examples (needs root to open perf events and load
# the flow BPF programs):
#  1. the example workload (testdata/programs/hot.c: 90% of its time in
#     hot_loop), recorded with call chains and reported;
#  2. two builds of testdata/programs/regress.c, the second with hot_b doing
#     twice the work, recorded and compared as a CI job would (exit 1);
#  3. a service with two TCP clients in network namespaces made here
#     (testdata/programs/flowsrv.c: port 7001 costs 3x the CPU per byte of
#     port 7002), recorded system-wide and reported by flow: what no other
#     profiler shows.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked
M=./target/release/msen
D=target/example
mkdir -p $D
cc -O2 -g -fno-omit-frame-pointer -fno-optimize-sibling-calls -o $D/hot testdata/programs/hot.c
cc -O2 -g -fno-omit-frame-pointer -pthread -o $D/flowsrv testdata/programs/flowsrv.c

echo "== 1. where a program spends its time"
$M record -q -g -F 4000 -o $D/example.msen -- $D/hot 2 >/dev/null
$M report -i $D/example.msen --percent-limit 0.5
$M info -i $D/example.msen | sed -n '1,2p;/samples  /p;/bytes per sample/p'

echo
echo "== 2. what got slower between two builds (msen diff, as a CI gate)"
mkdir -p $D/base $D/new
cc -O0 -g -fno-omit-frame-pointer -o $D/base/regress testdata/programs/regress.c
cc -O0 -g -fno-omit-frame-pointer -DSLOW_B -o $D/new/regress testdata/programs/regress.c
$M record -q -g -o $D/base.msen -- taskset -c 0 $D/base/regress 8
$M record -q -g -o $D/new.msen -- taskset -c 0 $D/new/regress 8
status=0
$M diff --changed $D/base.msen $D/new.msen || status=$?
echo "(msen diff exited $status: 1 means a regression)"

echo
echo "== 3. which network flow the CPU worked for"
if [ "$(id -u)" -ne 0 ]; then
  echo "(skipped: the flow example needs root for network namespaces and BPF)"
  exit 0
fi
srv=msen-demo-srv cli=msen-demo-cli
cleanup() { ip netns del $srv 2>/dev/null || true; ip netns del $cli 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add $srv && ip netns add $cli
ip link add msdemo0 type veth peer name msdemo1
ip link set msdemo0 netns $srv && ip link set msdemo1 netns $cli
ip -n $srv addr add 10.78.0.1/24 dev msdemo0 && ip -n $cli addr add 10.78.0.2/24 dev msdemo1
for ns in $srv $cli; do ip -n $ns link set lo up; done
ip -n $srv link set msdemo0 up && ip -n $cli link set msdemo1 up
ip netns exec $srv $D/flowsrv serve 8 7001:3 7002:1 &
sleep 0.3
ip netns exec $cli $D/flowsrv send 10.78.0.1 7001 6 1024 >/dev/null &
ip netns exec $cli $D/flowsrv send 10.78.0.1 7002 6 1024 >/dev/null &
sleep 0.7
$M record -q -a -F 2000 --duration 3 -o $D/flows.msen
wait
$M flows -i $D/flows.msen
echo
$M report -i $D/flows.msen --sort flow,sym --comm flowsrv --percent-limit 2
