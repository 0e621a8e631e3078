#!/usr/bin/env bash
# convert_weights_test.sh - jobs/convert_torch_weights.py end to end: a random torchvision
# resnet18 .pth (with non-trivial BN statistics and biases, so that a swapped or transposed
# tensor shows) -> shardnet HDF5 -> checked with h5py, `shardnet summary` and `shardnet infer`
# logits against PyTorch (--check). Then the failure paths: wrong architecture, existing output.
# Usage: bash tests/jobs/convert_weights_test.sh path/to/shardnet
# Skips (exit 0) when /usr/bin/python3 has no torch, torchvision or h5py.
set -euo pipefail

shardnet="$(realpath "${1:?usage: $0 path/to/shardnet}")"
root="${SN_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
py=/usr/bin/python3
conv="$root/jobs/convert_torch_weights.py"

if ! "$py" -c 'import torch, torchvision, h5py' 2>/dev/null; then
  echo "SKIP: $py lacks torch, torchvision or h5py; convert_torch_weights.py not tested"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# A random resnet18 whose BN statistics, gammas, betas and fc bias are not the init values,
# saved as .pth; then the converter's command line runs in the same interpreter (one torch
# import instead of two keeps the test fast): convert, read back with h5py, parameter count vs
# `shardnet summary`, `shardnet infer` logits vs PyTorch (--check).
cat >"$tmp/make_and_convert.py" <<'EOF'
import runpy, sys, torch, torchvision
pth, conv, h5, shardnet = sys.argv[1:5]
torch.manual_seed(1)
m = torchvision.models.resnet18(weights=None)
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.running_mean.uniform_(-0.2, 0.2)
        mod.running_var.uniform_(0.5, 2.0)
        mod.weight.data.uniform_(0.5, 1.5)
        mod.bias.data.uniform_(-0.1, 0.1)
torch.nn.init.uniform_(m.fc.bias, -0.5, 0.5)
torch.save(m.state_dict(), pth)
sys.argv = [conv, "--pth", pth, "--out", h5, "--check", "--shardnet", shardnet]
runpy.run_path(conv, run_name="__main__")
EOF
out="$("$py" "$tmp/make_and_convert.py" "$tmp/r18.pth" "$conv" "$tmp/r18.h5" "$shardnet" 2>&1)" ||
  fail "converter --check: $out"
echo "$out"
grep -q "parameters (match)" <<<"$out" || fail "no summary comparison in: $out"
has_infer=0
if "$shardnet" infer --help >/dev/null 2>&1; then
  has_infer=1
  grep -q "infer logits" <<<"$out" || fail "infer exists but the logits were not compared"
fi

# The file loads only into its own architecture (exit 3: input error).
if ((has_infer)); then
  "$py" - "$tmp/img.h5" <<'EOF'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    f["images"] = np.zeros((1, 32, 32, 3), np.uint8)
EOF
  set +e
  msg="$("$shardnet" infer --arch resnet34 --weights "$tmp/r18.h5" --data "$tmp/img.h5" \
    --out "$tmp/o.h5" --quiet 2>&1)"
  rc=$?
  set -e
  [[ $rc -eq 3 ]] || fail "resnet18 weights into resnet34: exit $rc, expected 3 ($msg)"
  grep -q "resnet18" <<<"$msg" || fail "message does not name the file's arch: $msg"
fi

# An existing output is not replaced without --force (exit 2).
set +e
"$py" "$conv" --pth "$tmp/r18.pth" --out "$tmp/r18.h5" --quiet 2>/dev/null
rc=$?
set -e
[[ $rc -eq 2 ]] || fail "existing output: exit $rc, expected 2"
echo "PASS"
