#!/usr/bin/env bash
# signal_test.sh - stop signals during `shardnet train` (cosine schedule, 2 epochs of 15 steps,
# a periodic checkpoint every 3 steps). SIGTERM, SIGINT and SIGUSR1 make every rank finish its
# step, write the checkpoint and exit 75 with one line from rank 0 saying how to resume, whether
# the signal reached rank 0 only, rank 1 only, every rank, or mpirun (which forwards SIGUSR1);
# the resumed run ends with the weights of an uninterrupted one. Also: a signal before the first
# step (nothing to save), during validation (the epoch is reported after the resume), without
# --checkpoint, and a second signal (exits at once, the last checkpoint stays loadable); a
# checkpoint due by --checkpoint-minutes.
set -u
sn="$1"
py=/usr/bin/python3
mpirun=(mpirun --allow-run-as-root --oversubscribe -q)
t=$(mktemp -d /tmp/snsignal.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }

# 300 training and 1000 validation rows of the Fashion-MNIST test set
$py - "$t" <<'PY' || exit 1
import gzip, struct, sys
fm, out = "/usr/share/datasets/fashion-mnist/", sys.argv[1]
img = gzip.open(fm + "t10k-images-idx3-ubyte.gz").read()
lab = gzip.open(fm + "t10k-labels-idx1-ubyte.gz").read()
for name, a, b in (("train", 0, 300), ("val", 300, 1300)):
    n = struct.pack(">I", b - a)
    open(f"{out}/{name}-img", "wb").write(img[:4] + n + img[8:16] + img[16 + 784 * a:16 + 784 * b])
    open(f"{out}/{name}-lab", "wb").write(lab[:4] + n + lab[8 + a:8 + b])
PY
for s in train val; do
  "$sn" convert idx --images "$t/$s-img" --labels "$t/$s-lab" --out "$t/$s.h5" --quiet || exit 1
done
loud=(--arch resnet20 --width 4 --input 28x28x1 --data "$t/train.h5" --val "$t/val.h5"
  --batch 20 --epochs 2)
common=("${loud[@]}" --quiet)

# start NP ARGS...: shardnet train in the background (pid in $job); stderr in $t/err
start() {
  local np=$1
  shift
  if [[ $np == 1 ]]; then
    "$sn" train "$@" --threads 2 2>"$t/err" &
  else
    "${mpirun[@]}" -np "$np" "$sn" train "$@" --threads 1 2>"$t/err" &
  fi
  job=$!
}
# wait_for CMD...: until CMD succeeds (0.02 s polls, at most 120 s)
wait_for() {
  for _ in $(seq 6000); do
    "$@" && return 0
    sleep 0.02
  done
  return 1
}
# pid_of_rank R: the process of rank R under mpirun $job
pid_of_rank() {
  local c
  for c in $(pgrep -P "$job"); do
    if tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      echo "$c"
      return
    fi
  done
}
step_of() { h5dump -a step "$1" 2>/dev/null | sed -n 's/^ *(0): //p'; } # a checkpoint's step
# stopped NAME: exit 75, one line from shardnet naming the step; that step is the checkpoint's
stopped() {
  local rc=$1 name=$2 ck=$3
  local lines
  lines=$(grep -c '^shardnet: ' "$t/err")
  local s
  s=$(sed -n 's/^shardnet: stopped by SIG[A-Z0-9]* after step \([0-9]*\) of 30.*run the same command with --resume to continue$/\1/p' "$t/err")
  if [[ $rc == 75 && $lines == 1 && -n $s && $(step_of "$ck") == "$s" ]]; then
    echo "ok: $name: exit 75: $(cat "$t/err")"
    return 0
  fi
  die "$name: exit $rc, checkpoint at step $(step_of "$ck"): $(cat "$t/err")"
  return 1
}
# resumed_equal NP CK REF NAME: the resumed run's weights equal REF
resumed_equal() {
  if ! start "$1" "${common[@]}" --checkpoint "$2" --resume --out "$t/resumed.h5" || ! wait "$job"; then
    die "$4: resume: $(cat "$t/err")"
  elif h5diff "$3" "$t/resumed.h5" >/dev/null; then
    echo "ok: $4: resumed == uninterrupted"
  else
    die "$4: resumed weights differ: $(h5diff "$3" "$t/resumed.h5" | head -2)"
  fi
}

start 1 "${common[@]}" --out "$t/ref1.h5" --metrics "$t/ref1.jsonl"
wait "$job" || die "reference, 1 rank: $(cat "$t/err")"
start 2 "${common[@]}" --out "$t/ref2.h5"
wait "$job" || die "reference, 2 ranks: $(cat "$t/err")"

# drill NP TARGET SIGNAL: after the first periodic checkpoint, signal TARGET (rank0, rank1, all,
# or mpirun); the job stops with the checkpoint written
drill() {
  local np=$1 target=$2 sig=$3
  ck="$t/ck_${np}_${target}_$sig.h5"
  start "$np" "${common[@]}" --checkpoint "$ck" --checkpoint-every 3
  wait_for test -f "$ck" || die "np $np: no periodic checkpoint"
  case $target in
    process | mpirun) kill -"$sig" "$job" ;;
    rank0 | rank1) kill -"$sig" "$(pid_of_rank "${target#rank}")" ;;
    all) kill -"$sig" "$(pid_of_rank 0)" "$(pid_of_rank 1)" ;;
  esac
  wait "$job"
  stopped $? "np $np, $sig to $target" "$ck"
}
drill 1 process TERM && resumed_equal 1 "$ck" "$t/ref1.h5" "np 1, SIGTERM"
drill 1 process INT
drill 2 rank1 TERM && resumed_equal 2 "$ck" "$t/ref2.h5" "np 2, SIGTERM to rank 1 only"
drill 2 rank0 USR1
drill 2 all INT
drill 2 mpirun USR1

# --checkpoint-minutes: a checkpoint inside the first epoch (whose own comes after step 15 and
# its validation), seen as soon as it exists; the run is then killed outright.
start 1 "${common[@]}" --checkpoint "$t/ckm.h5" --checkpoint-minutes 0.001
wait_for test -f "$t/ckm.h5" || die "--checkpoint-minutes: no checkpoint"
kill -KILL "$job"
wait "$job"
s=$(step_of "$t/ckm.h5")
[[ -n $s && $s -ge 1 && $s -lt 15 ]] && echo "ok: --checkpoint-minutes 0.001: checkpoint at step $s of epoch 1" \
  || die "--checkpoint-minutes: checkpoint at step '$s'"

# A second signal ends the process at once; the checkpoint on disk is an earlier one and loads.
# (Two different signals: a second SIGTERM sent before the first is delivered would merge with
# it.)
for np in 1 2; do
  ck="$t/ck2_$np.h5"
  start "$np" "${common[@]}" --checkpoint "$ck" --checkpoint-every 3
  wait_for test -f "$ck" || die "np $np: no periodic checkpoint"
  victim=$job
  [[ $np == 2 ]] && victim=$(pid_of_rank 1)
  kill -TERM "$victim"
  kill -INT "$victim"
  wait "$job"
  rc=$?
  if [[ $rc != 0 && $rc != 75 ]] && grep -q "second signal: exiting at once" "$t/err" \
    && [[ -n $(step_of "$ck") ]]; then
    echo "ok: np $np: second signal: exit $rc; checkpoint at step $(step_of "$ck")"
    [[ $np == 1 ]] && resumed_equal 1 "$ck" "$t/ref1.h5" "np 1, after a second signal"
  else
    die "np $np: second signal: exit $rc: $(cat "$t/err")"
  fi
done

# Before the first step: the metrics file is a FIFO nobody reads yet, so the job waits in its
# open() until the signal has come.
mkfifo "$t/fifo"
start 1 "${common[@]}" --checkpoint "$t/ck0.h5" --metrics "$t/fifo"
wait_for grep -q wait_for_partner "/proc/$job/wchan" || die "before the first step: never blocked"
kill -TERM "$job"
cat "$t/fifo" >/dev/null &
wait "$job"
rc=$?
if [[ $rc == 75 && ! -e "$t/ck0.h5" ]] && grep -q "stopped by SIGTERM before its first step; no checkpoint yet" "$t/err"; then
  echo "ok: before the first step: $(cat "$t/err")"
else
  die "before the first step: exit $rc: $(cat "$t/err")"
fi

# Without --checkpoint: the job stops as well, and says that nothing was saved.
SN_PROGRESS=1 start 1 "${loud[@]}"
wait_for grep -q 'epoch 1 \[' "$t/err" || die "no progress"
kill -TERM "$job"
wait "$job"
rc=$?
[[ $rc == 75 ]] && grep -q "nothing saved (no --checkpoint)" "$t/err" \
  && echo "ok: no --checkpoint: $(grep -o "shardnet: stopped.*" "$t/err")" || die "no --checkpoint: exit $rc: $(cat "$t/err")"

# During validation (1000 rows): the epoch's steps are done but it is not reported; the resumed
# run validates and reports it first, and both metrics lines equal the uninterrupted run's.
for attempt in 1 2 3; do
  rm -f "$t/ckv.h5" "$t/mv.jsonl"
  SN_PROGRESS=1 start 1 "${loud[@]}" --checkpoint "$t/ckv.h5" --metrics "$t/mv.jsonl"
  wait_for grep -q 'epoch 1 \[#*\] 100.0%' "$t/err" || die "no progress"
  kill -USR1 "$job"
  wait "$job"
  rc=$?
  grep -q "stopped by SIGUSR1 after step 15 of 30 (epoch 1)" "$t/err" && [[ ! -s "$t/mv.jsonl" ]] && break
  echo "note: attempt $attempt: the signal did not land in the validation: $(grep stopped "$t/err")"
done
if [[ $rc == 75 && ! -s "$t/mv.jsonl" && $(step_of "$t/ckv.h5") == 15 ]]; then
  echo "ok: during validation: $(grep stopped "$t/err")"
  start 1 "${common[@]}" --checkpoint "$t/ckv.h5" --resume --out "$t/rv.h5" --metrics "$t/mv.jsonl"
  wait "$job" || die "resume after validation: $(cat "$t/err")"
  $py - "$t/ref1.jsonl" "$t/mv.jsonl" <<'PY' && h5diff -q "$t/ref1.h5" "$t/rv.h5" \
    && echo "ok: during validation: resumed == uninterrupted (weights, both metrics lines)" \
    || die "during validation: resumed run differs"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
keys = ["epoch", "step", "train_loss", "train_acc", "train_top5", "val_loss", "val_acc", "val_top5", "lr"]
assert [[r[k] for k in keys] for r in a] == [[r[k] for k in keys] for r in b], (a, b)
PY
else
  die "during validation: exit $rc, metrics '$(cat "$t/mv.jsonl")': $(cat "$t/err")"
fi
exit $fail
