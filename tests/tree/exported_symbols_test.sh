#!/usr/bin/env bash
# exported_symbols_test.sh BUILD_DIR - libshardnet.so exports exactly the functions that
# src/shardnet.h declares (SN_API): nothing private leaks, nothing declared is missing.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build=${1:?usage: exported_symbols_test.sh BUILD_DIR}
lib=$(ls "$build"/libshardnet.so.*.*.* 2>/dev/null | head -1)
[[ -n "$lib" ]] || { echo "exported_symbols: no libshardnet.so in $build"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^_' | sort -u >"$tmp/exported"
# Declarations: "SN_API <type> sn_name(" (the header's only way to declare a function).
grep -oE '^SN_API [^(]*\bsn_[a-z0-9_]+\(' "$here/src/shardnet.h" | grep -oE 'sn_[a-z0-9_]+\($' |
  tr -d '(' | sort -u >"$tmp/declared"
fail=0
extra=$(comm -23 "$tmp/exported" "$tmp/declared")
missing=$(comm -13 "$tmp/exported" "$tmp/declared")
if [[ -n "$extra" ]]; then
  echo "exported but not declared in shardnet.h (private symbols leaking):"
  echo "$extra" | sed 's/^/  /'
  fail=1
fi
if [[ -n "$missing" ]]; then
  echo "declared in shardnet.h but not exported (missing or not defined):"
  echo "$missing" | sed 's/^/  /'
  fail=1
fi
[[ $fail == 0 ]] && echo "exported_symbols: $(wc -l <"$tmp/declared") functions, all exported, nothing else"
exit $fail
