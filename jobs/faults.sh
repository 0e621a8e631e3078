#!/usr/bin/env bash
# faults.sh - fault injection by hand (not a ctest): kill -9 one rank of `mpirun -np 2` jobs at
# random moments and check that the job ends within a bounded time, that --resume finishes the
# work and that the result equals an uninterrupted run bit for bit.
#
#   infer: resnet20 (random init, seed 1) on the Fashion-MNIST test set (10,000 rows, converted by
#          `shardnet convert idx`), --logits --features; the victim rank (0 or 1) and the moment
#          (uniform in [0.5 s, 0.9 x the uninterrupted run time]) are random. The killed output
#          must not carry complete = 1; `--resume` must finish it; h5diff against the uninterrupted
#          output must find no difference.
#   train: lenet_bn_conventional, 2 epochs, global batch 100, --checkpoint; odd runs kill a random rank at a
#          random moment of epoch 2 (after the epoch-1 checkpoint appeared), even runs kill rank 0
#          while it writes a checkpoint (a watcher polls the directory every ~0.2 ms for
#          CKPT.tmp.<pid> and kills as soon as it appears; alternately the epoch-1 and the epoch-2
#          write). Afterwards the checkpoint, if present, must load (the `--resume` run starts
#          from it) and the final weights of the resumed run must equal (h5diff) those of an
#          uninterrupted run with the same rank and thread counts.
#
# Usage: jobs/faults.sh path/to/shardnet [runs per kind (default 10)] [work dir]
# Env:   SN_FAULTS_KINDS="infer train" (default both), SN_FAULTS_SEED (seed of the random victims and moments),
#        SN_FAULTS_END_LIMIT (seconds a killed job may take to end, default 60).
# Output: one line per run and a summary; also written to WORKDIR/faults_results.txt.
# Exit status: 0 if every run ended in time, resumed and matched; 1 otherwise.
# Takes about 20-30 minutes on 2 shared cores (each run is a partial run plus a resume).
set -u
sn="$(realpath "${1:?usage: $0 path/to/shardnet [runs] [workdir]}")"
runs="${2:-10}"
w="${3:-$(mktemp -d /tmp/snfaults.XXXXXX)}"
mkdir -p "$w"
cd "$w" || exit 1
kinds="${SN_FAULTS_KINDS:-infer train}"
end_limit="${SN_FAULTS_END_LIMIT:-60}"
seed="${SN_FAULTS_SEED:-$$}"
draws=0
# rnd: sets RND to a uniform number in [0, 1) from the MD5 of "seed:draw number" (called in the
# main shell, not in $(...), so that the draw counter advances).
rnd() {
  draws=$((draws + 1))
  local h
  h=$(printf '%s:%s' "$seed" "$draws" | md5sum | cut -c1-8)
  RND=$(awk -v x="$((16#$h))" 'BEGIN { printf "%.6f", x / 4294967296 }')
}
export OMP_WAIT_POLICY=passive SN_PROGRESS=0
mpirun=(mpirun --allow-run-as-root --oversubscribe -q -np 2)
py=/usr/bin/python3
res="$w/faults_results.txt"
: >"$res"
say() { echo "$*" | tee -a "$res"; }
now() { date +%s.%N; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }
bad=0

# PID of rank R among mpirun's children (Open MPI 4 forks the local ranks itself).
rank_pid() {
  local mp="$1" r="$2" p
  for p in $(pgrep -P "$mp"); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$r"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}
# Waits up to LIMIT s for PID to exit; kills its children and it if not. Sets wrc (its exit
# status, or 999 when it had to be killed: a hang).
wait_bounded() {
  local pid="$1" limit="$2" t0
  t0=$(now)
  while kill -0 "$pid" 2>/dev/null; do
    if awk -v a="$(now)" -v b="$t0" -v l="$limit" 'BEGIN { exit !(a - b > l) }'; then
      pkill -9 -P "$pid"
      kill -9 "$pid"
      wait "$pid" 2>/dev/null
      wrc=999
      return
    fi
    sleep 0.05
  done
  wait "$pid"
  wrc=$?
}

fm=/usr/share/datasets/fashion-mnist
if [[ ! -f test.h5 ]]; then
  "$sn" convert idx --images $fm/t10k-images-idx3-ubyte.gz --labels $fm/t10k-labels-idx1-ubyte.gz \
    --out test.h5 --fashion --quiet || { echo "convert failed"; exit 1; }
fi
say "faults.sh: $(date -u +%FT%TZ), seed $seed, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), runs per kind $runs, workdir $w"

# ---------------------------------------------------------------- infer
if [[ " $kinds " == *" infer "* ]]; then
  I=(infer --arch resnet20 --data "$w/test.h5" --logits --features --batch 32 --threads 1 --quiet)
  rm -f ref_infer.h5
  t0=$(now)
  "${mpirun[@]}" "$sn" "${I[@]}" --out "$w/ref_infer.h5" || { say "uninterrupted infer failed"; exit 1; }
  T=$(fsub "$(now)" "$t0")
  say "infer: uninterrupted run $T s (resnet20, 10000 rows, np 2 x 1 thread)"
  say "run victim kill_at_s end_after_kill_s mpirun_rc complete_attr rows_done resume_rc resume_s equal"
  for i in $(seq 1 "$runs"); do
    out="$w/killed_infer_$i.h5"
    rm -f "$out"
    rnd
    victim=$(awk -v r="$RND" 'BEGIN { print (r < 0.5) ? 0 : 1 }')
    rnd
    delay=$(awk -v r="$RND" -v T="$T" 'BEGIN { printf "%.2f", 0.5 + (0.9 * T - 0.5) * r }')
    t0=$(now)
    "${mpirun[@]}" "$sn" "${I[@]}" --out "$out" 2>"$w/killed_infer_$i.err" &
    mp=$!
    sleep "$delay"
    vp=$(rank_pid "$mp" "$victim")
    tk=$(now)
    if [[ -n $vp ]]; then kill -9 "$vp"; else victim="none(finished)"; fi
    wait_bounded "$mp" "$end_limit"
    ended=$(fsub "$(now)" "$tk")
    complete=0 done_rows=-
    if [[ -f $out ]]; then
      h5dump -a /complete "$out" 2>/dev/null | grep -q "(0): 1" && complete=1
      done_rows=$("$py" -c 'import h5py, sys
try:
    print(int(h5py.File(sys.argv[1], "r")["done"][...].sum()))
except Exception as e:
    print("unreadable(%s)" % type(e).__name__)' "$out" 2>/dev/null)
    else
      done_rows="no-file"
    fi
    t1=$(now)
    "${mpirun[@]}" "$sn" "${I[@]}" --out "$out" --resume 2>"$w/resume_infer_$i.err"
    rrc=$?
    rs=$(fsub "$(now)" "$t1")
    eq=no
    h5diff "$w/ref_infer.h5" "$out" >/dev/null 2>&1 && eq=yes
    say "infer-$i rank$victim $(fsub "$tk" "$t0") $ended $wrc $complete $done_rows $rrc $rs $eq"
    if [[ $eq != yes || $rrc -ne 0 || $wrc -eq 999 ]] || { [[ $complete == 1 ]] && [[ $victim != none* ]]; }; then
      bad=1
      sed 's/^/    killed: /' "$w/killed_infer_$i.err" | head -3 | tee -a "$res"
      sed 's/^/    resume: /' "$w/resume_infer_$i.err" | head -3 | tee -a "$res"
    fi
    rm -f "$out"
  done
fi

# ---------------------------------------------------------------- train
if [[ " $kinds " == *" train "* ]]; then
  R=(train --arch lenet_bn_conventional --data "$w/test.h5" --epochs 2 --batch 100 --threads 1 --quiet)
  rm -f ref_ck.h5 ref_w.h5
  t0=$(now)
  "${mpirun[@]}" "$sn" "${R[@]}" --checkpoint "$w/ref_ck.h5" --out "$w/ref_w.h5" --metrics "$w/ref_train.jsonl" ||
    { say "uninterrupted train failed"; exit 1; }
  T=$(fsub "$(now)" "$t0")
  E2=$("$py" -c 'import json, sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])["seconds"])' "$w/ref_train.jsonl")
  say "train: uninterrupted run $T s (lenet_bn_conventional, 2 epochs of 100 steps, np 2 x 1 thread), epoch 2 took $E2 s"
  say "run victim phase kill_at_s end_after_kill_s mpirun_rc tmp_left ckpt_epoch resume_rc resume_s equal"
  # Kills rank 0 as soon as CKPT.tmp.* appears for the Nth time (N = 1: after epoch 1, 2: after epoch 2).
  cat >"$w/watch_ckpt.py" <<'PY'
import os, signal, sys, time
d, base, nth, pid, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
seen, t0, prev = 0, time.time(), set()
while time.time() - t0 < limit:
    try:
        now = {e.name for e in os.scandir(d) if e.name.startswith(base + ".tmp.")}
    except FileNotFoundError:
        now = set()
    new = now - prev
    prev = now
    if new:
        seen += 1
        if seen == nth:
            os.kill(pid, signal.SIGKILL)
            print("killed", sorted(new)[0])
            sys.exit(0)
    time.sleep(0.0002)
print("not seen")
sys.exit(1)
PY
  for i in $(seq 1 "$runs"); do
    ck="$w/ck_$i.h5" wo="$w/w_$i.h5"
    rm -f "$ck" "$ck".tmp.* "$wo"
    t0=$(now)
    "${mpirun[@]}" "$sn" "${R[@]}" --checkpoint "$ck" --out "$wo" 2>"$w/killed_train_$i.err" &
    mp=$!
    if ((i % 2 == 1)); then
      phase="epoch2"
      rnd
      victim=$(awk -v r="$RND" 'BEGIN { print (r < 0.5) ? 0 : 1 }')
      # epoch 2 starts when the epoch-1 checkpoint is renamed into place
      while [[ ! -f $ck ]] && kill -0 "$mp" 2>/dev/null; do sleep 0.05; done
      rnd
      delay=$(awk -v r="$RND" -v T="$E2" 'BEGIN { printf "%.2f", 0.9 * T * r }')
      sleep "$delay"
      vp=$(rank_pid "$mp" "$victim")
      tk=$(now)
      if [[ -n $vp ]]; then kill -9 "$vp"; else victim="none(finished)"; fi
    else
      victim=0
      nth=$(((i / 2) % 2 + 1))
      phase="ckpt-write-$nth"
      vp=""
      for _ in $(seq 1 200); do vp=$(rank_pid "$mp" 0) && break; sleep 0.05; done
      "$py" "$w/watch_ckpt.py" "$w" "ck_$i.h5" "$nth" "$vp" 600 >"$w/watch_$i.txt"
      tk=$(now)
      grep -q killed "$w/watch_$i.txt" || victim="none(not seen)"
    fi
    wait_bounded "$mp" "$end_limit"
    ended=$(fsub "$(now)" "$tk")
    tmp_left=$(find "$w" -maxdepth 1 -name "ck_$i.h5.tmp.*" | wc -l)
    ck_epoch="none"
    if [[ -f $ck ]]; then
      ck_epoch=$("$py" -c 'import h5py, sys
try:
    f = h5py.File(sys.argv[1], "r"); print(int(f.attrs["epoch"]))
except Exception as e:
    print("unreadable(%s)" % type(e).__name__)' "$ck" 2>/dev/null)
    fi
    t1=$(now)
    "${mpirun[@]}" "$sn" "${R[@]}" --checkpoint "$ck" --out "$wo" --resume 2>"$w/resume_train_$i.err"
    rrc=$?
    rs=$(fsub "$(now)" "$t1")
    eq=no
    h5diff "$w/ref_w.h5" "$wo" >/dev/null 2>&1 && eq=yes
    say "train-$i rank$victim $phase $(fsub "$tk" "$t0") $ended $wrc $tmp_left $ck_epoch $rrc $rs $eq"
    if [[ $eq != yes || $rrc -ne 0 || $wrc -eq 999 || $ck_epoch == unreadable* ]]; then
      bad=1
      sed 's/^/    killed: /' "$w/killed_train_$i.err" | head -3 | tee -a "$res"
      sed 's/^/    resume: /' "$w/resume_train_$i.err" | head -3 | tee -a "$res"
    fi
    rm -f "$ck" "$ck".tmp.* "$wo"
  done
fi
say "faults.sh: $([[ $bad == 0 ]] && echo "all runs ended in time, resumed and matched" || echo "FAILURES above")"
exit $bad
