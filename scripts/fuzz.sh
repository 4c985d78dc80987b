#!/usr/bin/env bash
# Runs every Fuzz target in the module for the given time each.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-1m}
grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u | while read -r dir; do
  for f in $(grep -h '^func Fuzz' "$dir"/*_test.go | sed -E 's/func (Fuzz[A-Za-z0-9_]*).*/\1/'); do
    echo "fuzz: $dir $f for $t"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" "$dir"
  done
done
