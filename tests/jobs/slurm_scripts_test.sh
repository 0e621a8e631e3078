#!/usr/bin/env bash
# slurm_scripts_test.sh - the time-limit path of jobs/slurm/train_imagenet_subset.sbatch without
# a Slurm cluster: the script runs under bash with the variables Slurm would set, `srun` is a
# stand-in that runs its command under mpirun (like srun, mpirun forwards SIGUSR1 to every
# rank) and `scontrol` one that records its arguments. SIGUSR1 to the script (what
# --signal=B:USR1@300 sends) must reach the training step through the script's trap: the ranks
# write the checkpoint and exit 75, the script requeues its own job id and exits 75; run again,
# it resumes from the checkpoint and completes the run.
set -u
sn="$1"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="$here/../../jobs/slurm/train_imagenet_subset.sbatch"
py=/usr/bin/python3
t=$(mktemp -d /tmp/snslurm.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }

# 3 classes x 20 PNG files of 40x40 in class folders (5 steps per epoch, 30 in all), written
# with the standard library alone
$py - "$t/images" <<'PY' || exit 1
import os, random, struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
rng = random.Random(0)
for c in range(3):
    os.makedirs(f"{sys.argv[1]}/c{c}")
    for i in range(20):
        rows = b"".join(b"\0" + bytes(rng.randrange(256) for _ in range(40 * 3)) for _ in range(40))
        png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 40, 40, 8, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
        open(f"{sys.argv[1]}/c{c}/{i}.png", "wb").write(png)
PY

mkdir "$t/bin"
cat >"$t/bin/srun" <<'SH'
#!/usr/bin/env bash
# srun stand-in: drop srun's --options, run the command on SLURM_NTASKS ranks under mpirun
while [[ $1 == --* ]]; do shift; done
exec env -u SLURM_JOB_ID mpirun --allow-run-as-root --oversubscribe -q -np "$SLURM_NTASKS" "$@"
SH
cat >"$t/bin/scontrol" <<SH
#!/usr/bin/env bash
echo "\$*" >>"$t/scontrol.log"
SH
chmod +x "$t/bin/srun" "$t/bin/scontrol"

# the batch script as Slurm would start it (job 4242, 2 tasks of 1 CPU); `env` execs bash, so
# $! is the script's own process
vars=(PATH="$t/bin:$PATH" SHARDNET="$sn" TRAIN_ROOT="$t/images" VAL_ROOT= OUT_DIR="$t/run"
  ARCH=resnet20 SIZE=32 EPOCHS=6 BATCH=12 WARMUP=0 CHECKPOINT_MINUTES=30 LAUNCHER=srun
  SLURM_JOB_ID=4242 SLURM_NTASKS=2 SLURM_NTASKS_PER_NODE=2 SLURM_CPUS_PER_TASK=1
  TRAIN_ARGS="--width 4")

env "${vars[@]}" bash "$script" >"$t/out" 2>&1 &
job=$!
# after the first epoch's line, SIGUSR1 to the script (not to the step)
for _ in $(seq 3000); do
  grep -q '^epoch 1:' "$t/out" 2>/dev/null && break
  sleep 0.02
done
kill -USR1 "$job"
wait "$job"
rc=$?
step=$(h5dump -a step "$t/run/checkpoint.h5" 2>/dev/null | sed -n 's/^ *(0): //p')
if [[ $rc == 75 && $(cat "$t/scontrol.log" 2>/dev/null) == "requeue 4242" ]] &&
  grep -q "^shardnet: stopped by SIGUSR1 after step $step of 30 (epoch [0-9]*); checkpoint" "$t/out" &&
  grep -q "time limit near: requeueing job 4242" "$t/out"; then
  echo "ok: SIGUSR1 to the batch script: checkpoint at step $step, exit 75, scontrol requeue 4242"
else
  die "time limit: exit $rc, checkpoint step '$step', scontrol '$(cat "$t/scontrol.log" 2>/dev/null)': $(cat "$t/out")"
fi

# the requeued job: the same script resumes and completes
env "${vars[@]}" bash "$script" >"$t/out" 2>&1
rc=$?
if [[ $rc == 0 ]] && grep -q "resuming from $t/run/checkpoint.h5 at step $step " "$t/out" &&
  grep -q '"epoch": 6, "step": 30,' "$t/run/metrics.jsonl" && [[ -f "$t/run/resnet20_final.h5" ]]; then
  echo "ok: requeued run resumed at step $step and completed"
else
  die "requeued run: exit $rc: $(cat "$t/out")"
fi
exit $fail
