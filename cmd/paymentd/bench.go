package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
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
}

type benchConfig struct {
	concurrency          int
	duration, warmup     time.Duration
	preload              int
	scenarios, jsonOut   string
	synchronous, workDir string
	cpuProfile           string
}

// benchResult is one row of the table (and of --json).
type benchResult struct {
	Scenario   string  `json:"scenario"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	RPS        float64 `json:"rps"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	P999ms     float64 `json:"p999_ms"`
	Baseline   string  `json:"baseline,omitempty"`
	Ratio      float64 `json:"ratio,omitempty"`
	CPUSeconds float64 `json:"cpu_seconds"`
	PeakRSSMB  float64 `json:"peak_rss_mb"`
	FirstError string  `json:"first_error,omitempty"`
	Commits    int64   `json:"commits"`
	MeanBatch  float64 `json:"mean_batch"`
}

type benchReport struct {
	Concurrency     int           `json:"concurrency"`
	DurationSeconds float64       `json:"duration_seconds"`
	Preloaded       int           `json:"preloaded_payments"`
	Synchronous     string        `json:"synchronous"`
	Results         []benchResult `json:"results"`
	DBBytesPerPay   float64       `json:"db_bytes_per_payment"`
	DBPayments      int64         `json:"db_payments"`
	DBBytes         int64         `json:"db_bytes"`
	GOMAXPROCS      int           `json:"gomaxprocs"`
}

func bench(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := benchConfig{}
	fs := newFlagSet("bench", stderr)
	fs.IntVar(&c.concurrency, "concurrency", 50, "concurrent callers per scenario")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time per scenario")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured warm-up per scenario")
	fs.IntVar(&c.preload, "preload", 0, "payments to write before the scenarios, through the store's batch path")
	fs.StringVar(&c.scenarios, "scenarios", "all", "comma-separated subset of: echo,create,get,list,refund,rest-echo,rest-create")
	fs.StringVar(&c.jsonOut, "json", "", "also write the results as JSON to this file (- for stdout)")
	fs.StringVar(&c.synchronous, "synchronous", "FULL", "SQLite synchronous pragma (serve's default is FULL)")
	fs.StringVar(&c.workDir, "dir", "", "directory for the temporary database (default: the system temp dir)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the scenarios to this file")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if c.concurrency < 1 {
		return errors.New("--concurrency must be at least 1")
	}
	wanted, err := pickScenarios(c.scenarios)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp(c.workDir, "paymentd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, filepath.Join(dir, "bench.db"), store.Options{Synchronous: c.synchronous})
	if err != nil {
		return err
	}
	defer st.Close()
	acct := &store.Account{ID: service.NewID(service.PrefixAccount), Name: "bench"}
	secret, key := newKey(acct.ID, false, []string{service.ScopeWrite})
	if err := st.Write(ctx, func(tx *store.Tx) error {
		acct.Created, key.Created = tx.Now(), tx.Now()
		if err := tx.InsertAccount(acct); err != nil {
			return err
		}
		return tx.InsertAPIKey(key)
	}); err != nil {
		return err
	}

	// paymentd as `serve` runs it (rate limit off: one key drives all the load),
	// plus the echo service, public, for the REST baseline through the same gateway.
	log := slog.New(slog.DiscardHandler)
	svc := service.New(service.Config{Store: st, Logger: log, Environment: "bench", Version: version,
		RateLimit: -1, PublicServices: []string{"paymentd.bench.v1.EchoService"}})
	srvs, err := startServers(ctx, svc, "127.0.0.1:0", "127.0.0.1:0", log,
		func(s *grpc.Server) { benchv1.RegisterEchoServiceServer(s, echoServer{}) },
		benchv1.RegisterEchoServiceHandler)
	if err != nil {
		return err
	}
	defer srvs.stop(time.Second)

	// The baseline: a bare gRPC server with only the echo service.
	bare := grpc.NewServer()
	benchv1.RegisterEchoServiceServer(bare, echoServer{})
	bl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = bare.Serve(bl) }()
	defer bare.Stop()

	nconn := max(1, c.concurrency/25)
	paymentd, err := dialN(srvs.grpcAddr.String(), nconn)
	if err != nil {
		return err
	}
	echoConns, err := dialN(bl.Addr().String(), nconn)
	if err != nil {
		return err
	}
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConns: 2 * c.concurrency, MaxIdleConnsPerHost: 2 * c.concurrency}}
	base := "http://" + srvs.httpAddr.String()
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)

	if c.preload > 0 {
		fmt.Fprintf(stderr, "preloading %d payments…\n", c.preload)
		start := time.Now()
		err := service.SeedPayments(ctx, st, acct.ID, false, c.preload, 2000, func(done int) {
			progressBar(stderr, "preload", done, c.preload, time.Since(start))
		})
		fmt.Fprintln(stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "preloaded %d payments in %s (%.0f/s)\n", c.preload, time.Since(start).Round(time.Millisecond),
			float64(c.preload)/time.Since(start).Seconds())
	}

	// Payments for get and refund: captured, large enough for every refund of 100.
	pool := make([]string, 0, 1000)
	for i := range cap(pool) {
		resp, err := pb.NewPaymentsServiceClient(paymentd[i%nconn]).CreatePayment(authed, &pb.CreatePaymentRequest{
			Amount: 100_000_000, Currency: "USD", PaymentMethod: "pm_card_visa"})
		if err != nil {
			return fmt.Errorf("seeding payments: %w", err)
		}
		pool = append(pool, resp.Payment.Id)
	}

	// The preload's garbage is the benchmark's own, not the service's: hand
	// it back to the OS so that the scenarios' peak RSS is theirs.
	debug.FreeOSMemory()

	payload := strings.Repeat("x", 120) // about a payment request's size
	createBody := []byte(`{"amount":2000,"currency":"USD","payment_method":"pm_card_visa","description":"bench"}`)
	echoBody := []byte(`{"payload":"` + payload + `"}`)
	var seq atomic.Int64
	calls := map[string]func(worker int) error{
		"echo": func(w int) error {
			_, err := benchv1.NewEchoServiceClient(echoConns[w%nconn]).Echo(ctx, &benchv1.EchoRequest{Payload: payload})
			return err
		},
		"create": func(w int) error {
			ictx := metadata.AppendToOutgoingContext(authed, "idempotency-key", "bench-"+strconv.FormatInt(seq.Add(1), 10))
			_, err := pb.NewPaymentsServiceClient(paymentd[w%nconn]).CreatePayment(ictx, &pb.CreatePaymentRequest{
				Amount: 2000, Currency: "USD", PaymentMethod: "pm_card_visa", Description: "bench"})
			return err
		},
		"get": func(w int) error {
			_, err := pb.NewPaymentsServiceClient(paymentd[w%nconn]).GetPayment(authed, &pb.GetPaymentRequest{Id: pool[rand.IntN(len(pool))]})
			return err
		},
		"list": func(w int) error {
			_, err := pb.NewPaymentsServiceClient(paymentd[w%nconn]).ListPayments(authed, &pb.ListPaymentsRequest{})
			return err
		},
		"refund": func(w int) error {
			ictx := metadata.AppendToOutgoingContext(authed, "idempotency-key", "bench-r-"+strconv.FormatInt(seq.Add(1), 10))
			_, err := pb.NewPaymentsServiceClient(paymentd[w%nconn]).CreateRefund(ictx, &pb.CreateRefundRequest{
				PaymentId: pool[rand.IntN(len(pool))], Amount: proto.Int64(100)})
			return err
		},
		"rest-echo": func(int) error { return post(httpc, base+"/v1/bench/echo", "", echoBody) },
		"rest-create": func(int) error {
			return post(httpc, base+"/v1/payments", "Bearer "+secret, createBody,
				"Idempotency-Key", "bench-h-"+strconv.FormatInt(seq.Add(1), 10))
		},
	}

	report := benchReport{Concurrency: c.concurrency, DurationSeconds: c.duration.Seconds(), Preloaded: c.preload,
		Synchronous: strings.ToUpper(c.synchronous), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	byName := map[string]*benchResult{}
	if c.cpuProfile != "" {
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
	for _, sc := range benchScenarios {
		if !wanted[sc.name] {
			continue
		}
		var before store.Stats
		if sc.name == "create" {
			if before, err = st.Stats(ctx); err != nil {
				return err
			}
		}
		drive(ctx, c.concurrency, c.warmup, calls[sc.name], nil)
		b0, o0 := st.WriterStats()
		r := runScenario(ctx, stderr, sc.name, c, calls[sc.name])
		if b1, o1 := st.WriterStats(); b1 > b0 {
			r.Commits, r.MeanBatch = b1-b0, float64(o1-o0)/float64(b1-b0)
		}
		if b, ok := byName[sc.baseline]; ok && b.RPS > 0 {
			r.Baseline, r.Ratio = sc.baseline, r.RPS/b.RPS
		}
		if sc.name == "create" {
			after, err := st.Stats(ctx)
			if err != nil {
				return err
			}
			if n := after.Payments - before.Payments; n > 0 {
				report.DBBytesPerPay = float64(after.Bytes-before.Bytes) / float64(n)
			}
		}
		report.Results = append(report.Results, r)
		byName[sc.name] = &report.Results[len(report.Results)-1]
	}
	final, err := st.Stats(ctx)
	if err != nil {
		return err
	}
	report.DBPayments, report.DBBytes = final.Payments, final.Bytes
	if report.DBBytesPerPay == 0 && final.Payments > 0 {
		report.DBBytesPerPay = float64(final.Bytes) / float64(final.Payments)
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
func runScenario(ctx context.Context, stderr io.Writer, name string, c benchConfig, call func(int) error) benchResult {
	resetPeakRSS()
	cpu0 := cpuSeconds()
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
	lat, errs, firstErr := drive(ctx, c.concurrency, c.duration, call, &done)
	elapsed := time.Since(start)
	close(stopProgress)
	fmt.Fprintf(stderr, "\r%-12s done: %d requests, %d errors%20s\n", name, len(lat), errs, "")
	r := benchResult{Scenario: name, Requests: int64(len(lat)), Errors: errs, RPS: float64(len(lat)) / elapsed.Seconds(),
		CPUSeconds: cpuSeconds() - cpu0, PeakRSSMB: float64(peakRSS()) / (1 << 20)}
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
	fmt.Fprintf(w, "\npaymentd bench: concurrency %d, %s per scenario, synchronous=%s, GOMAXPROCS %d, preloaded %d payments\n\n",
		r.Concurrency, time.Duration(r.DurationSeconds*float64(time.Second)), r.Synchronous, r.GOMAXPROCS, r.Preloaded)
	fmt.Fprintln(tw, "scenario\trps\tp50 ms\tp99 ms\tp99.9 ms\terrors\tratio\tvs\tcpu s\tpeak RSS MB\tcommits/s\tbatch\t")
	for _, x := range r.Results {
		ratio := "-"
		if x.Baseline != "" {
			ratio = fmt.Sprintf("%.2f", x.Ratio)
		}
		commits, batch := "-", "-"
		if x.Commits > 0 {
			commits, batch = fmt.Sprintf("%.0f", float64(x.Commits)/r.DurationSeconds), fmt.Sprintf("%.1f", x.MeanBatch)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.2f\t%.2f\t%d\t%s\t%s\t%.1f\t%.0f\t%s\t%s\t\n", x.Scenario, x.RPS, x.P50ms, x.P99ms, x.P999ms,
			x.Errors, ratio, x.Baseline, x.CPUSeconds, x.PeakRSSMB, commits, batch)
	}
	tw.Flush()
	fmt.Fprintf(w, "\ndatabase: %d payments, %.1f MB, %.0f bytes per payment (payment + event + ledger entries + idempotency record)\n",
		r.DBPayments, float64(r.DBBytes)/(1<<20), r.DBBytesPerPay)
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

func post(c *http.Client, url, auth string, body []byte, headers ...string) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
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

// resetPeakRSS resets the kernel's peak-RSS mark (Linux), so that each
// scenario reports its own peak.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS reads the process's peak resident set size in bytes (VmHWM).
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
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
