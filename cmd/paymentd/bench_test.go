package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store/storetest"
)

// runAsMainEnv makes this test binary behave as the paymentd binary, so that
// `paymentd bench` run by a test can start its `bench-server` children by
// re-executing itself, as it does in production.
const runAsMainEnv = "PAYMENTD_TEST_BINARY_IS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runBench runs `paymentd bench` with short scenarios and returns its JSON report.
func runBench(t *testing.T, args ...string) benchReport {
	t.Helper()
	t.Setenv(runAsMainEnv, "1")
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	args = append([]string{"bench", "--duration", "300ms", "--warmup", "100ms", "--concurrency", "4", "--json", out}, args...)
	if err := run(context.Background(), args, noEnv, &stdout, &stderr); err != nil {
		t.Fatalf("bench: %v\nstderr:\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r benchReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "srv µs/req") {
		t.Errorf("the table lacks the server CPU column:\n%s", stdout.String())
	}
	return r
}

func resultsByName(t *testing.T, r benchReport, want ...string) map[string]benchResult {
	t.Helper()
	by := map[string]benchResult{}
	for _, x := range r.Results {
		by[x.Scenario] = x
	}
	for _, name := range want {
		x, ok := by[name]
		if !ok {
			t.Fatalf("no result for %s in %+v", name, r.Results)
		}
		if x.Requests == 0 || x.Errors != 0 {
			t.Errorf("%s: %d requests, %d errors (%s)", name, x.Requests, x.Errors, x.FirstError)
		}
	}
	return by
}

// TestBenchChildServersReportServerCPU runs the bench with paymentd and the
// echo baseline as child processes and checks that every scenario carries
// the server's own CPU per request, apart from the generator's, and the
// ratio to its baseline's.
func TestBenchChildServersReportServerCPU(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench with child processes")
	}
	r := runBench(t, "--scenarios", "create,get,rest-create,rest-list")
	if r.Mode != "child" {
		t.Errorf("mode %q, want child", r.Mode)
	}
	by := resultsByName(t, r, "echo", "create", "get", "rest-echo", "rest-create", "rest-list")
	for name, x := range by {
		if x.ServerCPUus <= 0 || x.BenchCPUus <= 0 || x.PeakRSSMB <= 0 {
			t.Errorf("%s: server %.1f µs/req, bench %.1f µs/req, peak RSS %.0f MB; want all measured", name, x.ServerCPUus, x.BenchCPUus, x.PeakRSSMB)
		}
	}
	for name, base := range map[string]string{"create": "echo", "get": "echo", "rest-create": "rest-echo", "rest-list": "rest-echo"} {
		x, b := by[name], by[base]
		if x.Baseline != base || x.ServerCPURatio <= 0 || x.P99Ratio <= 0 {
			t.Errorf("%s: baseline %q, server CPU ratio %.2f, p99 ratio %.2f", name, x.Baseline, x.ServerCPURatio, x.P99Ratio)
		}
		if got := x.ServerCPUus / b.ServerCPUus; got < x.ServerCPURatio*0.999 || got > x.ServerCPURatio*1.001 {
			t.Errorf("%s: ratio %.3f is not %.1f/%.1f", name, x.ServerCPURatio, x.ServerCPUus, b.ServerCPUus)
		}
	}
	// The child's store kept every created payment: the pool, create and rest-create.
	if want := 1000 + by["create"].Requests + by["rest-create"].Requests; r.DBPayments < want {
		t.Errorf("database holds %d payments, want at least %d", r.DBPayments, want)
	}
	if c := by["create"]; c.Commits == 0 || c.MeanBatch < 1 {
		t.Errorf("create: %d commits, mean batch %.1f", c.Commits, c.MeanBatch)
	}
	if r.DBBytesPerPay <= 0 {
		t.Errorf("bytes per payment %.0f", r.DBBytesPerPay)
	}
}

// TestBenchDrivesRunningServer points the bench at a running `paymentd
// serve` by address with its key, and checks that the payments it reports
// are really on that server.
func TestBenchDrivesRunningServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench with child processes")
	}
	srv := startServer(t, testDB(t))
	httpAddr := strings.TrimPrefix(srv.baseURL, "http://")
	r := runBench(t, "--addr", srv.conn.Target(), "--http-addr", httpAddr, "--key", srv.key,
		"--server-pid", strconv.Itoa(os.Getpid()), "--scenarios", "create,list,rest-create")
	if r.Mode != "external" {
		t.Errorf("mode %q, want external", r.Mode)
	}
	by := resultsByName(t, r, "echo", "create", "list", "rest-echo", "rest-create")
	if x := by["create"]; x.ServerCPUus <= 0 || x.ServerCPURatio <= 0 {
		t.Errorf("create with --server-pid: server %.1f µs/req, ratio %.2f", x.ServerCPUus, x.ServerCPURatio)
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+srv.key)
	var n int64
	for page := ""; ; {
		resp, err := srv.payments.ListPayments(ctx, &pb.ListPaymentsRequest{PageSize: 100, PageToken: page})
		if err != nil {
			t.Fatal(err)
		}
		n += int64(len(resp.Payments))
		if page = resp.NextPageToken; page == "" {
			break
		}
	}
	if want := by["create"].Requests + by["rest-create"].Requests; n < want {
		t.Errorf("the server holds %d payments, the bench reported %d created", n, want)
	}
}

// TestBenchDrivesRunningFleet points the bench at two running replicas on
// one PostgreSQL database by their addresses: the callers are spread across
// both, over gRPC and REST, and every payment it reports is in the database.
func TestBenchDrivesRunningFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench with child processes")
	}
	dsn := storetest.PostgresDSN(t)
	a := startServer(t, dsn)
	b := startServer(t, dsn)
	r := runBench(t, "--addr", a.conn.Target()+","+b.conn.Target(),
		"--http-addr", strings.TrimPrefix(a.baseURL, "http://")+","+strings.TrimPrefix(b.baseURL, "http://"),
		"--key", a.key, "--scenarios", "create,rest-create")
	if r.Mode != "external" || r.Replicas != 2 {
		t.Errorf("mode %q, replicas %d; want external, 2", r.Mode, r.Replicas)
	}
	by := resultsByName(t, r, "create", "rest-create")
	for _, name := range []string{"create", "rest-create"} {
		x := by[name]
		if len(x.ReplicaRequests) != 2 || x.ReplicaRequests[0] == 0 || x.ReplicaRequests[1] == 0 ||
			x.ReplicaRequests[0]+x.ReplicaRequests[1] != x.Requests {
			t.Errorf("%s: %d requests, per replica %v; want both replicas to answer a share", name, x.Requests, x.ReplicaRequests)
		}
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+a.key)
	var n int64
	for page := ""; ; {
		resp, err := b.payments.ListPayments(ctx, &pb.ListPaymentsRequest{PageSize: 100, PageToken: page})
		if err != nil {
			t.Fatal(err)
		}
		n += int64(len(resp.Payments))
		if page = resp.NextPageToken; page == "" {
			break
		}
	}
	if want := by["create"].Requests + by["rest-create"].Requests; n < want {
		t.Errorf("the database holds %d payments, the bench reported %d created", n, want)
	}
}

func TestBenchRefusesIncompleteAddress(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--addr", "127.0.0.1:1"},
		{"bench", "--key", "ak_test_x"},
		{"bench", "--addr", "127.0.0.1:1", "--key", "k", "--preload", "10"},
		{"bench", "--addr", "127.0.0.1:1", "--key", "k", "--scenarios", "rest-create"},
		{"bench", "--server", "thread"},
		{"bench", "--addr", "127.0.0.1:1,127.0.0.1:2", "--http-addr", "127.0.0.1:3", "--key", "k"},
		{"bench", "--addr", "127.0.0.1:1", "--key", "k", "--server-pid", "x", "--scenarios", "create"},
		{"bench", "--addr", "127.0.0.1:1,", "--key", "k", "--scenarios", "create"},
		{"bench", "--commit-delay", "-1ms"},
		{"bench", "--addr", "127.0.0.1:1", "--key", "k", "--commit-delay", "0", "--scenarios", "create"},
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, noEnv, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), "--") {
			t.Errorf("%v: error %v, want one naming the flag", args, err)
		}
	}
}

// TestBenchInProcess keeps the mode where the servers run inside the bench.
func TestBenchInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench")
	}
	r := runBench(t, "--server", "inprocess", "--scenarios", "list")
	if r.Mode != "inprocess" {
		t.Errorf("mode %q, want inprocess", r.Mode)
	}
	by := resultsByName(t, r, "echo", "list")
	if x := by["list"]; x.ServerCPUus <= 0 || x.BenchCPUus != 0 {
		t.Errorf("list in process: %.1f µs/req (process), bench %.1f µs/req; want the first measured and the second not told apart", x.ServerCPUus, x.BenchCPUus)
	}
	// list alone lists something: the bench seeded its payments.
	if r.DBPayments < 1000 {
		t.Errorf("list ran on a database of %d payments; want the 1000 the bench seeds", r.DBPayments)
	}
}

// TestBenchRandomKeys: with --random-keys every create carries 32 random
// hex digits as its idempotency key, as clients make them, and none is
// refused (the bench draws again the one in 1400 that reads as a card
// number, as a client does).
func TestBenchRandomKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench")
	}
	r := runBench(t, "--server", "inprocess", "--scenarios", "create", "--random-keys", "--duration", "1s", "--concurrency", "20")
	if !r.RandomKeys {
		t.Error("report without random_keys; want it set")
	}
	if x := resultsByName(t, r, "create")["create"]; x.Requests < 500 {
		t.Errorf("%d creates; want 500 or more", x.Requests)
	}
}

// TestBenchPostgresReplicas runs the bench on a fresh PostgreSQL database
// with three paymentd replicas: every scenario succeeds, the report names
// the backend, the replicas and synchronous_commit, every replica answered
// requests of every scenario (the callers were spread), and the server's
// and (for creates) the PostgreSQL backends' CPU per request are measured.
func TestBenchPostgresReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the bench with child processes")
	}
	r := runBench(t, "--db", storetest.PostgresDSN(t), "--replicas", "3", "--concurrency", "6", "--scenarios", "create,get,list,refund,rest-create")
	if r.Backend != "postgres" || r.Replicas != 3 || r.Synchronous != "synchronous_commit=on" {
		t.Errorf("report backend %q, replicas %d, synchronous %q; want postgres, 3, synchronous_commit=on", r.Backend, r.Replicas, r.Synchronous)
	}
	if want := max(1, runtime.NumCPU()/3); r.ReplicaProcs != want {
		t.Errorf("the replicas ran with GOMAXPROCS %d; want this machine's %d cores shared among 3: %d", r.ReplicaProcs, runtime.NumCPU(), want)
	}
	by := resultsByName(t, r, "create", "get", "list", "refund", "rest-create")
	for _, name := range []string{"create", "get", "list", "refund", "rest-create"} {
		x := by[name]
		if len(x.ReplicaRequests) != 3 || len(x.ReplicaCPUSeconds) != 3 {
			t.Errorf("%s: requests of %d replicas, CPU of %d; want 3 each", name, len(x.ReplicaRequests), len(x.ReplicaCPUSeconds))
			continue
		}
		var sum int64
		for i, n := range x.ReplicaRequests {
			if n == 0 {
				t.Errorf("%s: replica %d answered no request (%v): the callers were not spread", name, i, x.ReplicaRequests)
			}
			sum += n
		}
		if sum != x.Requests {
			t.Errorf("%s: the replicas answered %d requests in all; the scenario counts %d", name, sum, x.Requests)
		}
		if x.ServerCPUus <= 0 {
			t.Errorf("%s: no server CPU per request", name)
		}
	}
	// CPU is read in 10 ms ticks: only the writes of these short runs are
	// sure to cost PostgreSQL's backends some.
	if by["create"].DBCPUus <= 0 {
		t.Error("create: no PostgreSQL backend CPU per request")
	}
	if r.DBPayments == 0 {
		t.Error("the report counts no payments in the database")
	}
}
