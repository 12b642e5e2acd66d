package main

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver, for pgSetting
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	benchv1 "github.com/paymentd/paymentd/gen/paymentd/bench/v1"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/service"
	"github.com/paymentd/paymentd/store"
)

// The scenarios of `paymentd bench`, in the order they run. Each names the
// baseline its ratio is taken against.
var benchScenarios = []struct{ name, baseline, about string }{
	{"echo", "", "bare gRPC echo server: no interceptors, no auth, no database"},
	{"create", "echo", "CreatePayment, sandbox, automatic capture, idempotency key"},
	{"get", "echo", "GetPayment of a random existing payment"},
	{"list", "echo", "ListPayments, first page of 20"},
	{"refund", "echo", "CreateRefund of 100 on a random captured payment"},
	{"rest-echo", "", "REST POST /v1/bench/echo through the gateway"},
	{"rest-create", "rest-echo", "REST POST /v1/payments through the same gateway"},
	{"rest-list", "rest-echo", "REST GET /v1/payments, first page of 20, through the same gateway"},
}

type benchConfig struct {
	concurrency          int
	duration, warmup     time.Duration
	preload              int
	scenarios, jsonOut   string
	synchronous, workDir string
	commitDelay          time.Duration // the SQLite server's (serve --commit-delay)
	cpuProfile           string
	memProfile           string
	server               string          // child or inprocess
	addr, httpAddr, key  string          // an already-running paymentd serve
	serverPIDs           string          // comma-separated, one per --addr
	instrumentation      instrumentation // of the paymentd child (tracing.go)
	db                   string          // a database to bench on instead of a temporary SQLite file
	replicas             int             // paymentd children on db, sharing the load
	dbWriters            int             // group-commit loops per paymentd on PostgreSQL (0: fleetWriters)
	replicaProcs         int             // GOMAXPROCS of each replica (0: replicaShare)
	randomKeys           bool            // idempotency keys of 32 random hex digits instead of sequential ones
}

// benchResult is one row of the table (and of --json). Server figures are
// the server process's own (CPU time, peak RSS); in --server inprocess mode
// the load generator shares that process and is included.
type benchResult struct {
	Scenario   string  `json:"scenario"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	RPS        float64 `json:"rps"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	P999ms     float64 `json:"p999_ms"`
	Baseline   string  `json:"baseline,omitempty"`
	Ratio      float64 `json:"ratio,omitempty"`     // rps relative to the baseline's
	P99Ratio   float64 `json:"p99_ratio,omitempty"` // p99 relative to the baseline's
	CPUSeconds float64 `json:"cpu_seconds"`         // the server's CPU time in the measured window
	// ServerCPUus is the server's CPU µs per successful request, and
	// ServerCPURatio its ratio to the baseline's: the figure the issue's
	// targets are stated in. Zero when the server's CPU cannot be read
	// (a remote deployment without --server-pid).
	ServerCPUus    float64 `json:"server_cpu_us_per_request,omitempty"`
	ServerCPURatio float64 `json:"server_cpu_ratio,omitempty"`
	// BenchCPUus is the load generator's own CPU µs per request (zero in
	// inprocess mode, where it cannot be told apart).
	BenchCPUus float64 `json:"bench_cpu_us_per_request,omitempty"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	// DBCPUus is the CPU µs per request of the PostgreSQL backends serving
	// the bench's database, when PostgreSQL runs on this machine: SQLite's
	// work is inside the server's figure, PostgreSQL's is not.
	DBCPUus float64 `json:"db_cpu_us_per_request,omitempty"`
	// ReplicaCPUSeconds is each replica's share of CPUSeconds, in a bench
	// with --replicas: how evenly the load was spread.
	ReplicaCPUSeconds []float64 `json:"replica_cpu_seconds,omitempty"`
	// ReplicaRequests is how many requests each replica answered.
	ReplicaRequests []int64 `json:"replica_requests,omitempty"`
	FirstError      string  `json:"first_error,omitempty"`
	Commits         int64   `json:"commits"`
	MeanBatch       float64 `json:"mean_batch"`
}

type benchReport struct {
	Mode            string        `json:"mode"` // child, inprocess or external
	Concurrency     int           `json:"concurrency"`
	DurationSeconds float64       `json:"duration_seconds"`
	Preloaded       int           `json:"preloaded_payments"`
	Synchronous     string        `json:"synchronous"`
	CommitDelay     string        `json:"commit_delay,omitempty"`       // SQLite's writer (--commit-delay)
	Backend         string        `json:"backend"`                      // sqlite or postgres
	Replicas        int           `json:"replicas"`                     // paymentd servers sharing the load; server figures are their sums
	ReplicaProcs    int           `json:"replica_gomaxprocs,omitempty"` // GOMAXPROCS of each, with Replicas > 1
	Results         []benchResult `json:"results"`
	DBBytesPerPay   float64       `json:"db_bytes_per_payment"`
	DBPayments      int64         `json:"db_payments"`
	DBBytes         int64         `json:"db_bytes"`
	GOMAXPROCS      int           `json:"gomaxprocs"`
	Instrumentation string        `json:"instrumentation"` // on or off (--instrumentation)
	RandomKeys      bool          `json:"random_keys,omitempty"`
}

// benchTarget is one server the scenarios call, and how its own cost is read.
type benchTarget struct {
	grpcAddr, httpAddr, key string
	pid                     int  // the server's process; 0 when unknown
	procs                   int  // a child's GOMAXPROCS; 0 when unknown
	inProcess               bool // the server runs inside the bench
	// stats reads the store's counters; nil when they cannot be read.
	stats func() (benchServerStats, error)
	free  func()
	stop  func()
	// members are the replicas of a fleet target (replicaGroup): its
	// figures are theirs summed, and calls are spread across them.
	members []*benchTarget
	// cpu asks a bench-server child for its own CPU time (finer than
	// /proc's clock ticks); nil for other servers.
	cpu func() (float64, bool)
	// dbCPU reads the CPU seconds so far of each PostgreSQL backend serving
	// the target's database, by process id; nil when the database is not a
	// PostgreSQL server on this machine.
	dbCPU func() map[int]float64
}

// externalTargets are the running servers --addr names, with their
// --http-addr and --server-pid in the same order.
func externalTargets(c benchConfig) ([]*benchTarget, error) {
	addrs := strings.Split(c.addr, ",")
	list := func(flag, v string) ([]string, error) {
		if v == "" {
			return make([]string, len(addrs)), nil
		}
		if vs := strings.Split(v, ","); len(vs) == len(addrs) {
			return vs, nil
		}
		return nil, fmt.Errorf("--%s names %d servers and --addr %d: give one per --addr, in the same order", flag, len(strings.Split(v, ",")), len(addrs))
	}
	https, err := list("http-addr", c.httpAddr)
	if err != nil {
		return nil, err
	}
	pids, err := list("server-pid", c.serverPIDs)
	if err != nil {
		return nil, err
	}
	var ts []*benchTarget
	for i, a := range addrs {
		t := &benchTarget{grpcAddr: strings.TrimSpace(a), httpAddr: strings.TrimSpace(https[i])}
		switch {
		case t.grpcAddr == "":
			return nil, fmt.Errorf("--addr %q has an empty entry: list the gRPC addresses separated by single commas", c.addr)
		case c.httpAddr != "" && t.httpAddr == "":
			return nil, fmt.Errorf("--http-addr %q has an empty entry: list the HTTP addresses separated by single commas", c.httpAddr)
		}
		if p := strings.TrimSpace(pids[i]); p != "" {
			if t.pid, err = strconv.Atoi(p); err != nil || t.pid <= 0 {
				return nil, fmt.Errorf("--server-pid %q: %q is not a process id", c.serverPIDs, p)
			}
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// replicaGroup is one target made of several paymentd children on one
// database: CPU time is their sum, peak RSS the largest one's, and the
// store's commit counters their sum (the database's size is one).
func replicaGroup(members []*benchTarget, key string) *benchTarget {
	if len(members) == 1 {
		members[0].key = key
		return members[0]
	}
	// The members are alike: children the bench started, or servers
	// already running (externalTargets), which it neither frees, stops
	// nor asks for their store's counters.
	g := &benchTarget{key: key, members: members}
	if members[0].free != nil {
		g.free = func() {
			for _, m := range members {
				m.free()
			}
		}
	}
	if members[0].stop != nil {
		g.stop = func() {
			for _, m := range members {
				m.stop()
			}
		}
	}
	if members[0].stats != nil {
		g.stats = func() (benchServerStats, error) {
			var sum benchServerStats
			for i, m := range members {
				s, err := m.stats()
				if err != nil {
					return sum, err
				}
				sum.Batches, sum.Ops = sum.Batches+s.Batches, sum.Ops+s.Ops
				if i == 0 {
					sum.Payments, sum.Bytes = s.Payments, s.Bytes
				}
			}
			return sum, nil
		}
	}
	return g
}

// servers are the target's processes: its members, or itself.
func (t *benchTarget) servers() []*benchTarget {
	if len(t.members) > 0 {
		return t.members
	}
	return []*benchTarget{t}
}

// cpuSeconds is the server process's CPU time so far (summed over a
// group's members).
func (t *benchTarget) cpuSeconds() (float64, bool) {
	if len(t.members) > 0 {
		var sum float64
		for _, m := range t.members {
			s, ok := m.cpuSeconds()
			if !ok {
				return 0, false
			}
			sum += s
		}
		return sum, true
	}
	switch {
	case t.inProcess:
		return cpuSeconds(), true
	case t.cpu != nil:
		return t.cpu()
	case t.pid > 0:
		return procCPUSeconds(t.pid)
	}
	return 0, false
}

func (t *benchTarget) procDir() string {
	if t.inProcess || t.pid == 0 {
		return "/proc/self"
	}
	return "/proc/" + strconv.Itoa(t.pid)
}

func (t *benchTarget) resetPeakRSS() {
	for _, m := range t.servers() {
		if m.inProcess || m.pid > 0 {
			resetPeakRSS(m.procDir())
		}
	}
}

// peakRSS is the largest peak RSS of the target's processes.
func (t *benchTarget) peakRSS() int64 {
	var peak int64
	for _, m := range t.servers() {
		if m.inProcess || m.pid > 0 {
			peak = max(peak, peakRSS(m.procDir()))
		}
	}
	return peak
}

func bench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := benchConfig{}
	fs := newFlagSet("bench", stderr)
	fs.IntVar(&c.concurrency, "concurrency", 50, "concurrent callers per scenario")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time per scenario")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured warm-up per scenario")
	fs.IntVar(&c.preload, "preload", 0, "payments to write before the scenarios, through the store's batch path")
	fs.StringVar(&c.scenarios, "scenarios", "all", "comma-separated subset of: echo,create,get,list,refund,rest-echo,rest-create,rest-list")
	fs.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file (- for stdout)")
	fs.StringVar(&c.synchronous, "synchronous", "FULL", "SQLite synchronous pragma (serve's default is FULL)")
	fs.DurationVar(&c.commitDelay, "commit-delay", store.DefaultCommitDelay, "serve's --commit-delay (SQLite; 0: never wait)")
	fs.StringVar(&c.workDir, "dir", "", "directory for the temporary database (default: the system temp dir)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the server to this file")
	fs.StringVar(&c.memProfile, "memprofile", "", "write the server's allocation profile (every allocation since it started, sampled; go tool pprof -sample_index=alloc_space) to this file when it stops")
	fs.StringVar(&c.server, "server", "child", "child: paymentd and the echo baseline run as child processes, so their own CPU is measured apart from the load generator's; inprocess: everything in this process")
	fs.StringVar(&c.addr, "addr", "", "drive an already-running paymentd serve at this gRPC `address` instead of starting one (needs --key); comma-separated addresses of a fleet's replicas spread the callers across them")
	fs.StringVar(&c.httpAddr, "http-addr", "", "with --addr: that server's HTTP address, for rest-create (comma-separated, one per --addr)")
	fs.StringVar(&c.key, "key", "", "with --addr: a test API key with the write scope on that server (or PAYMENTD_KEY)")
	fs.StringVar(&c.serverPIDs, "server-pid", "", "with --addr: the server's process id on this machine, to read its CPU time and peak RSS (comma-separated, one per --addr)")
	c.instrumentation.register(fs)
	fs.BoolVar(&c.randomKeys, "random-keys", false, "idempotency keys of 32 random hex digits, as clients make them (uuid4().hex), instead of sequential ones, whose records the database appends")
	fs.StringVar(&c.db, "db", "", "bench on this database (postgres://… or a SQLite file) instead of a temporary SQLite file; the bench adds its own account to it, so use a throw-away database")
	fs.IntVar(&c.dbWriters, "db-writers", 0, "with a PostgreSQL --db: serve's --db-writers for each paymentd (0: 4 divided among the replicas, rounded up)")
	fs.IntVar(&c.replicas, "replicas", 1, "with a PostgreSQL --db: start this many paymentd servers on it and spread the callers across them (server CPU is their sum)")
	fs.IntVar(&c.replicaProcs, "replica-procs", 0, "with --replicas: GOMAXPROCS of each paymentd (0: this machine's cores divided among the replicas, at least 1)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	switch {
	case c.replicas < 1:
		return errors.New("--replicas must be at least 1")
	case c.replicas > 1 && !store.IsPostgres(c.db):
		return errors.New("--replicas needs a PostgreSQL --db (postgres://…): replicas share one database, and SQLite has one writer")
	case c.dbWriters < 0 || c.dbWriters > 0 && !store.IsPostgres(c.db):
		return errors.New("--db-writers needs a PostgreSQL --db and 1 or more (SQLite has one writer)")
	case c.replicas > 1 && c.server != "child":
		return errors.New("--replicas starts child servers: drop --server inprocess")
	case c.db != "" && c.addr != "":
		return errors.New("--db and --addr both name the server's database: a running server (--addr) has its own")
	case c.commitDelay != store.DefaultCommitDelay && (store.IsPostgres(c.db) || c.addr != ""):
		return errors.New("--commit-delay is a setting of the SQLite server the bench starts: remove it with a PostgreSQL --db or --addr")
	}
	if _, err := commitDelayOption(c.commitDelay); err != nil {
		return err
	}
	if c.concurrency < 1 {
		return errors.New("--concurrency must be at least 1")
	}
	if c.server != "child" && c.server != "inprocess" {
		return fmt.Errorf("--server must be child or inprocess; got %q", c.server)
	}
	if c.addr == "" && (c.httpAddr != "" || c.key != "" || c.serverPIDs != "") {
		return errors.New("--http-addr, --key and --server-pid describe a running server: pass its gRPC address with --addr too")
	}
	if c.addr != "" {
		switch {
		case c.key == "":
			return errors.New("--addr needs --key: a test API key with the write scope on that server (`paymentd keys create --mode test`)")
		case c.preload > 0:
			return errors.New("--preload cannot fill a running server's database; drop --preload or bench without --addr")
		}
	}
	wanted, err := pickScenarios(c.scenarios)
	if err != nil {
		return err
	}
	if c.addr != "" && c.httpAddr == "" && (wanted["rest-create"] || wanted["rest-list"]) {
		return errors.New("rest-create and rest-list against --addr need that server's --http-addr (or leave them out of --scenarios)")
	}

	mode := c.server
	if c.addr != "" {
		mode = "external"
	}
	var echoT, restEchoT, payT *benchTarget
	switch mode {
	case "inprocess":
		t, e, stop, err := startInProcess(ctx, c, stderr)
		if err != nil {
			return err
		}
		defer stop()
		payT, restEchoT, echoT = t, t, e
	case "child":
		if c.db != "" {
			payT, err = startReplicas(ctx, c, stderr)
		} else {
			payT, err = startChild(stderr, nil, childArgs(c, true)...)
		}
		if err != nil {
			return err
		}
		defer payT.stop()
		restEchoT = payT
	case "external":
		members, err := externalTargets(c)
		if err != nil {
			return err
		}
		payT = replicaGroup(members, c.key)
		if wanted["rest-echo"] {
			// serve has no echo route: the REST baseline is paymentd's own
			// gateway in a child on this machine.
			if restEchoT, err = startChild(stderr, nil, childArgs(c, false)...); err != nil {
				return err
			}
			defer restEchoT.stop()
		}
	}
	if echoT == nil {
		if echoT, err = startChild(stderr, nil, "--echo"); err != nil {
			return err
		}
		defer echoT.stop()
	}

	// A connection per 25 callers, spread over a fleet's replicas: the
	// list takes one connection of each replica in turn and caller w uses
	// entry w modulo its length, so caller w calls replica w modulo their
	// number (as over REST, httpAddrOf) and each gets an equal share.
	nconn := max(1, c.concurrency/25/len(payT.servers()))
	conns := map[string][]*grpc.ClientConn{}
	dial := func(t *benchTarget) ([]*grpc.ClientConn, error) {
		var all []*grpc.ClientConn
		for i := range nconn {
			for _, m := range t.servers() {
				cs, ok := conns[m.grpcAddr]
				if !ok {
					var err error
					if cs, err = dialN(m.grpcAddr, nconn); err != nil {
						return nil, err
					}
					conns[m.grpcAddr] = cs
				}
				all = append(all, cs[i])
			}
		}
		return all, nil
	}
	defer func() {
		for _, cs := range conns {
			for _, cc := range cs {
				cc.Close()
			}
		}
	}()
	paymentd, err := dial(payT)
	if err != nil {
		return err
	}
	echoConns, err := dial(echoT)
	if err != nil {
		return err
	}
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * c.concurrency, MaxIdleConnsPerHost: 2 * c.concurrency}}
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+payT.key)

	// Payments for get and refund (captured, large enough for every refund
	// of 100), and for list: without them a run of list alone (on a database
	// not preloaded) measured an empty page.
	pool := make([]string, 0, 1000)
	if wanted["get"] || wanted["refund"] || wanted["list"] || wanted["rest-list"] {
		for i := range cap(pool) {
			resp, err := pb.NewPaymentsServiceClient(paymentd[i%len(paymentd)]).CreatePayment(authed, &pb.CreatePaymentRequest{
				Amount: 100_000_000, Currency: "USD", PaymentMethod: "pm_card_visa"})
			if err != nil {
				return fmt.Errorf("seeding payments: %w", err)
			}
			pool = append(pool, resp.Payment.Id)
		}
	}
	for _, t := range []*benchTarget{payT, restEchoT, echoT} {
		if t != nil && t.free != nil {
			t.free()
		}
	}

	payload := strings.Repeat("x", 120) // about a payment request's size
	createBody := []byte(`{"amount":2000,"currency":"USD","payment_method":"pm_card_visa","description":"bench"}`)
	echoBody := []byte(`{"payload":"` + payload + `"}`)
	// Idempotency keys differ between runs, so that benches against one
	// running server never replay each other's payments.
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var seq atomic.Int64
	key := func(kind string) string {
		for c.randomKeys {
			// One random key in about 1400 reads as a card number and
			// would be refused; a client draws another (README).
			var b [16]byte
			crand.Read(b[:])
			if k := hex.EncodeToString(b[:]); !service.HoldsCardNumber(k) {
				return k
			}
		}
		return "bench-" + kind + run + "-" + strconv.FormatInt(seq.Add(1), 10)
	}
	calls := map[string]func(worker int) error{
		"echo": func(w int) error {
			_, err := benchv1.NewEchoServiceClient(echoConns[w%len(echoConns)]).Echo(ctx, &benchv1.EchoRequest{Payload: payload})
			return err
		},
		"create": func(w int) error {
			ictx := metadata.AppendToOutgoingContext(authed, "idempotency-key", key(""))
			_, err := pb.NewPaymentsServiceClient(paymentd[w%len(paymentd)]).CreatePayment(ictx, &pb.CreatePaymentRequest{
				Amount: 2000, Currency: "USD", PaymentMethod: "pm_card_visa", Description: "bench"})
			return err
		},
		"get": func(w int) error {
			_, err := pb.NewPaymentsServiceClient(paymentd[w%len(paymentd)]).GetPayment(authed, &pb.GetPaymentRequest{Id: pool[rand.IntN(len(pool))]})
			return err
		},
		"list": func(w int) error {
			_, err := pb.NewPaymentsServiceClient(paymentd[w%len(paymentd)]).ListPayments(authed, &pb.ListPaymentsRequest{})
			return err
		},
		"refund": func(w int) error {
			ictx := metadata.AppendToOutgoingContext(authed, "idempotency-key", key("r-"))
			_, err := pb.NewPaymentsServiceClient(paymentd[w%len(paymentd)]).CreateRefund(ictx, &pb.CreateRefundRequest{
				PaymentId: pool[rand.IntN(len(pool))], Amount: proto.Int64(100)})
			return err
		},
		"rest-create": func(w int) error {
			return post(httpc, "http://"+httpAddrOf(payT, w)+"/v1/payments", "Bearer "+payT.key, createBody,
				"Idempotency-Key", key("h-"))
		},
		"rest-list": func(w int) error {
			return send(httpc, http.MethodGet, "http://"+httpAddrOf(payT, w)+"/v1/payments", "Bearer "+payT.key, nil)
		},
	}
	if restEchoT != nil {
		calls["rest-echo"] = func(w int) error {
			return post(httpc, "http://"+httpAddrOf(restEchoT, w)+"/v1/bench/echo", "", echoBody)
		}
	}
	targets := map[string]*benchTarget{"echo": echoT, "rest-echo": restEchoT}

	report := benchReport{Mode: mode, Concurrency: c.concurrency, DurationSeconds: c.duration.Seconds(), Preloaded: c.preload,
		Synchronous: strings.ToUpper(c.synchronous), GOMAXPROCS: runtime.GOMAXPROCS(0), Backend: "sqlite", Replicas: len(payT.servers()),
		Instrumentation: c.instrumentation.String(), CommitDelay: c.commitDelay.String(), RandomKeys: c.randomKeys}
	if len(payT.members) > 0 {
		report.ReplicaProcs = payT.members[0].procs
	}
	switch {
	case mode == "external":
		report.Synchronous, report.Backend, report.CommitDelay = "(the server's)", "(the server's)", ""
	case store.IsPostgres(c.db):
		report.Backend, report.CommitDelay = "postgres", ""
		if report.Synchronous, err = pgSetting(ctx, c.db, "synchronous_commit"); err != nil {
			return err
		}
		var closeDB func()
		payT.dbCPU, closeDB = pgBackendsCPU(ctx, c.db)
		defer closeDB()
	}
	byName := map[string]*benchResult{}
	if c.cpuProfile != "" && mode == "inprocess" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if c.memProfile != "" && mode == "inprocess" {
		defer writeAllocProfile(c.memProfile, stderr)
	}
	for _, sc := range benchScenarios {
		if !wanted[sc.name] {
			continue
		}
		t := payT
		if tt, ok := targets[sc.name]; ok {
			t = tt
		}
		var before benchServerStats
		if t.stats != nil {
			if before, err = t.stats(); err != nil {
				return err
			}
		}
		drive(ctx, c.concurrency, c.warmup, calls[sc.name], nil)
		if t.stats != nil {
			if before, err = t.stats(); err != nil {
				return err
			}
		}
		r := runScenario(ctx, stderr, sc.name, c, t, calls[sc.name])
		if t.stats != nil {
			after, err := t.stats()
			if err != nil {
				return err
			}
			if after.Batches > before.Batches {
				r.Commits, r.MeanBatch = after.Batches-before.Batches, float64(after.Ops-before.Ops)/float64(after.Batches-before.Batches)
			}
			if n := after.Payments - before.Payments; sc.name == "create" && n > 0 {
				report.DBBytesPerPay = float64(after.Bytes-before.Bytes) / float64(n)
			}
			if t == payT {
				report.DBPayments, report.DBBytes = after.Payments, after.Bytes
			}
		}
		if b, ok := byName[sc.baseline]; ok {
			r.Baseline = sc.baseline
			if b.RPS > 0 {
				r.Ratio = r.RPS / b.RPS
			}
			if b.P99ms > 0 {
				r.P99Ratio = r.P99ms / b.P99ms
			}
			if b.ServerCPUus > 0 {
				r.ServerCPURatio = r.ServerCPUus / b.ServerCPUus
			}
		}
		report.Results = append(report.Results, r)
		byName[sc.name] = &report.Results[len(report.Results)-1]
	}
	if payT.stats != nil {
		final, err := payT.stats()
		if err != nil {
			return err
		}
		report.DBPayments, report.DBBytes = final.Payments, final.Bytes
		if report.DBBytesPerPay == 0 && final.Payments > 0 {
			report.DBBytesPerPay = float64(final.Bytes) / float64(final.Payments)
		}
	}
	printReport(stdout, report)
	if c.jsonOut != "" {
		b, _ := json.MarshalIndent(report, "", "  ")
		if c.jsonOut == "-" {
			_, err = stdout.Write(append(b, '\n'))
		} else {
			err = os.WriteFile(c.jsonOut, append(b, '\n'), 0o644)
		}
	}
	return err
}

// startInProcess serves paymentd and the bare echo baseline inside this
// process, as bench did before child processes: the server's CPU figures
// then include the load generator's.
func startInProcess(ctx context.Context, c benchConfig, stderr io.Writer) (payT, echoT *benchTarget, stop func(), err error) {
	dir, err := os.MkdirTemp(c.workDir, "paymentd-bench-")
	if err != nil {
		return nil, nil, nil, err
	}
	db := c.db
	if db == "" {
		db = filepath.Join(dir, "bench.db")
	}
	st, srvs, key, err := startBenchPaymentd(ctx, db, benchStoreOptions(db, c.synchronous, c.fleetWriters(), c.commitDelay), c.preload, c.instrumentation, stderr)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	bare := grpc.NewServer()
	benchv1.RegisterEchoServiceServer(bare, echoServer{})
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srvs.stop(time.Second)
		st.Close()
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	go func() { _ = bare.Serve(bl) }()
	free := func() { debug.FreeOSMemory() }
	payT = &benchTarget{grpcAddr: srvs.grpcAddr.String(), httpAddr: srvs.httpAddr.String(), key: key, inProcess: true, free: free,
		stats: func() (benchServerStats, error) {
			b, o := st.WriterStats()
			s, err := st.Stats(ctx)
			return benchServerStats{Batches: b, Ops: o, Payments: s.Payments, Bytes: s.Bytes}, err
		}}
	echoT = &benchTarget{grpcAddr: bl.Addr().String(), inProcess: true}
	return payT, echoT, func() {
		bare.Stop()
		srvs.stop(time.Second)
		st.Close()
		os.RemoveAll(dir)
	}, nil
}

// startReplicas prepares c.db for the bench — its own account and test
// key, and the preload, written before any server starts — and starts
// c.replicas paymentd children serving it. The DSN goes to the children in
// their environment (PAYMENTD_DB), not on their command line, which any
// user of the machine can read.
func startReplicas(ctx context.Context, c benchConfig, stderr io.Writer) (*benchTarget, error) {
	st, err := store.Open(ctx, c.db, benchStoreOptions(c.db, c.synchronous, c.fleetWriters(), c.commitDelay))
	if err != nil {
		return nil, err
	}
	key, err := benchAccount(ctx, st, c.preload, stderr)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	var members []*benchTarget
	for i := range c.replicas {
		args := []string{"--synchronous", c.synchronous, "--instrumentation", c.instrumentation.String(),
			"--db-writers", strconv.Itoa(c.fleetWriters())}
		if i == 0 {
			args = append(args, c.profileArgs()...)
		}
		env := []string{"PAYMENTD_DB=" + c.db, "GOMAXPROCS=" + strconv.Itoa(c.replicaShare())}
		m, err := startChild(stderr, env, args...)
		if err != nil {
			for _, started := range members {
				started.stop()
			}
			return nil, err
		}
		members = append(members, m)
	}
	return replicaGroup(members, key), nil
}

// benchStoreOptions are the store options of a bench on db: SQLite's
// synchronous pragma and commit delay mean nothing on PostgreSQL
// (synchronous_commit is the server's setting, reported with the results).
// commitDelay has been checked (commitDelayOption).
func benchStoreOptions(db, synchronous string, writers int, commitDelay time.Duration) store.Options {
	if store.IsPostgres(db) {
		return store.Options{Writers: writers}
	}
	delay, _ := commitDelayOption(commitDelay)
	return store.Options{Synchronous: synchronous, CommitDelay: delay}
}

// fleetWriters is each replica's --db-writers when the bench is not told:
// the 4 transactions at once that suit one replica, divided among the
// replicas (rounded up), since the database sees all of theirs. With 4 each,
// three replicas on this build machine's PostgreSQL committed 2,355-3,486
// creates/s; with 2 each 3,929-4,242/s, one replica with 4 3,349-3,838/s.
func (c benchConfig) fleetWriters() int {
	if c.dbWriters > 0 {
		return c.dbWriters
	}
	return (4 + c.replicas - 1) / c.replicas
}

// replicaShare is each replica's GOMAXPROCS when the bench is not told: the
// replicas share this machine's cores as pods with CPU limits share a node's
// (Go sets GOMAXPROCS from a container's CPU limit), so that three of them
// on two cores do not each run two threads and preempt one another. Three
// replicas on the 2-core build machine, GOMAXPROCS 2 each against 1 each:
// create 4,143 / 4,477 against 4,800 / 4,889/s, get 8,443 / 8,725 against
// 9,692 / 9,638, list 4,093 / 3,886 against 4,374 / 4,232.
func (c benchConfig) replicaShare() int {
	if c.replicaProcs > 0 {
		return c.replicaProcs
	}
	return max(1, runtime.NumCPU()/c.replicas)
}

// pgSetting reads one server setting of the PostgreSQL database at dsn,
// as name=value, for the report.
func pgSetting(ctx context.Context, dsn, name string) (string, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return "", err
	}
	defer db.Close()
	var v string
	if err := db.QueryRowContext(ctx, `SELECT current_setting($1)`, name).Scan(&v); err != nil {
		return "", fmt.Errorf("bench: reading %s from PostgreSQL: %w", name, err)
	}
	return name + "=" + v, nil
}

// pgBackendsCPU returns a reader of the CPU time of the PostgreSQL backends
// connected to the database at dsn (other than its own), by process id, for
// a PostgreSQL server on this machine; nil otherwise (their /proc entries
// are elsewhere). done ends its connection.
func pgBackendsCPU(ctx context.Context, dsn string) (read func() map[int]float64, done func()) {
	u, err := url.Parse(dsn)
	if err != nil || !slices.Contains([]string{"", "localhost", "127.0.0.1", "::1"}, u.Hostname()) {
		return nil, func() {}
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, func() {}
	}
	db.SetMaxOpenConns(1)
	read = func() map[int]float64 {
		out := map[int]float64{}
		rows, err := db.QueryContext(ctx, `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
		if err != nil {
			return out
		}
		defer rows.Close()
		for rows.Next() {
			var pid int
			if rows.Scan(&pid) == nil {
				if s, ok := threadCPUSeconds(pid); ok {
					out[pid] = s
				}
			}
		}
		return out
	}
	return read, func() { db.Close() }
}

// httpAddrOf is the HTTP address caller w uses: the replicas take turns.
func httpAddrOf(t *benchTarget, w int) string {
	ms := t.servers()
	return ms[w%len(ms)].httpAddr
}

// childArgs are the flags of a paymentd bench-server child; the preload and
// the profile go only to the one the scenarios measure.
func childArgs(c benchConfig, measured bool) []string {
	args := []string{"--synchronous", c.synchronous, "--commit-delay", c.commitDelay.String(), "--instrumentation", c.instrumentation.String()}
	if c.workDir != "" {
		args = append(args, "--dir", c.workDir)
	}
	if measured && c.preload > 0 {
		args = append(args, "--preload", strconv.Itoa(c.preload))
	}
	if measured {
		args = append(args, c.profileArgs()...)
	}
	return args
}

// profileArgs passes the profiles asked for on to the measured server.
func (c *benchConfig) profileArgs() []string {
	var args []string
	if c.cpuProfile != "" {
		args = append(args, "--cpuprofile", c.cpuProfile)
	}
	if c.memProfile != "" {
		args = append(args, "--memprofile", c.memProfile)
	}
	return args
}

// startChild runs `paymentd bench-server args…` (this same executable),
// with env added to this process's environment, and waits until it serves.
// Its stdin stays open for stats requests; closing it stops the child.
func startChild(stderr io.Writer, env []string, args ...string) (*benchTarget, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("bench: finding this executable to start the server: %w", err)
	}
	argv := append([]string{"bench-server"}, args...)
	cmd := exec.Command(exe, argv...)
	cmd.Stderr = stderr
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: starting the server: %w", err)
	}
	rd := bufio.NewReader(out)
	kill := func() { in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() }
	line, err := rd.ReadBytes('\n')
	var ready benchServerReady
	if err == nil {
		err = json.Unmarshal(line, &ready)
	}
	if err != nil {
		kill()
		return nil, fmt.Errorf("bench: the server child did not start: %v", err)
	}
	var mu sync.Mutex
	ask := func(req string, v any) error {
		mu.Lock()
		defer mu.Unlock()
		if _, err := fmt.Fprintln(in, req); err != nil {
			return fmt.Errorf("bench: asking the server for %s: %w", req, err)
		}
		line, err := rd.ReadBytes('\n')
		if err != nil {
			return fmt.Errorf("bench: reading the server's %s: %w", req, err)
		}
		return json.Unmarshal(line, v)
	}
	t := &benchTarget{grpcAddr: ready.GRPC, httpAddr: ready.HTTP, key: ready.Key, pid: cmd.Process.Pid, procs: ready.Procs}
	t.free = func() { _ = ask("free", &struct{}{}) }
	t.cpu = func() (float64, bool) {
		var c benchServerCPU
		return c.Seconds, ask("cpu", &c) == nil
	}
	if !slices.Contains(argv, "--echo") {
		t.stats = func() (s benchServerStats, err error) { return s, ask("stats", &s) }
	}
	t.stop = func() {
		in.Close() // the child stops when its stdin closes
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	return t, nil
}

func pickScenarios(list string) (map[string]bool, error) {
	wanted := map[string]bool{}
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "all" {
			for _, sc := range benchScenarios {
				wanted[sc.name] = true
			}
			continue
		}
		if !slices.ContainsFunc(benchScenarios, func(sc struct{ name, baseline, about string }) bool { return sc.name == name }) {
			return nil, fmt.Errorf("--scenarios: unknown scenario %q", name)
		}
		wanted[name] = true
	}
	// A ratio needs its baseline in the same run.
	for _, sc := range benchScenarios {
		if wanted[sc.name] && sc.baseline != "" {
			wanted[sc.baseline] = true
		}
	}
	return wanted, nil
}

// runScenario drives call from c.concurrency goroutines for c.duration,
// recording every latency.
func runScenario(ctx context.Context, stderr io.Writer, name string, c benchConfig, t *benchTarget, call func(int) error) benchResult {
	t.resetPeakRSS()
	own0 := cpuSeconds()
	cpu0, cpuKnown := t.cpuSeconds()
	each0 := memberCPU(t)
	var db0 map[int]float64
	if t.dbCPU != nil {
		db0 = t.dbCPU()
	}
	start := time.Now()
	var done atomic.Int64
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				el := time.Since(start)
				fmt.Fprintf(stderr, "\r%-12s %5.1fs/%.0fs  %8.0f req/s ", name, el.Seconds(), c.duration.Seconds(), float64(done.Load())/el.Seconds())
			}
		}
	}()
	// Caller w calls replica w modulo their number; count what each answered.
	perReplica := make([]atomic.Int64, len(t.members))
	if len(t.members) > 0 {
		inner := call
		call = func(w int) error {
			err := inner(w)
			if err == nil {
				perReplica[w%len(perReplica)].Add(1)
			}
			return err
		}
	}
	lat, errs, firstErr := drive(ctx, c.concurrency, c.duration, call, &done)
	elapsed := time.Since(start)
	close(stopProgress)
	fmt.Fprintf(stderr, "\r%-12s done: %d requests, %d errors%20s\n", name, len(lat), errs, "")
	own := cpuSeconds() - own0
	cpu1, _ := t.cpuSeconds()
	each1 := memberCPU(t)
	r := benchResult{Scenario: name, Requests: int64(len(lat)), Errors: errs, RPS: float64(len(lat)) / elapsed.Seconds(),
		PeakRSSMB: float64(t.peakRSS()) / (1 << 20)}
	if t.dbCPU != nil && len(lat) > 0 {
		// A backend that started during the scenario counts all its CPU; one
		// that ended during it is missed (the pools keep theirs open).
		var spent float64
		for pid, s := range t.dbCPU() {
			spent += s - db0[pid]
		}
		r.DBCPUus = spent * 1e6 / float64(len(lat))
	}
	if cpuKnown {
		r.CPUSeconds = cpu1 - cpu0
		for i := range each1 {
			r.ReplicaCPUSeconds = append(r.ReplicaCPUSeconds, each1[i]-each0[i])
		}
	}
	for i := range perReplica {
		r.ReplicaRequests = append(r.ReplicaRequests, perReplica[i].Load())
	}
	if n := float64(len(lat)); n > 0 {
		r.ServerCPUus = r.CPUSeconds * 1e6 / n
		if !t.inProcess {
			r.BenchCPUus = own * 1e6 / n
		}
	}
	if firstErr != nil {
		r.FirstError = firstErr.Error()
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1e6 }
		r.P50ms, r.P99ms, r.P999ms = pct(0.50), pct(0.99), pct(0.999)
	}
	return r
}

// memberCPU is the CPU time so far of each replica of a fleet target (nil
// for a single server).
func memberCPU(t *benchTarget) []float64 {
	var out []float64
	for _, m := range t.members {
		s, _ := m.cpuSeconds()
		out = append(out, s)
	}
	return out
}

// drive calls call from n goroutines until d has passed and returns the
// latencies (ns) of the calls that succeeded.
func drive(ctx context.Context, n int, d time.Duration, call func(int) error, done *atomic.Int64) ([]int64, int64, error) {
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var all []int64
	var errs atomic.Int64
	var firstErr error
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]int64, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(deadline) {
					break
				}
				if err := call(w); err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					continue
				}
				lat = append(lat, int64(time.Since(t0)))
				if done != nil {
					done.Add(1)
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return all, errs.Load(), firstErr
}

func printReport(w io.Writer, r benchReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	durability := r.Synchronous // PostgreSQL's arrives as synchronous_commit=…
	if !strings.Contains(durability, "=") {
		durability = "synchronous=" + durability
	}
	if r.CommitDelay != "" {
		durability += ", commit delay " + r.CommitDelay
	}
	if r.RandomKeys {
		durability += ", random idempotency keys"
	}
	fmt.Fprintf(w, "\npaymentd bench: %s servers (%d on %s), concurrency %d, %s per scenario, %s, GOMAXPROCS %d, preloaded %d payments, instrumentation %s\n",
		r.Mode, r.Replicas, r.Backend, r.Concurrency, time.Duration(r.DurationSeconds*float64(time.Second)), durability,
		r.GOMAXPROCS, r.Preloaded, r.Instrumentation)
	if r.Replicas > 1 {
		fmt.Fprintf(w, "(%d paymentd replicas on one database, GOMAXPROCS %d each, callers spread evenly: server CPU is their sum, peak RSS the largest one's)\n", r.Replicas, r.ReplicaProcs)
	}
	switch r.Mode {
	case "inprocess":
		fmt.Fprintln(w, "(inprocess: server CPU and RSS include the load generator, which runs in the same process)")
	case "external":
		fmt.Fprintln(w, "(external: the echo baselines run as children on this machine; server CPU is read only with --server-pid)")
	}
	fmt.Fprintln(w)
	fmt.Fprintln(tw, "scenario\trps\tp50 ms\tp99 ms\tp99.9 ms\terrors\tratio\tp99 ×\tvs\tsrv µs/req\tsrv ×\tdb µs/req\tbench µs/req\tsrv cpu s\tpeak RSS MB\tcommits/s\tbatch\t")
	for _, x := range r.Results {
		ratio, p99x, cpux := "-", "-", "-"
		if x.Baseline != "" {
			ratio, p99x = fmt.Sprintf("%.2f", x.Ratio), fmt.Sprintf("%.2f", x.P99Ratio)
		}
		if x.ServerCPURatio > 0 {
			cpux = fmt.Sprintf("%.2f", x.ServerCPURatio)
		}
		srv, gen, cpu, rss, dbus := "-", "-", "-", "-", "-"
		if x.DBCPUus > 0 {
			dbus = fmt.Sprintf("%.1f", x.DBCPUus)
		}
		if x.ServerCPUus > 0 {
			srv, cpu = fmt.Sprintf("%.1f", x.ServerCPUus), fmt.Sprintf("%.1f", x.CPUSeconds)
		}
		if x.BenchCPUus > 0 {
			gen = fmt.Sprintf("%.1f", x.BenchCPUus)
		}
		if x.PeakRSSMB > 0 {
			rss = fmt.Sprintf("%.0f", x.PeakRSSMB)
		}
		commits, batch := "-", "-"
		if x.Commits > 0 {
			commits, batch = fmt.Sprintf("%.0f", float64(x.Commits)/r.DurationSeconds), fmt.Sprintf("%.1f", x.MeanBatch)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", x.Scenario, x.RPS, x.P50ms, x.P99ms, x.P999ms,
			x.Errors, ratio, p99x, x.Baseline, srv, cpux, dbus, gen, cpu, rss, commits, batch)
	}
	tw.Flush()
	if r.DBPayments > 0 {
		fmt.Fprintf(w, "\ndatabase: %d payments, %.1f MB, %.0f bytes per payment (payment + event + ledger entries + idempotency record)\n",
			r.DBPayments, float64(r.DBBytes)/(1<<20), r.DBBytesPerPay)
	}
	for _, x := range r.Results {
		if x.FirstError != "" {
			fmt.Fprintf(w, "first error in %s: %s\n", x.Scenario, x.FirstError)
		}
	}
}

func progressBar(w io.Writer, label string, done, total int, elapsed time.Duration) {
	const width = 40
	filled := width * done / max(total, 1)
	fmt.Fprintf(w, "\r%s [%s%s] %d/%d %.0fs", label, strings.Repeat("#", filled), strings.Repeat(".", width-filled), done, total, elapsed.Seconds())
}

type echoServer struct {
	benchv1.UnimplementedEchoServiceServer
}

func (echoServer) Echo(_ context.Context, req *benchv1.EchoRequest) (*benchv1.EchoResponse, error) {
	return &benchv1.EchoResponse{Payload: req.Payload}, nil
}

func dialN(addr string, n int) ([]*grpc.ClientConn, error) {
	conns := make([]*grpc.ClientConn, n)
	for i := range conns {
		c, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		conns[i] = c
	}
	return conns, nil
}

// post makes one REST POST with a JSON body (send).
func post(c *http.Client, url, auth string, body []byte, headers ...string) error {
	return send(c, http.MethodPost, url, auth, body, headers...)
}

// send makes one REST call (a JSON body if body is not nil) and reads the
// whole answer, which must be 200.
func send(c *http.Client, method, url, auth string, body []byte, headers ...string) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	return nil
}

// cpuSeconds is the process's user+system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// procCPUSeconds reads another process's user+system CPU time from
// /proc/<pid>/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func procCPUSeconds(pid int) (float64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const clockTicks = 100 // USER_HZ, fixed at 100 on every Linux architecture Go supports
	return float64(utime+stime) / clockTicks, true
}

// threadCPUSeconds is the CPU time of a single-threaded process, such as a
// PostgreSQL backend, in nanoseconds from /proc/<pid>/schedstat (its
// first field), which /proc/<pid>/stat rounds to 10 ms clock ticks.
func threadCPUSeconds(pid int) (float64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/schedstat")
	if err != nil {
		return procCPUSeconds(pid)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return procCPUSeconds(pid)
	}
	ns, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return procCPUSeconds(pid)
	}
	return float64(ns) / 1e9, true
}

// resetPeakRSS resets a process's peak-RSS mark (Linux; dir is /proc/self
// or /proc/<pid>), so that each scenario reports its own peak.
func resetPeakRSS(dir string) { _ = os.WriteFile(dir+"/clear_refs", []byte("5"), 0) }

// peakRSS reads a process's peak resident set size in bytes (VmHWM).
func peakRSS(dir string) int64 {
	b, err := os.ReadFile(dir + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
