#!/usr/bin/env bash
# Run a command in a private mount namespace whose sysfs describes the PMUs
# of a fixture directory (testdata/pmu/MACHINE): the directory replaces
# /sys/bus/event_source/devices, and each of its PMUs appears as
# /sys/devices/PMU, the rest of /sys/devices staying the real one. Stock
# perf and msen then both build attrs for that machine (needs root).
#   scripts/pmu-ns.sh testdata/pmu/intel-skl -- perf record -vv -e mem-loads -- true
set -euo pipefail
fx=$(realpath "$1"); shift
[ "${1:-}" = "--" ] && shift
exec unshare -m bash -c '
  set -e
  fx=$1; shift
  mount --make-rprivate /
  real=$(mktemp -d)
  mount --bind /sys/devices "$real"
  mount -t tmpfs msen-pmu-fixture /sys/devices
  for d in "$real"/*; do
    n=$(basename "$d")
    [ -e "$fx/$n" ] && continue
    mkdir -p "/sys/devices/$n"
    mount --bind "$d" "/sys/devices/$n"
  done
  for p in "$fx"/*; do
    n=$(basename "$p")
    mkdir -p "/sys/devices/$n"
    mount --bind "$p" "/sys/devices/$n"
  done
  mount --bind "$fx" /sys/bus/event_source/devices
  exec "$@"
' bash "$fx" "$@"
