#!/usr/bin/env bash
# The whole suite: vet, unit and integration tests (real Unbound, real
# servers on loopback). Under CI=true a skipped test is a failure: CI runs
# as root and must run everything.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache
log=.cache/test.log
go vet ./... || exit 1
go test -race -count=1 -timeout 20m -v ./... >"$log" 2>&1
status=$?
# Let's Encrypt's own VA as the oracle for http01 (a separate Go 1.27 module),
# after the main suite so no universe holds the ports it needs.
if [ "$status" -eq 0 ]; then
  bash scripts/boulderdiff.sh -v >>"$log" 2>&1
  status=$?
fi
# Package lines, and every failure with what it logged.
grep -E '^(ok|FAIL|panic:|\?)\s' "$log"
if [ "$status" -ne 0 ]; then
  # Each failure with the lines it logged (indented below it).
  awk '/^[[:space:]]*--- FAIL/ {p=1; print; next} p && /^[[:space:]]{4,}/ {print; next} {p=0}' "$log" | head -400
  echo "make test: FAILED (full log: $log)"
  exit "$status"
fi
if [ "${CI:-}" = "true" ] && grep -qE -- '^\s*--- SKIP' "$log"; then
  echo "make test: tests were skipped under CI=true (CI runs as root and must run them):"
  grep -E -A3 -- '^\s*--- SKIP' "$log"
  exit 1
fi
passed=$(grep -cE -- '^\s*--- PASS' "$log")
skipped=$(grep -cE -- '^\s*--- SKIP' "$log")
echo "tests: $passed passed, 0 failed, $skipped skipped"
