#!/usr/bin/env bash
# cli_help_test.sh - every subcommand has --help with examples; unknown flags and bad values are
# rejected with a message naming them and exit code 2; --version works.
set -u
sn="$1"
fail=0
check() { # description, expected exit, grep pattern (on stdout+stderr), command...
  local what="$1" want="$2" pat="$3"; shift 3
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [[ $rc -ne $want ]] || ! grep -qE -- "$pat" <<<"$out"; then
    echo "FAIL: $what: exit $rc (want $want), output: $out"; fail=1
  else
    echo "ok: $what"
  fi
}
check "version" 0 "^shardnet [0-9]+\.[0-9]+" "$sn" --version
check "top-level help" 0 "commands:" "$sn" --help
check "no command" 2 "usage" "$sn"
check "unknown command" 2 "unknown command 'frobnicate'" "$sn" frobnicate
for c in summary infer train convert bench; do
  check "$c --help" 0 "examples:" "$sn" "$c" --help
  check "$c unknown flag" 2 "unknown option '--bogus-flag'" "$sn" "$c" $([[ $c == convert ]] && echo idx) --bogus-flag
done
check "summary bad arch" 2 "unknown architecture 'resnet51'" "$sn" summary --arch resnet51
check "summary bad input" 2 "option --input: '224x224' is not HxWxC" "$sn" summary --arch resnet50 --input 224x224
check "summary pooling without no-top" 2 "--pooling needs --no-top" "$sn" summary --arch resnet50 --pooling avg
check "summary bad pooling" 2 "option --pooling: 'mean'" "$sn" summary --arch resnet50 --no-top --pooling mean
check "train bad batch" 2 "option --batch: 'abc'" "$sn" train --arch lenet --data x.h5 --batch abc
check "train negative lr" 2 "option --lr: '-1'" "$sn" train --arch lenet --data x.h5 --lr -1
check "train missing data" 2 "--data is required" "$sn" train --arch lenet
check "train bad schedule" 2 "option --schedule: 'linear'" "$sn" train --arch lenet --data x.h5 --schedule linear
check "infer missing out" 2 "--data and --out are required" "$sn" infer --arch lenet --data x.h5
check "infer bad top-k" 2 "option --top-k: '-3'" "$sn" infer --arch lenet --data x.h5 --out y.h5 --top-k -3
check "infer bad features dtype" 2 "option --features-dtype: 'f64'" "$sn" infer --arch lenet --data x.h5 --out y.h5 --features-dtype f64
check "convert bad kind" 2 "idx, folder or list" "$sn" convert tarball --out x.h5
check "convert bad size" 2 "option --size: '224'" "$sn" convert folder --root . --out x.h5 --size 224
check "bench bad batch" 2 "option --batch: '0'" "$sn" bench --arch lenet --batch 0
check "bench profile table" 0 "^conv2d +conv +[a-z0-9]+ +[0-9.]+ +[0-9.]+%" \
  env SN_PROFILE=1 "$sn" bench --arch lenet --batch 2 --reps 1 --min-time 0
check "bench profile title" 0 "^shardnet profile: lenet, [0-9]+ forward passes" \
  env SN_PROFILE=1 "$sn" bench --arch lenet --batch 2 --reps 1 --min-time 0
check "summary counts" 0 "Total params: 25,636,712" "$sn" summary --arch keras_resnet50
# How idle OpenMP threads wait (jobs/main.c): bounded spinning only for a sole rank on the
# engine's own AVX-512 kernels; passive under mpirun with several local ranks; the user's choice
# untouched. The bench line reports what the restarted process got.
flags=$(grep -m1 '^flags' /proc/cpuinfo)
own=1
for f in avx512f avx512bw avx512vl avx512dq fma; do grep -qw "$f" <<<"$flags" || own=0; done
spin=$([[ $own == 1 ]] && echo 10000 || echo default)
wait_check() { # description, expected policy, expected spin count, env settings...
  local what="$1" pol="$2" sc="$3"; shift 3
  check "wait policy: $what" 0 "\"omp_wait_policy\": \"$pol\", \"gomp_spincount\": \"$sc\"" \
    env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u SN_NO_REEXEC -u OMPI_COMM_WORLD_LOCAL_SIZE \
    -u MPI_LOCALNRANKS -u SLURM_STEP_TASKS_PER_NODE -u SN_NO_AVX512 "$@" "$sn" bench --arch lenet --batch 2 --reps 1 --min-time 0
}
wait_check "sole rank" passive "$spin"
wait_check "2 local ranks" passive default OMPI_COMM_WORLD_LOCAL_SIZE=2
wait_check "srun, 2 tasks per node" passive default "SLURM_STEP_TASKS_PER_NODE=2(x3)"
wait_check "portable kernels" passive default SN_NO_AVX512=1
wait_check "user's policy" active default OMP_WAIT_POLICY=active
wait_check "user's spin count" default 5 GOMP_SPINCOUNT=5
exit $fail
