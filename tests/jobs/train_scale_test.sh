#!/usr/bin/env bash
# train_scale_test.sh - `train --bn-group K` and `--allreduce` at 4 ranks on Fashion-MNIST rows:
# groups of 4 are sync BN and groups of 1 local BN, bit for bit; groups of 2 differ from both;
# a run repeats bit for bit (the ring all-reduce is deterministic for a rank count); the MPI
# library's all-reduce is used when asked for, or when Open MPI's MCA parameter chooses an
# algorithm; bad group sizes and algorithm names are usage errors.
set -u
sn="$1"
mpirun="mpirun --allow-run-as-root --oversubscribe -q"
t=$(mktemp -d /tmp/snscale.XXXXXX)
trap 'rm -rf "$t"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }
fm=/usr/share/datasets/fashion-mnist
"$sn" convert idx --images $fm/t10k-images-idx3-ubyte.gz --labels $fm/t10k-labels-idx1-ubyte.gz \
  --out "$t/test.h5" --fashion --quiet || { echo "FAIL: convert"; exit 1; }
common=(--arch lenet_bn --data "$t/test.h5" --batch 32 --lr 0.05 --steps 4 --quiet --threads 1
  --bucket-mb 0.01)
loud=()
for a in "${common[@]}"; do [[ $a == --quiet ]] || loud+=("$a"); done
run4() { # name, options...
  local name=$1
  shift
  $mpirun -np 4 "$sn" train "${common[@]}" --out "$t/$name.h5" --metrics "$t/$name.jsonl" "$@" \
    >"$t/$name.log" 2>&1 || die "$name: exit $?: $(tail -2 "$t/$name.log")"
}
run4 sync --bn sync
run4 group4 --bn-group 4
run4 local --bn local
run4 group1 --bn-group 1
run4 group2 --bn-group 2
run4 group2b --bn-group 2
same() { h5diff "$t/$1.h5" "$t/$2.h5" >/dev/null; }
same sync group4 && echo "ok: --bn-group 4 of 4 ranks == --bn sync (bit for bit)" ||
  die "--bn-group 4 differs from --bn sync"
same local group1 && echo "ok: --bn-group 1 == --bn local (bit for bit)" ||
  die "--bn-group 1 differs from --bn local"
same group2 group2b && echo "ok: --bn-group 2 repeats bit for bit" || die "--bn-group 2 not repeatable"
! same group2 sync && ! same group2 local && echo "ok: --bn-group 2 differs from sync and local" ||
  die "--bn-group 2 equals sync or local BN"
/usr/bin/python3 - "$t" <<'PY' || die "training losses"
import json, sys
loss = {n: json.loads(open(f"{sys.argv[1]}/{n}.jsonl").readline())["train_loss"]
        for n in ("sync", "group2", "local")}
assert len(set(loss.values())) == 3, loss
print("ok: train_loss sync %.6f, groups of 2 %.6f, local %.6f" % (loss["sync"], loss["group2"], loss["local"]))
PY

# the MPI library's all-reduce: by option, or by Open MPI's MCA parameter (with a note)
run4 mpi --allreduce mpi
$mpirun -np 4 --mca coll_libnbc_iallreduce_algorithm 1 "$sn" train "${loud[@]}" \
  --out "$t/mca.h5" >"$t/mca.log" 2>&1 || die "train with the MCA parameter: $(tail -2 "$t/mca.log")"
grep -q "gradient all-reduce by MPI_Iallreduce, as Open MPI's coll_libnbc_iallreduce_algorithm asks" \
  "$t/mca.log" && echo "ok: the MCA parameter is respected: $(grep -m1 'all-reduce' "$t/mca.log")" ||
  die "no note for the MCA parameter: $(head -3 "$t/mca.log")"
$mpirun -np 4 --mca coll_libnbc_iallreduce_algorithm 1 "$sn" train "${loud[@]}" \
  --allreduce ring --out "$t/mca_ring.h5" >"$t/mca_ring.log" 2>&1 || die "--allreduce ring with the MCA parameter"
! grep -q "MPI_Iallreduce" "$t/mca_ring.log" && same group4 mca_ring &&
  echo "ok: --allreduce ring overrides the MCA parameter" || die "--allreduce ring ignored"

# usage errors: exit 2 and one line naming the problem
expect_usage() { # pattern, np, options...
  local pat=$1 np=$2
  shift 2
  out=$($mpirun -np "$np" "$sn" train "${common[@]}" "$@" 2>&1)
  rc=$?
  [[ $rc -eq 2 ]] && grep -q -- "$pat" <<<"$out" && echo "ok: exit 2: $(grep -m1 -- "$pat" <<<"$out")" ||
    die "expected exit 2 with '$pat', got $rc: $(tail -2 <<<"$out")"
}
expect_usage "--bn-group 3 does not divide the 4 ranks" 4 --bn-group 3
expect_usage "--bn local and --bn-group 2 contradict each other" 1 --bn local --bn-group 2
expect_usage "'0' is not a group size" 1 --bn-group 0
expect_usage "unknown all-reduce algorithm 'tree' (auto, ring, mpi)" 1 --allreduce tree
exit $fail
