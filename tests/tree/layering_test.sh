#!/usr/bin/env bash
# layering_test.sh - the dependency rules of docs/architecture.md ("Rules that keep the layers
# apart"): jobs/ -> io/, mpi/ -> src/; only io/ includes hdf5.h, only mpi/ (and jobs/) mpi.h;
# private headers stay in their directory. Prints every violation; fails if there is one.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
fail=0
bad() { echo "layering: $*"; fail=1; }
# $1 = rule, then grep -E pattern and the files to search.
check() {
  local rule=$1 pat=$2
  shift 2
  local hits
  hits=$(grep -HnE "$pat" "$@" 2>/dev/null)
  [[ -z "$hits" ]] || bad "$rule"$'\n'"$hits"
}
src_files=$(find src -name '*.[ch]')
io_files=$(find io -name '*.[ch]')
mpi_files=$(find mpi -name '*.[ch]')
jobs_files=$(find jobs -maxdepth 1 -name '*.[ch]')
# shellcheck disable=SC2086
{
  check "src/ includes neither mpi.h nor hdf5.h" '#include <(mpi|hdf5)\.h>' $src_files
  check "only io/ includes hdf5.h" '#include <hdf5\.h>' $mpi_files $jobs_files
  check "io/ does not include mpi.h (parallel hdf5.h brings it)" '#include <mpi\.h>' $io_files
  check "src/ includes no header of io/, mpi/ or jobs/" \
    '#include "[^"]*(io_impl|h5util|image|io_limits|md5|comm_mpi|mpi_job|cli)\.h"' $src_files
  check "io/ takes from src/ only the public header" \
    '#include "[^"]*(net_impl|kernels|comm_impl|augment_impl|conv_[a-z_]*|dense_body)\.h"' $io_files
  check "mpi/ takes from src/ only shardnet.h and comm_impl.h" \
    '#include "[^"]*(net_impl|kernels|augment_impl|conv_[a-z_]*|dense_body|io_impl|h5util|image|io_limits|md5)\.h"' \
    $mpi_files
  check "jobs/ includes only the public header, mpi_job.h and its own headers" \
    '#include "[^"]*(/|net_impl|kernels|comm_impl|comm_mpi|augment_impl|conv_[a-z_]*|dense_body|io_impl|h5util|image|io_limits|md5)[^"]*"' \
    $jobs_files
  check "the algorithm headers of src/kernels/ are private to src/kernels/" \
    '#include "[^"]*(conv_[a-z_]*|dense_body)\.h"' $(find src -maxdepth 1 -name '*.[ch]') src/layers/*.c
  # The convolution files form a tree under the dispatcher (conv.c): an algorithm file includes
  # no other algorithm's header, and the leaves (tiles, GEMM block) include none at all.
  for alg in direct gemm wino generic; do
    others=$(printf '%s\n' direct gemm wino generic | grep -vx "$alg" | paste -sd'|')
    check "src/kernels/conv_$alg.c calls no other convolution algorithm" \
      "#include \"conv_($others)\\.h\"" src/kernels/conv_$alg.c
  done
  check "the convolution leaves call no algorithm" '#include "conv_(direct|gemm|wino|generic)\.h"' \
    src/kernels/conv_tiles.c src/kernels/conv_gemm_block.c src/kernels/conv_tiles.h \
    src/kernels/conv_gemm_block.h src/kernels/conv_gemm_block_body.h
  check "no include of io/, mpi/ or jobs/ reaches into another directory by path" \
    '#include "[^"]*\.\./' $io_files $mpi_files $jobs_files
}
# The libraries' objects: no MPI or HDF5 symbol is referenced by the engine's objects.
if [[ -n "${1:-}" && -d "$1/CMakeFiles/sn_engine.dir" ]]; then
  syms=$(find "$1/CMakeFiles/sn_engine.dir" -name '*.o' -print0 | xargs -0 nm -u 2>/dev/null |
         grep -E ' (MPI_|H5|ompi_)' | sort -u)
  [[ -z "$syms" ]] || bad "src/ objects reference MPI or HDF5 symbols:"$'\n'"$syms"
fi
[[ $fail == 0 ]] && echo "layering: all rules hold"
exit $fail
