#!/usr/bin/env bash
# install_test.sh BUILD_DIR - cmake/ShardnetInstall.cmake: `cmake --install` into a temporary
# prefix puts every file where docs/library.md says; a C program builds and runs against the
# installed tree with pkg-config (the header's own example) and with find_package(shardnet)
# (shardnet::shardnet), needing no MPI or HDF5 header; the installed Python package loads the
# installed library and finds the installed program and label files; an installed job script
# runs the installed program.
set -uo pipefail
# Pipelines into grep use grep -c, not grep -q: grep -q exits at the first match, and a producer
# still writing (ldd) then dies of SIGPIPE, which fails the pipeline under pipefail.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build=$(cd "${1:?usage: install_test.sh BUILD_DIR}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
die() { echo "FAIL: $*"; fail=1; }
ok() { echo "ok: $*"; }
prefix="$tmp/prefix"
cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
libdir=$(cache CMAKE_INSTALL_LIBDIR)
pydir=$(cache SN_PYTHON_DIR)
version=$(sed -n 's/^#define SN_VERSION "\(.*\)"$/\1/p' "$here/src/shardnet.h")
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; exit 1; }

# ---------------------------------------------------------------- layout
for f in "$libdir/libshardnet.so.$version" "$libdir/libshardnet.so.0" "$libdir/libshardnet.so" \
  include/shardnet.h "$libdir/pkgconfig/shardnet.pc" "$libdir/cmake/shardnet/shardnetConfig.cmake" \
  "$libdir/cmake/shardnet/shardnetConfigVersion.cmake" "$libdir/cmake/shardnet/shardnetTargets.cmake" \
  bin/shardnet share/shardnet/data/imagenet_class_index.json share/shardnet/data/imagenet_labels.txt \
  share/shardnet/data/imagenet_labels_keras.txt share/shardnet/data/imagenet_wnids.txt \
  share/shardnet/convert_torch_weights.py share/shardnet/mpirun/infer_pretrained.sh \
  share/shardnet/slurm/infer_pretrained.sbatch share/doc/shardnet/python.md \
  "$pydir/shardnet/__init__.py" "$pydir/shardnet/_paths.py" "$pydir/shardnet/applications/resnet.py"; do
  [[ -e "$prefix/$f" ]] || die "not installed: $f"
done
for f in bin/shardnet share/shardnet/convert_torch_weights.py share/shardnet/mpirun/extract_features.sh; do
  [[ -x "$prefix/$f" ]] || die "not executable: $f"
done
cmp -s "$here/src/shardnet.h" "$prefix/include/shardnet.h" || die "installed header differs"
soname=$(readelf -d "$prefix/$libdir/libshardnet.so.$version" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[[ $soname == libshardnet.so.0 ]] || die "soname '$soname'"
[[ $("$prefix/bin/shardnet" --version) == "shardnet $version" ]] || die "installed shardnet --version"
[[ $fail == 0 ]] && ok "layout: library (soname $soname), header, pkg-config, CMake package, program, data, scripts, docs, Python package"

# a program that uses the data directory and the version call; DATA is given by the build
cat >"$tmp/app.c" <<'C'
#include <stdio.h>
#include <string.h>
#include "shardnet.h"
int main(void) {
  sn_model_config cfg;
  sn_model_config_init(&cfg, "resnet20");
  cfg.classes = 7;
  sn_net *net;
  if (sn_net_create(&cfg, 1, &net) != SN_OK) return fprintf(stderr, "%s\n", sn_last_error()), 1;
  FILE *f = fopen(DATA "/imagenet_labels.txt", "r");
  char first[64] = "";
  if (!f || !fgets(first, sizeof first, f)) return fprintf(stderr, "no label file\n"), 1;
  fclose(f);
  first[strcspn(first, "\n")] = 0;
  printf("%s %s %d %s\n", sn_version(), SN_VERSION, sn_net_classes(net), first);
  sn_net_destroy(net);
  return 0;
}
C
want="$version $version 7 tench"

# ---------------------------------------------------------------- pkg-config
export PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig"
[[ $(pkg-config --modversion shardnet) == "$version" ]] || die "pkg-config --modversion"
cflags=$(pkg-config --cflags shardnet | xargs)
[[ $cflags == "-I$prefix/include" ]] || die "pkg-config --cflags is '$cflags' (only the header's directory expected)"
pkgdata=$(pkg-config --variable=pkgdatadir shardnet)
[[ -f "$pkgdata/data/imagenet_class_index.json" ]] || die "pkgdatadir $pkgdata has no data/"
pkg-config --static --libs shardnet | grep -q -- "-lhdf5_openmpi" || die "pkg-config --static has no private libraries"
# the worked example of the header, built as its comment says, and the app above
awk '/^ \* Example:/ {on = 1; next} on && /^ \*\// {exit} on && /^ \*   / {sub(/^ \*   /, ""); print}
     on && /^ \*$/ {print ""}' "$prefix/include/shardnet.h" >"$tmp/example.c"
if cc -std=c11 -Wall -Werror "$tmp/example.c" $(pkg-config --cflags --libs shardnet) -o "$tmp/example" 2>"$tmp/cc.log" &&
   cc -std=c11 -Wall -Werror -DDATA="\"$pkgdata/data\"" "$tmp/app.c" $(pkg-config --cflags --libs shardnet) \
     -o "$tmp/app_pc" 2>>"$tmp/cc.log"; then
  lines=$(LD_LIBRARY_PATH="$prefix/$libdir" "$tmp/example" | grep -cE '^image [0-3]: class [0-9]+ p [01]\.[0-9]{4}$')
  [[ $lines == 20 ]] || die "pkg-config: the header's example printed $lines top-5 lines, not 20"
  got=$(LD_LIBRARY_PATH="$prefix/$libdir" "$tmp/app_pc") || die "pkg-config: app failed"
  [[ $got == "$want" ]] && ok "pkg-config: the header's example and an app build and run ($got)" \
    || die "pkg-config: app printed '$got', expected '$want'"
  LD_LIBRARY_PATH="$prefix/$libdir" ldd "$tmp/app_pc" | grep -c "$prefix/$libdir/libshardnet.so.0" >/dev/null \
    || die "pkg-config: the app did not load the installed library"
else
  die "pkg-config build failed: $(cat "$tmp/cc.log")"
fi

# docs/library.md's classify.c on a photo, against the installed tree with pkg-config
awk '/^```c$/ {on = 1; next} on && /^```$/ {exit} on {print}' "$here/docs/library.md" >"$tmp/classify.c"
/usr/bin/python3 -c 'import sys, numpy as np; from PIL import Image
a = np.clip(np.cumsum(np.random.RandomState(0).randint(-6, 7, (180, 240, 3)), axis=1) + 120, 0, 255)
Image.fromarray(a.astype(np.uint8)).save(sys.argv[1], quality=90)' "$tmp/photo.jpg" 2>/dev/null
if [[ ! -f "$tmp/photo.jpg" ]]; then
  echo "note: no Pillow (python3-pil) to make a JPEG: classify.c not run"
elif cc -std=c11 -Wall -Werror "$tmp/classify.c" $(pkg-config --cflags --libs shardnet) -o "$tmp/classify" 2>"$tmp/cc2.log"; then
  out=$(LD_LIBRARY_PATH="$prefix/$libdir" "$tmp/classify" "$tmp/photo.jpg" 2>&1)
  [[ $(grep -cE '^class [0-9]+ p [01]\.[0-9]{4}$' <<<"$out") == 5 ]] \
    && ok "docs/library.md's classify.c classifies a JPEG" || die "classify.c printed: $out"
  out=$(LD_LIBRARY_PATH="$prefix/$libdir" "$tmp/classify" "$tmp/missing.jpg" 2>&1)
  [[ $? != 0 && $out == *"$tmp/missing.jpg"* ]] || die "classify.c on a missing file: $out"
else
  die "classify.c does not build: $(cat "$tmp/cc2.log")"
fi

# ---------------------------------------------------------------- find_package
mkdir -p "$tmp/consumer"
cp "$tmp/app.c" "$tmp/consumer/"
cat >"$tmp/consumer/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(consumer C)
find_package(shardnet 0.1 CONFIG REQUIRED)
add_executable(app app.c)
target_link_libraries(app PRIVATE shardnet::shardnet)
target_compile_definitions(app PRIVATE DATA="${shardnet_DATA_DIR}")
if(NOT EXISTS "${shardnet_EXECUTABLE}")
  message(FATAL_ERROR "shardnet_EXECUTABLE ${shardnet_EXECUTABLE} missing")
endif()
CM
if cmake -S "$tmp/consumer" -B "$tmp/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/cm.log" 2>&1 &&
   cmake --build "$tmp/consumer/build" >>"$tmp/cm.log" 2>&1; then
  got=$("$tmp/consumer/build/app") || die "find_package: app failed"
  [[ $got == "$want" ]] && ok "find_package: shardnet::shardnet builds and runs an app ($got)" \
    || die "find_package: app printed '$got', expected '$want'"
  ldd "$tmp/consumer/build/app" | grep -c "$prefix/$libdir/libshardnet.so.0" >/dev/null \
    || die "find_package: the app did not load the installed library"
  # no MPI or HDF5 include directory reaches the consumer
  grep -rqE "hdf5|openmpi" "$tmp/consumer/build/CMakeFiles/app.dir/flags.make" \
    && die "find_package: dependency include directories leak: $(cat "$tmp/consumer/build/CMakeFiles/app.dir/flags.make")"
else
  die "find_package build failed: $(tail -20 "$tmp/cm.log")"
fi
# a version the package does not satisfy is refused
sed 's/find_package(shardnet 0.1 /find_package(shardnet 9.0 /' "$tmp/consumer/CMakeLists.txt" >"$tmp/cm9.txt"
mkdir -p "$tmp/consumer9" && cp "$tmp/cm9.txt" "$tmp/consumer9/CMakeLists.txt" && cp "$tmp/app.c" "$tmp/consumer9/"
cmake -S "$tmp/consumer9" -B "$tmp/consumer9/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1 \
  && die "find_package(shardnet 9.0) accepted version $version"

# ---------------------------------------------------------------- Python
out=$(cd "$tmp" && env -u SHARDNET_LIBRARY -u SHARDNET_PROGRAM PYTHONPATH="$prefix/$pydir" /usr/bin/python3 -c '
import numpy as np, shardnet
from shardnet.applications import resnet20, decode_predictions
m = resnet20(input_shape=(28, 28, 1), base_width=8)
p = m.predict(np.zeros((2, 28, 28, 1), np.float32))
print(shardnet.__file__)
print(shardnet.__library__)
print(shardnet.jobs.program())
print(decode_predictions(np.eye(1000, dtype=np.float32)[:1], top=1)[0][0][1], p.shape)
' 2>&1) || die "installed Python package: $out"
mapfile -t py <<<"$out"
[[ ${py[0]} == "$prefix/$pydir/shardnet/__init__.py" ]] || die "Python imported ${py[0]}"
[[ ${py[1]} == "$prefix/$libdir/libshardnet.so.0" ]] || die "Python loaded ${py[1]}"
[[ ${py[2]} == "$prefix/bin/shardnet" ]] || die "Python runs ${py[2]}"
[[ ${py[3]} == "tench (2, 10)" ]] || die "Python: ${py[3]}"
[[ $fail == 0 ]] && ok "Python: the installed package loads the installed library, program and labels"

# ---------------------------------------------------------------- an installed job script
/usr/bin/python3 - "$tmp/d.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f["images"] = np.random.RandomState(0).randint(0, 256, (6, 28, 28, 1)).astype(np.uint8)
    f["labels"] = np.arange(6, dtype=np.int32)
PY
"$prefix/bin/shardnet" train --arch lenet --data "$tmp/d.h5" --classes 10 --steps 1 --batch 6 \
  --out "$tmp/w.h5" --quiet 2>"$tmp/train.log" || true
if [[ -f "$tmp/w.h5" ]]; then
  if (cd "$tmp" && env -u SHARDNET ARCH=lenet MODEL_ARGS="--classes 10" WEIGHTS="$tmp/w.h5" \
      DATA="$tmp/d.h5" OUT_DIR="$tmp/job" RANKS=1 THREADS=1 PRINT=0 \
      "$prefix/share/shardnet/mpirun/infer_pretrained.sh" >"$tmp/job.log" 2>&1); then
    h5dump -a /complete "$tmp/job/predictions.h5" 2>/dev/null | grep -q "(0): 1" \
      && ok "the installed infer_pretrained.sh ran the installed program" \
      || die "installed job script: no complete output: $(tail -5 "$tmp/job.log")"
  else
    die "installed job script failed: $(tail -5 "$tmp/job.log")"
  fi
else
  die "installed shardnet train (for the job script's weights): $(cat "$tmp/train.log")"
fi
exit $fail
