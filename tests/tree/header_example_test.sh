#!/usr/bin/env bash
# header_example_test.sh BUILD_DIR - the worked example at the top of src/shardnet.h compiles
# against the build tree's public include directory and libshardnet.so, runs, and prints the
# top 5 of each of its four images.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build=$(cd "${1:?usage: header_example_test.sh BUILD_DIR}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The example: the comment lines after "Example:" that are indented as code (" *   ").
awk '/^ \* Example:/ {on = 1; next} on && /^ \*\// {exit} on && /^ \*   / {sub(/^ \*   /, ""); print}
     on && /^ \*$/ {print ""}' "$here/src/shardnet.h" >"$tmp/example.c"
grep -q 'int main' "$tmp/example.c" || { echo "header_example: no example found"; exit 1; }
cc -std=c11 -Wall -Wextra -Werror -I"$build/include" "$tmp/example.c" -L"$build" -lshardnet \
  -Wl,-rpath,"$build" -o "$tmp/example"
"$tmp/example" >"$tmp/out"
lines=$(grep -cE '^image [0-3]: class [0-9]+ p [01]\.[0-9]{4}$' "$tmp/out")
[[ $lines == 20 ]] || { echo "header_example: expected 20 top-5 lines, got:"; cat "$tmp/out"; exit 1; }
echo "header_example: compiled and ran ($lines lines)"
