package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"google.golang.org/grpc"

	benchv1 "github.com/paymentd/paymentd/gen/paymentd/bench/v1"
	"github.com/paymentd/paymentd/service"
	"github.com/paymentd/paymentd/store"
)

// benchServerReady is the one line a `paymentd bench-server` child writes
// on stdout once it serves: where to reach it and, for paymentd, the test
// key of its throw-away account. The pipe goes only to the parent bench.
type benchServerReady struct {
	GRPC string `json:"grpc"`
	HTTP string `json:"http,omitempty"`
	Key  string `json:"key,omitempty"`
	PID  int    `json:"pid"`
	// Procs is the child's GOMAXPROCS: a fleet's replicas share the cores.
	Procs int `json:"gomaxprocs"`
}

// benchServerStats answers the parent's "stats" request: the store's
// group-commit counters and the database's size.
type benchServerStats struct {
	Batches  int64 `json:"batches"`
	Ops      int64 `json:"ops"`
	Payments int64 `json:"payments"`
	Bytes    int64 `json:"bytes"`
}

// benchServerCPU answers the parent's "cpu" request: the child's own CPU
// time (user + system, all threads) from getrusage, which counts in
// microseconds where /proc/<pid>/stat counts 10 ms clock ticks, so that a
// short scenario on a loaded machine is not rounded to nothing.
type benchServerCPU struct {
	Seconds float64 `json:"cpu_seconds"`
}

// benchServer is the hidden `paymentd bench-server` command: the server side
// of `paymentd bench`, run as a child process so that the bench can read the
// server's own CPU time apart from the load generator's. With --echo it is
// the bare gRPC echo baseline; otherwise it is paymentd as `serve` runs it,
// on a temporary database with one test key, plus the echo service behind
// the gateway for the REST baseline; --instrumentation=off serves it without
// metrics and tracing. It serves until its stdin closes, and
// answers one-line requests on stdin ("stats", "cpu", "free") with one JSON line.
func benchServer(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	var (
		echoOnly                               bool
		dir, db, synchronous, cpuProf, memProf string
		preload, writers                       int
		commitDelay                            time.Duration
		instr                                  instrumentation
	)
	fs := newFlagSet("bench-server", stderr)
	fs.BoolVar(&echoOnly, "echo", false, "serve only the bare gRPC echo service (the baseline)")
	fs.StringVar(&dir, "dir", "", "directory for the temporary database (default: the system temp dir)")
	fs.StringVar(&db, "db", "", "serve this database, which the parent bench has prepared (its account and key), instead of a temporary one")
	fs.StringVar(&synchronous, "synchronous", "FULL", "SQLite synchronous pragma")
	fs.IntVar(&preload, "preload", 0, "payments to write before serving, through the store's batch path")
	fs.IntVar(&writers, "db-writers", 0, "group-commit loops on a PostgreSQL --db (0: the store's default)")
	fs.DurationVar(&commitDelay, "commit-delay", store.DefaultCommitDelay, "SQLite writer's commit delay (0: never wait)")
	fs.StringVar(&cpuProf, "cpuprofile", "", "write a CPU profile of the server to this file")
	fs.StringVar(&memProf, "memprofile", "", "write the server's allocation profile to this file when it stops")
	instr.register(fs)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	ready := benchServerReady{PID: os.Getpid(), Procs: runtime.GOMAXPROCS(0)}
	var stats func() (benchServerStats, error)
	if echoOnly {
		bare := grpc.NewServer()
		benchv1.RegisterEchoServiceServer(bare, echoServer{})
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		go func() { _ = bare.Serve(l) }()
		defer bare.Stop()
		ready.GRPC = l.Addr().String()
		stats = func() (benchServerStats, error) { return benchServerStats{}, nil }
	} else {
		var st *store.Store
		var srvs *servers
		var err error
		if db != "" {
			if st, err = store.Open(ctx, db, benchStoreOptions(db, synchronous, writers, commitDelay)); err != nil {
				return err
			}
			if srvs, err = serveBench(ctx, st, instr); err != nil {
				st.Close()
				return err
			}
		} else {
			tmp, err := os.MkdirTemp(dir, "paymentd-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			if st, srvs, ready.Key, err = startBenchPaymentd(ctx, filepath.Join(tmp, "bench.db"), benchStoreOptions("", synchronous, 0, commitDelay), preload, instr, stderr); err != nil {
				return err
			}
		}
		defer st.Close()
		defer srvs.stop(time.Second)
		ready.GRPC, ready.HTTP = srvs.grpcAddr.String(), srvs.httpAddr.String()
		stats = func() (benchServerStats, error) { return storeStats(ctx, st) }
	}
	if cpuProf != "" {
		f, err := os.Create(cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if memProf != "" {
		defer writeAllocProfile(memProf, stderr)
	}
	// The preload's garbage is the benchmark's own, not the service's.
	debug.FreeOSMemory()

	enc := json.NewEncoder(stdout)
	if err := enc.Encode(ready); err != nil {
		return err
	}
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		var reply any = struct{}{}
		switch sc.Text() {
		case "stats":
			s, err := stats()
			if err != nil {
				return err
			}
			reply = s
		case "cpu":
			reply = benchServerCPU{Seconds: cpuSeconds()}
		case "free":
			debug.FreeOSMemory()
		default:
			return fmt.Errorf("bench-server: unknown request %q", sc.Text())
		}
		if err := enc.Encode(reply); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}

// startBenchPaymentd opens the store at path (a fresh one, or a throw-away
// database the bench may add to), adds the bench's account and test key,
// optionally preloads payments, and serves paymentd on it (serveBench).
func startBenchPaymentd(ctx context.Context, path string, o store.Options, preload int, instr instrumentation, stderr io.Writer) (*store.Store, *servers, string, error) {
	st, err := store.Open(ctx, path, o)
	if err != nil {
		return nil, nil, "", err
	}
	secret, err := benchAccount(ctx, st, preload, stderr)
	if err != nil {
		st.Close()
		return nil, nil, "", err
	}
	srvs, err := serveBench(ctx, st, instr)
	if err != nil {
		st.Close()
		return nil, nil, "", err
	}
	return st, srvs, secret, nil
}

// benchAccount adds the bench's own account and test key to st (on a shared
// database, other data stays apart: every scenario is scoped to this
// account), preloads its payments, and returns the key's secret.
func benchAccount(ctx context.Context, st *store.Store, preload int, stderr io.Writer) (string, error) {
	acct := &store.Account{ID: service.NewID(service.PrefixAccount), Name: "bench"}
	secret, key := newKey(acct.ID, false, []string{service.ScopeWrite})
	if err := st.Write(ctx, func(tx *store.Tx) error {
		acct.Created, key.Created = tx.Now(), tx.Now()
		if err := tx.InsertAccount(acct); err != nil {
			return err
		}
		return tx.InsertAPIKey(key)
	}); err != nil {
		return "", err
	}
	if preload > 0 {
		fmt.Fprintf(stderr, "preloading %d payments…\n", preload)
		start := time.Now()
		err := service.SeedPayments(ctx, st, acct.ID, false, preload, 2000, func(done int) {
			progressBar(stderr, "preload", done, preload, time.Since(start))
		})
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(stderr, "preloaded %d payments in %s (%.0f/s)\n", preload, time.Since(start).Round(time.Millisecond),
			float64(preload)/time.Since(start).Seconds())
		// A database that grew to this size over time has had its ledger
		// checkpointed and its tables vacuumed meanwhile; do both now, so
		// that the scenarios do not measure that catching up instead.
		start = time.Now()
		if _, err := st.CheckpointLedger(ctx, 1); err != nil {
			return "", err
		}
		if err := st.Maintain(ctx); err != nil {
			return "", err
		}
		fmt.Fprintf(stderr, "checkpointed the ledger and ran the database's maintenance in %s\n", time.Since(start).Round(time.Millisecond))
	}
	return secret, nil
}

// storeStats reads the store's group-commit counters and the database's size.
func storeStats(ctx context.Context, st *store.Store) (benchServerStats, error) {
	b, o := st.WriterStats()
	s, err := st.Stats(ctx)
	return benchServerStats{Batches: b, Ops: o, Payments: s.Payments, Bytes: s.Bytes}, err
}

// serveBench serves paymentd on st on loopback as `serve` runs it (rate
// limit off: one key drives all the load), with the echo service public
// behind the same gateway for the REST baseline.
func serveBench(ctx context.Context, st *store.Store, instr instrumentation) (*servers, error) {
	log := slog.New(slog.DiscardHandler)
	svc := service.New(service.Config{Store: st, Logger: log, Environment: "bench", Build: build(),
		RateLimit: -1, PublicServices: []string{"paymentd.bench.v1.EchoService"}, InstrumentationOff: instr.off})
	srvs, err := startServers(ctx, svc, "127.0.0.1:0", "127.0.0.1:0", log,
		func(s *grpc.Server) { benchv1.RegisterEchoServiceServer(s, echoServer{}) },
		benchv1.RegisterEchoServiceHandler)
	return srvs, err
}

// writeAllocProfile writes the process's allocation profile to path; a
// failure is reported, not returned, since it happens as the server stops.
func writeAllocProfile(path string, stderr io.Writer) {
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "paymentd bench: memory profile: %v\n", err)
	}
}
