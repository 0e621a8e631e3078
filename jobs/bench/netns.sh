#!/usr/bin/env bash
# netns.sh - a small emulated cluster on this machine: HOSTS network namespaces ("hosts") joined by
# veth pairs to a bridge in a switch namespace, links shaped with tc, Open MPI's TCP BTL between
# them; measures the all-reduce cost (latency alpha and bandwidth B of the cost model in
# docs/distributed.md) and `shardnet train` images/s with and without overlap of the gradient
# all-reduce with backward.
#
#   switch ns  <name>-sw:  bridge br0, ports p0..p(N-1)
#   host ns    <name>-hI:  eth0 = 10.213.S.(I+1)/24 (veth to pI), lo; rank I runs here
#
# Only addresses inside the namespaces (10.213.S.0/24, S = SUBNET, default 77) and their own
# loopbacks are used; nothing is configured in the root namespace. Everything is removed on exit
# (trap EXIT: namespaces, their veths and the bridge, leftover processes in them, temp files).
#
# Launch: mpirun runs inside host 0's namespace, with a hostfile listing the hosts' addresses and
# an rsh agent (plm_rsh_agent) that starts Open MPI's daemon on "host" I with
# `ip netns exec <name>-hI unshare --uts sh -c 'hostname hI; orted ...'`. Ranks therefore talk
# through their eth0 over TCP exactly as on separate machines (PMIx to the local daemon over the
# namespace's own loopback). Starting ranks in namespaces under one mpirun outside them does not
# work: the PMIx client cannot reach the server's loopback from another namespace
# ("OPAL ERROR: Unreachable in file ext3x_client.c").
#
# Shaping: tbf on both ends of every host link (host egress and switch-port egress), rate RATE,
# so each host has a full-duplex link of RATE. This kernel has no netem (CONFIG_NET_SCH_NETEM is
# not set; only tbf and htb), so latency cannot be added: alpha is what veth + TCP + Open MPI
# give, measured by the sweep. The cost model adds latency analytically.
#
# mpi_yield_when_idle 1: with busy-polling ranks on this PREEMPT_NONE kernel (HZ 250) under load,
# packets crossing a veth were delivered in ~20 ms bursts (median all-reduce of 4 bytes 20 ms,
# against 31 us with yielding; a busy-polling Python TCP ping-pong across the veth showed the
# same: median 10 us, p90 24 ms).
#
# Runs per rate in RATES ("none" = unshaped):
#   sweep   overlap_bench sweep: all-reduce time for 4 B .. SWEEP_MB MiB (alpha, bandwidth)
#   algos   overlap_bench algos: the gradient all-reduce with shardnet's ring against the MPI
#           library's (Open MPI: binomial tree for in-place), alternating, 64 KiB .. ALGO_MB MiB
#   train   shardnet train resnet20 28x28x1, global batch 128, STEPS steps per epoch, 2 epochs,
#           second epoch measured (as jobs/bench/scaling.sh), layouts:
#             overlap   --bucket-mb 0.25 (5 buckets of the 1.1 MB gradient), polled in backward
#             nopoll    same buckets, SN_COMM_POLL=0 (progress only inside other MPI calls)
#             1bucket   --bucket-mb 4096: one all-reduce after backward (no overlap)
#           each once per algorithm in ALGOS (train --allreduce), alternating,
#           and overlap_bench train (same model, local batch 64, --bn local and sync) for the
#           exposed time of the last rank to arrive (skew-free) and the buckets done in backward.
# Output: JSON lines on stdout (logs in WORK).
#
# Usage (root): jobs/bench/netns.sh
# Env: HOSTS=2 RATES="none 10gbit 1gbit" SUBNET=77 NAME=snbench BUILD=dir WORK=dir STEPS=6
#      SWEEP_MB=16 (0: no sweep) SWEEP_REPS=5 TRAIN_LAYOUTS="overlap nopoll 1bucket" ("": none)
#      ALGOS="ring mpi" ("": no algos sweep; train with the default) ALGO_MB=16 ALGO_ROUNDS=9
#      REPS=1 BENCH_TRAIN=1 BENCH_POLL="1 0" BENCH_MODEL=resnet20|resnet50 (overlap_bench train: resnet50 is
#      224x224x3, 1000 classes, local batch 8, 2 steps, 25 MiB buckets) BENCH_BN="local sync"
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD:-$root/build-scaling}
work=${WORK:-$build/netns}
hosts=${HOSTS:-2}
rates=${RATES:-none 10gbit 1gbit}
subnet=${SUBNET:-77}
name=${NAME:-snbench}
steps=${STEPS:-6}
sweep_mb=${SWEEP_MB:-16}
sweep_reps=${SWEEP_REPS:-5}
layouts=${TRAIN_LAYOUTS-overlap nopoll 1bucket}
algos=${ALGOS-ring mpi}
algo_mb=${ALGO_MB:-16}
algo_rounds=${ALGO_ROUNDS:-9}
bench_train=${BENCH_TRAIN:-1}
if [ "${BENCH_MODEL:-resnet20}" = resnet50 ]; then
  bench_args=(resnet50 224x224x3 1000 8 2 25)
else
  bench_args=(resnet20 28x28x1 10 64 5 0.25)
fi
reps=${REPS:-1}
py=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then echo "netns.sh: needs root (ip netns, tc)" >&2; exit 2; fi
if [ "$hosts" -lt 2 ] || [ "$hosts" -gt 16 ]; then echo "netns.sh: HOSTS in 2..16" >&2; exit 2; fi
for t in ip tc unshare mpirun mpicc; do
  command -v $t >/dev/null || { echo "netns.sh: $t not found" >&2; exit 2; }
done
if ip netns list | awk '{print $1}' | grep -q "^$name-"; then
  echo "netns.sh: namespaces $name-* exist (another run?); set NAME" >&2
  exit 2
fi

tmp=$(mktemp -d /tmp/snnetns.XXXXXX)
cleanup() {
  set +e
  for ns in $(ip netns list | awk '{print $1}' | grep "^$name-"); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null; done
  done
  sleep 0.5
  for ns in $(ip netns list | awk '{print $1}' | grep "^$name-"); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
    ip netns del "$ns"
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- build
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$build" -j2 --target shardnet shardnet_cli >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log" >&2; exit 1; }
mpicc -O2 -std=c11 -I"$root/src" "$here/overlap_bench.c" "$build/libshardnet.so" \
  -Wl,-rpath,"$build" -o "$build/overlap_bench"
exe=$build/shardnet
mkdir -p "$work"

# ---- topology
addr() { echo "10.213.$subnet.$(($1 + 1))"; }
ip netns add "$name-sw"
ip -n "$name-sw" link set lo up
ip -n "$name-sw" link add br0 type bridge
ip -n "$name-sw" link set br0 up
hostfile=$tmp/hosts
: >"$hostfile"
for i in $(seq 0 $((hosts - 1))); do
  ns=$name-h$i
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "$name-e$i" netns "$ns" type veth peer name "p$i" netns "$name-sw"
  ip -n "$ns" link set "$name-e$i" name eth0
  ip -n "$ns" addr add "$(addr "$i")/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$name-sw" link set "p$i" master br0
  ip -n "$name-sw" link set "p$i" up
  echo "$(addr "$i") slots=1" >>"$hostfile"
done

shape() { # rate: tbf on both directions of every host link
  local rate=$1 i bytes burst
  for i in $(seq 0 $((hosts - 1))); do
    tc -n "$name-h$i" qdisc del dev eth0 root 2>/dev/null || true
    tc -n "$name-sw" qdisc del dev "p$i" root 2>/dev/null || true
    [ "$rate" = none ] && continue
    bytes=$($py -c "import re,sys; m=re.fullmatch(r'(\d+)([kmg]?)bit','$rate'); \
print(int(m.group(1))*{'':1,'k':1e3,'m':1e6,'g':1e9}[m.group(2)]/8)")
    # burst: 200 us at line rate, at least 128 KiB (GSO packets of 64 KiB must fit)
    burst=$($py -c "print(max(131072, int($bytes * 200e-6)))")
    tc -n "$name-h$i" qdisc add dev eth0 root tbf rate "$rate" burst "$burst" latency 200ms
    tc -n "$name-sw" qdisc add dev "p$i" root tbf rate "$rate" burst "$burst" latency 200ms
  done
}

# rsh agent: $1 = host address, the rest = the daemon's command line
agent=$tmp/agent.sh
cat >"$agent" <<EOF
#!/bin/sh
host=\$1; shift
i=\${host##*.}; i=\$((i - 1))
exec ip netns exec $name-h\$i unshare --uts sh -c "hostname $name-h\$i; \$*"
EOF
chmod +x "$agent"

run_mpi() { # np, then the command; output to stdout
  local np=$1
  shift
  ip netns exec "$name-h0" mpirun --allow-run-as-root -np "$np" --hostfile "$hostfile" \
    --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1 \
    --mca btl tcp,self --mca btl_tcp_if_include "10.213.$subnet.0/24" \
    --mca oob_tcp_if_include "10.213.$subnet.0/24" --mca mpi_yield_when_idle 1 \
    -x OMP_WAIT_POLICY=passive -x OMP_NUM_THREADS=1 -x SN_COMM_POLL "$@"
}
export SN_COMM_POLL=1

# ---- data: batch x steps rows of Fashion-MNIST (or generated 28x28x1)
batch=128
data=$work/fmnist_${batch}x$steps.h5
if [ ! -f "$data" ]; then
  fm=/usr/share/datasets/fashion-mnist full=$work/fashion_train.h5
  if [ -f "$fm/train-images-idx3-ubyte.gz" ] && [ ! -f "$full" ]; then
    "$exe" convert idx --images "$fm/train-images-idx3-ubyte.gz" \
      --labels "$fm/train-labels-idx1-ubyte.gz" --out "$full" --fashion --quiet
  fi
  "$py" - "$full" "$data" $((batch * steps)) <<'EOF'
import os, sys, h5py, numpy as np
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with h5py.File(dst, 'w') as f:
    if os.path.exists(src):
        with h5py.File(src, 'r') as s:
            f['images'] = s['images'][:n]; f['labels'] = s['labels'][:n]
    else:
        rng = np.random.default_rng(0)
        f['images'] = rng.integers(0, 256, size=(n, 28, 28, 1), dtype=np.uint8)
        f['labels'] = rng.integers(0, 10, size=n).astype(np.int32)
EOF
fi

echo "{\"netns\": true, \"hosts\": $hosts, \"subnet\": \"10.213.$subnet.0/24\", \"kernel\": \"$(uname -r)\", \"netem\": false, \"load_avg\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
for rate in $rates; do
  shape "$rate"
  # all-reduce sweep
  [ "$sweep_mb" != 0 ] && run_mpi "$hosts" "$build/overlap_bench" sweep "$sweep_mb" "$sweep_reps" 2>"$work/sweep_$rate.err" |
    "$py" -c "import json,sys
for l in sys.stdin:
    d=json.loads(l); d['rate']='$rate'; d['load_avg']=float(open('/proc/loadavg').read().split()[0]); print(json.dumps(d))"
  # ring against the MPI library's all-reduce
  [ -n "$algos" ] && run_mpi "$hosts" "$build/overlap_bench" algos "$algo_mb" "$algo_rounds" \
    2>"$work/algos_$rate.err" |
    "$py" -c "import json,sys
for l in sys.stdin:
    d=json.loads(l); d['rate']='$rate'; d['load_avg']=float(open('/proc/loadavg').read().split()[0]); print(json.dumps(d))"
  # shardnet train
  for layout in $layouts; do
    for rep in $(seq 1 "$reps"); do
     for algo in ${algos:-auto}; do
      metrics=$work/train_${rate}_${layout}_${algo}_$rep.json
      rm -f "$metrics"
      case $layout in
        overlap) bucket=0.25 poll=1 ;;
        nopoll) bucket=0.25 poll=0 ;;
        1bucket) bucket=4096 poll=1 ;;
        *) echo "netns.sh: unknown layout $layout" >&2; exit 2 ;;
      esac
      load=$(cut -d' ' -f1 /proc/loadavg)
      SN_COMM_POLL=$poll run_mpi "$hosts" "$exe" train --arch resnet20 --classes 10 --data "$data" \
        --batch $batch --epochs 2 --threads 1 --augment none --quiet --bucket-mb $bucket \
        --allreduce "$algo" --metrics "$metrics" >"$work/train_${rate}_${layout}_${algo}_$rep.log" 2>&1 ||
        { echo "netns.sh: train failed, see $work/train_${rate}_${layout}_${algo}_$rep.log" >&2; continue; }
      "$py" - "$metrics" "$rate" "$layout" "$rep" "$load" "$steps" "$algo" <<'EOF'
import json, sys
path, rate, layout, rep, load, steps, algo = sys.argv[1:]
a, b = [json.loads(l) for l in open(path) if l.strip()][-2:]
steps = int(steps)
print(json.dumps({"mode": "shardnet_train", "rate": rate, "layout": layout, "allreduce": algo, "rep": int(rep),
    "load_avg": float(load), "ranks": b["ranks"], "images_per_s": b["images_per_s"],
    "step_s": round(b["seconds"] / steps, 4),
    "exposed_ms_rank0": round(1e3 * (b["comm_exposed_s"] - a["comm_exposed_s"]) / steps, 2),
    "comm_MB": round((b["comm_bytes"] - a["comm_bytes"]) / steps / 1e6, 3)}))
EOF
     done
    done
  done
  if [ "$bench_train" = 1 ]; then
    for bn in ${BENCH_BN:-local sync}; do
      for poll in ${BENCH_POLL:-1 0}; do
        for algo in ${algos:-auto}; do
          # overlap_bench uses the default (AUTO): Open MPI's MCA parameter selects MPI_Iallreduce
          # (2 = its binomial tree, the in-place default)
          mca=()
          [ "$algo" = mpi ] && mca=(-x OMPI_MCA_coll_libnbc_iallreduce_algorithm=2)
          run_mpi "$hosts" "${mca[@]}" "$build/overlap_bench" train "${bench_args[@]}" $poll $bn \
            2>>"$work/bench_train.err" |
            "$py" -c "import json,sys
for l in sys.stdin:
    d=json.loads(l); d['rate']='$rate'; d['allreduce']='$algo'; d['load_avg']=float(open('/proc/loadavg').read().split()[0]); print(json.dumps(d))"
        done
      done
    done
  fi
done
