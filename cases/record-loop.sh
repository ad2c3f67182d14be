#!/usr/bin/env bash
# The snapshot workflow, end to end, for every bundled scenario: a copy with every expectation
# removed (paths, addresses, conntrack entries, answered_by floors, replies) is recorded with
# `netpath record`, recorded again from scratch (the two must be byte-identical), recorded onto
# itself (nothing may change), then run RUNS times in a row under every backend it allows
# (`--backend all`); every run must pass. Needs root. Usage: cases/record-loop.sh [RUNS] [SCENARIO...]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
shift || true
cargo build -q -p netpath --bin netpath
netpath=$PWD/target/debug/netpath
work=$(mktemp -d /tmp/netpath-record-loop.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ $# -gt 0 ]; then
    files=(); for s in "$@"; do files+=("cases/scenarios/$s.toml"); done
else
    files=(cases/scenarios/*.toml)
fi

# Every expectation out: the tables of [[probe.path]], [[probe.addr]] and [[probe.conntrack]]
# up to the next table header, and the answered_by and replies keys.
strip() {
    awk '
        /^\[\[probe\.(path|addr|conntrack)\]\]/ { skip = 1; next }
        /^\[/ { skip = 0 }
        skip { next }
        /^(answered_by|replies) *=/ { next }
        { print }
    ' "$1"
}

total_pass=0 total_fail=0 broken=0
for f in "${files[@]}"; do
    name=$(basename "$f" .toml)
    bare=$work/$name.toml
    strip "$f" > "$bare"
    if ! "$netpath" record "$bare" -o "$work/$name.a.toml" > "$work/$name.record.log" 2>&1; then
        echo "$name: record failed:"; cat "$work/$name.record.log"; broken=$((broken + 1)); continue
    fi
    grep -h "warning" "$work/$name.record.log" || true
    "$netpath" record "$bare" -o "$work/$name.b.toml" > /dev/null 2>&1
    cp "$work/$name.a.toml" "$work/$name.c.toml"
    "$netpath" record "$work/$name.c.toml" > /dev/null 2>&1
    same_twice=yes; cmp -s "$work/$name.a.toml" "$work/$name.b.toml" || same_twice=NO
    same_onto=yes; cmp -s "$work/$name.a.toml" "$work/$name.c.toml" || same_onto=NO
    [ "$same_twice$same_onto" = yesyes ] || broken=$((broken + 1))
    pass=0 fail=0
    for i in $(seq "$runs"); do
        out=$("$netpath" run --backend all "$work/$name.a.toml" 2>&1) || true
        summary=$(tail -n 1 <<< "$out")
        p=${summary%% passed*}; rest=${summary#*passed, }; fl=${rest%% failed*}
        pass=$((pass + p)); fail=$((fail + fl))
        if [ "$fl" != 0 ]; then
            echo "$name run $i:"; grep -E '^(FAIL|ERROR)|✗' <<< "$out" | head -n 20
        fi
    done
    lines=$(wc -l < "$work/$name.a.toml")
    printf '%-40s %4d lines  twice identical: %-3s onto itself unchanged: %-3s  runs: %d passed, %d failed\n' \
        "$name" "$lines" "$same_twice" "$same_onto" "$pass" "$fail"
    total_pass=$((total_pass + pass)); total_fail=$((total_fail + fail))
done
echo "record-loop: $total_pass passed, $total_fail failed, $broken recordings not reproducible"
[ "$total_fail" = 0 ] && [ "$broken" = 0 ]
