#!/usr/bin/env bash
# bench-backends.sh runs `paymentd bench` on the embedded SQLite store and on
# PostgreSQL one after another, in one run on one machine, and prints the
# README's side-by-side table: SQLite vs PostgreSQL with one replica, one vs
# three replicas at the same total concurrency, and an empty database vs one
# with a million payments preloaded.
#
#   tools/bench-backends.sh 'postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' [duration]
#
# The DSN names a server and a database to connect to first (the role must
# be allowed to create databases): each PostgreSQL run gets a fresh
# bench_<run>_<pid> database, dropped afterwards. Needs psql and jq. The
# JSON of every run stays in $OUT (default: a new temporary directory).
set -euo pipefail

pg=${1:?usage: tools/bench-backends.sh postgres://user@host:port/db?sslmode=… [duration]}
dur=${2:-5s}
preload=${PRELOAD:-1000000}
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
bin=$out/paymentd
go build -o "$bin" ./cmd/paymentd
scenarios=echo,create,get,list,refund
dbs=()
trap 'for d in "${dbs[@]}"; do psql "$pg" -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" || true; done' EXIT

# fresh creates an empty database and prints its DSN (the given one with
# the database name replaced).
fresh() {
	local name=bench_$1_$$
	psql "$pg" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" >&2
	dbs+=("$name")
	sed -E "s#^(postgres(ql)?://[^/]+/)[^?]*#\1$name#" <<<"$pg"
}

run() { # name, bench flags…
	local name=$1
	shift
	echo "== $name: paymentd bench --duration $dur --warmup 1s $*" | sed -E 's#://[^@/]*@#://…@#' >&2
	"$bin" bench --duration "$dur" --warmup 1s --json "$out/$name.json" "$@" 2>"$out/$name.log" >&2
}

run sqlite --scenarios "$scenarios"
db=$(fresh pg1) && run pg1 --db "$db" --scenarios "$scenarios"
db=$(fresh pg3) && run pg3 --db "$db" --replicas 3 --scenarios "$scenarios"
run sqlite_preloaded --preload "$preload" --scenarios echo,create,get,list
db=$(fresh pg1m) && run pg_preloaded --db "$db" --preload "$preload" --scenarios echo,create,get,list

# One row per scenario: req/s, p99 and server CPU µs per request (plus
# PostgreSQL's own CPU µs per request) of every run.
jq -rn --slurpfile s "$out/sqlite.json" --slurpfile p1 "$out/pg1.json" --slurpfile p3 "$out/pg3.json" \
	--slurpfile sm "$out/sqlite_preloaded.json" --slurpfile pm "$out/pg_preloaded.json" '
	def find($r; $n): ($r[0].results[] | select(.scenario == $n)) // null;
	def cell($x): if $x == null then "–" else
		"\($x.rps | floor)/s, p99 \($x.p99_ms * 10 | round / 10) ms, \($x.server_cpu_us_per_request | round) µs" +
		(if ($x.db_cpu_us_per_request // 0) > 0 then " + \($x.db_cpu_us_per_request | round) µs db" else "" end) +
		(if $x.errors > 0 then ", \($x.errors) errors" else "" end) end;
	"| scenario | SQLite | PostgreSQL, 1 replica | PostgreSQL, 3 replicas | SQLite, \($sm[0].preloaded_payments) preloaded | PostgreSQL, \($pm[0].preloaded_payments) preloaded |",
	"|---|---|---|---|---|---|",
	(["echo", "create", "get", "list", "refund"][] as $n |
		"| \($n) | \(cell(find($s; $n))) | \(cell(find($p1; $n))) | \(cell(find($p3; $n))) | \(cell(find($sm; $n))) | \(cell(find($pm; $n))) |")'
echo "JSON and logs: $out" >&2
