#!/usr/bin/env bash
# format_test.sh - every C and C++ source of the repository is formatted as .clang-format says
# (clang-format --dry-run --Werror); prints the files that are not and how to fix them.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null; then
  echo "format_test: $cf not found (Debian: apt-get install clang-format; jobs/setup.sh installs it)"
  exit 1
fi
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp' 2>/dev/null || find src io mpi jobs tests -name '*.[ch]' -o -name '*.cpp')
bad=$("$cf" --dry-run --Werror "${files[@]}" 2>&1 | grep -oE '^[^: ]+\.(c|h|cpp):' | sort -u | tr -d ':')
if [[ -n "$bad" ]]; then
  echo "format_test: not formatted ($("$cf" --version)):"
  echo "$bad" | sed 's/^/  /'
  echo "fix: $cf -i <files>"
  exit 1
fi
echo "format_test: ${#files[@]} files formatted"
