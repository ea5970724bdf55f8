#!/usr/bin/env bash
# Runs a command that must FAIL (non-zero exit) within SECONDS; passes only then.
#   expect_fast_failure.sh SECONDS command...
limit="$1"; shift
start=$(date +%s)
timeout --kill-after=5 "$((limit + 30))" "$@"
rc=$?
took=$(( $(date +%s) - start ))
echo "expect_fast_failure: exit code $rc after ${took} s (limit ${limit} s)"
if [ "$rc" -eq 0 ]; then echo "FAILED: the job succeeded"; exit 1; fi
if [ "$took" -gt "$limit" ]; then echo "FAILED: took longer than ${limit} s"; exit 1; fi
exit 0
