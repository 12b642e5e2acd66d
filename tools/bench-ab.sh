#!/usr/bin/env bash
# bench-ab.sh compares the server's cost per request of two commits on this
# machine: it builds paymentd at BEFORE and at the working tree, runs
# `paymentd bench` with each in turn, A B A B A B, and prints the README's
# before/after table: server CPU µs per request (ratio to the echo baseline
# of the same run) per round, and create's p99 over echo's p99.
#
#   tools/bench-ab.sh 5daf95e [rounds] [bench flags…]
#   tools/bench-ab.sh 5daf95e 1 --preload 1000000 --scenarios echo,create,get,list
#
# Rounds default to 3; the default bench flags are --duration 5s --warmup 1s.
# The JSON of every run stays in $OUT (default: a new temporary directory).
set -euo pipefail

before=${1:?usage: tools/bench-ab.sh BEFORE-COMMIT [rounds] [bench flags…]}
rounds=${2:-3}
shift $(($# < 2 ? $# : 2))
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(--duration 5s --warmup 1s)
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"

tree=$out/before-tree
git worktree add -q --detach "$tree" "$before"
trap 'git worktree remove --force "$tree"' EXIT
(cd "$tree" && go build -o "$out/before" ./cmd/paymentd)
go build -o "$out/after" ./cmd/paymentd

for r in $(seq "$rounds"); do
	for side in before after; do
		echo "== round $r, $side: paymentd bench ${flags[*]}" >&2
		"$out/$side" bench "${flags[@]}" --json "$out/$side-$r.json" >"$out/$side-$r.log" 2>&1
	done
done

# One row per scenario; each cell lists the rounds' server CPU µs per
# request and, in brackets, the range of its ratio to the echo baseline.
python3 - "$out" "$rounds" <<'EOF'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
runs = {s: [json.load(open(f"{out}/{s}-{r}.json")) for r in range(1, rounds + 1)] for s in ("before", "after")}
names = [x["scenario"] for x in runs["before"][0]["results"]]

def cell(side, name):
    us, ratios = [], []
    for run in runs[side]:
        for x in run["results"]:
            if x["scenario"] == name:
                us.append(f'{x["server_cpu_us_per_request"]:.1f}')
                if x.get("server_cpu_ratio"):
                    ratios.append(x["server_cpu_ratio"])
    text = " / ".join(us) or "–"
    if ratios:
        lo, hi = min(ratios), max(ratios)
        text += f" ({lo:.1f}×)" if f"{lo:.1f}" == f"{hi:.1f}" else f" ({lo:.1f}–{hi:.1f}×)"
    return text

def rss(side, name):
    return " / ".join(f'{x["peak_rss_mb"]:.0f}' for run in runs[side] for x in run["results"] if x["scenario"] == name)

def p99(side):
    vals = []
    for run in runs[side]:
        by = {x["scenario"]: x for x in run["results"]}
        if "create" in by and by["create"].get("p99_ratio"):
            vals.append(f'{by["create"]["p99_ratio"]:.1f}')
    return " / ".join(vals) or "–"

print("| scenario | before, rounds " + " / ".join(map(str, range(1, rounds + 1))) + " | after |")
print("|---|---|---|")
for n in names:
    print(f"| {n} | {cell('before', n)} | {cell('after', n)} |")
print(f"| create p99 ÷ echo p99 | {p99('before')} | {p99('after')} |")
bpp = lambda side: " / ".join(str(round(r.get("db_bytes_per_payment", 0))) for r in runs[side] if r.get("db_bytes_per_payment"))
print(f"| peak RSS MB, create | {rss('before', 'create')} | {rss('after', 'create')} |")
print(f"| bytes per payment | {bpp('before') or '–'} | {bpp('after') or '–'} |")
EOF
echo "JSON and logs: $out" >&2
