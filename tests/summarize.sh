#!/usr/bin/env bash
# Prints one closing line, "N passed, N failed, N skipped", over the unit
# test log (go test -v) and the TAP files the bats suites wrote.
set -euo pipefail
unit_log=$1
shift
passed=0 failed=0 skipped=0
if [ -f "$unit_log" ]; then
	# Top-level tests only: subtests are indented.
	passed=$(grep -c '^--- PASS' "$unit_log" || true)
	failed=$(grep -c '^--- FAIL' "$unit_log" || true)
	skipped=$(grep -c '^--- SKIP' "$unit_log" || true)
fi
for tap in "$@"; do
	[ -f "$tap" ] || continue
	s=$(grep -cE '^ok .*# skip' "$tap" || true)
	p=$(grep -cE '^ok ' "$tap" || true)
	f=$(grep -cE '^not ok ' "$tap" || true)
	passed=$((passed + p - s))
	skipped=$((skipped + s))
	failed=$((failed + f))
done
echo "tests: $passed passed, $failed failed, $skipped skipped"
