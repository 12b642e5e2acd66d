package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers/aikdata/aikdatafake"
	"github.com/paymentd/paymentd/providers/alppay/alppayfake"
	"github.com/paymentd/paymentd/providers/aslan/aslanfake"
	"github.com/paymentd/paymentd/providers/aspayds/aspaydsfake"
	"github.com/paymentd/paymentd/providers/asyncpay"
	"github.com/paymentd/paymentd/providers/asyncpay/asyncpayfake"
	"github.com/paymentd/paymentd/providers/fakekit"
	"github.com/paymentd/paymentd/store"
)

// The simulation (TigerBeetle's VOPR and Jepsen's bank test are its
// models): from a seed, a random sequence of operations across every
// provider and capability goes through paymentd's REST API, while the fake
// providers misbehave on random calls and paymentd is stopped (gracefully
// or with kill -9) and started again between steps. Then the faults stop,
// the reconciler is left to settle what it can, and every object is
// compared with the fake provider's own books: money at the provider must
// equal money paymentd records, no terminal state may contradict the
// provider, every acknowledged call must be there, and `paymentd check`
// and `paymentd reconcile` must pass. A failing seed prints the command
// that replays it.
var (
	simSeed  = flag.Uint64("sim.seed", 0, "run only this simulation seed (replay)")
	simSeeds = flag.Int("sim.seeds", 4, "how many simulation seeds to run, from -sim.first")
	simFirst = flag.Uint64("sim.first", 1, "the first seed of a -sim.seeds run")
	simSteps = flag.Int("sim.steps", 40, "operations per simulation seed")
	simKnown = flag.Bool("sim.known", false, "also run the operations that hit known violations (see simKnownViolations)")
)

// simKnownViolations are operations the simulation found to break the
// boundary rule, in areas whose fix is under way (issue 10's cases); they
// stay out of the default seed set, named here so that nothing is weakened
// silently, and -sim.known puts them back to see whether they are fixed.
var simKnownViolations = map[string]string{
	// Empty: issue 10 cases 1, 2, 4 and 7 were found here and are fixed; a
	// new violation whose fix is under way is named here until it lands.
}

// simObj is what the driver remembers of one object it created.
type simObj struct {
	kind, id, conn, currency, ref string
	amount                        int64
	// ambiguous says a call on the object got no definite answer.
	ambiguous bool
	// captureUnanswered says a capture of the payment got no definite
	// answer (issue 10 case 2).
	captureUnanswered bool
	// canceled says paymentd answered a cancel of the invoice with 200.
	canceled bool
}

type simRun struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand
	dir  string
	db   string
	cfg  string

	aslan    *aslanfake.Server
	aikdata  *aikdatafake.Server
	asyncpay *asyncpayfake.Server
	aspayds  *aspaydsfake.Server
	alppay   *alppayfake.Server

	grpcAddr, httpAddr string
	proc               *exec.Cmd
	procDone           chan struct{}
	log                *syncBuffer
	liveKey, testKey   string

	objs  []*simObj
	acked map[string]string // object id → status paymentd answered 200 with
	trace []string
	ops   int
	stats map[string]int
}

func TestSimulation(t *testing.T) {
	if testing.Short() {
		t.Skip("the simulation runs paymentd processes")
	}
	seeds := []uint64{}
	if *simSeed != 0 {
		seeds = append(seeds, *simSeed)
	} else {
		for i := range *simSeeds {
			seeds = append(seeds, *simFirst+uint64(i))
		}
	}
	total, totalOps := 0, 0
	faults := map[string]int{}
	for _, seed := range seeds {
		ok := t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := newSimRun(t, seed)
			r.drive(*simSteps)
			r.quiesceAndCheck()
			totalOps += r.ops
			for k, v := range r.stats {
				faults[k] += v
			}
		})
		total++
		if !ok {
			t.Logf("seed %d failed; replay: go test ./cmd/paymentd -run 'TestSimulation' -sim.seed=%d -sim.steps=%d -v", seed, seed, *simSteps)
		}
	}
	keys := make([]string, 0, len(faults))
	for k := range faults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, faults[k])
	}
	t.Logf("simulation: %d seed(s), %d operations;%s", total, totalOps, b.String())
}

func newSimRun(t *testing.T, seed uint64) *simRun {
	r := &simRun{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed)), dir: t.TempDir(),
		acked: map[string]string{}, stats: map[string]int{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d trace (last 60 steps):\n%s", seed, strings.Join(r.trace[max(0, len(r.trace)-60):], "\n"))
			t.Logf("replay: go test ./cmd/paymentd -run 'TestSimulation' -sim.seed=%d -sim.steps=%d -v", seed, *simSteps)
		}
	})
	r.aslan = aslanfake.New(pvAslanKey)
	r.aikdata = aikdatafake.New(pvAikdataToken)
	r.asyncpay = asyncpayfake.New(pvAsyncpayKey, asyncpay.Paths{})
	r.aspayds = aspaydsfake.New(pvAspaydsKey, pvAspaydsSecret)
	r.alppay = alppayfake.New(pvAlppayKey, pvAlppaySecret)
	t.Cleanup(func() {
		r.stop(true)
		for _, f := range []interface{ Close() }{r.aslan, r.aikdata, r.asyncpay, r.aspayds, r.alppay} {
			f.Close()
		}
	})
	r.db = filepath.Join(r.dir, "paymentd.db")
	r.cfg = filepath.Join(r.dir, "paymentd.yaml")
	conn := func(name, provider, url, creds string) string {
		return fmt.Sprintf("  - {name: %s, provider: %s, mode: live, base_url: '%s', credentials: {%s}, timeout: 400ms, max_attempts: 2}\n",
			name, provider, url, creds)
	}
	config := "connections:\n" +
		conn("aslan-live", "aslan", r.aslan.URL(), "api_key: ASLAN_LIVE_KEY") +
		conn("aikdata-live", "aikdata", r.aikdata.URL(), "token: AIKDATA_TOKEN") +
		conn("asyncpay-live", "asyncpay", r.asyncpay.URL(), "secret_key: ASYNCPAY_SECRET_KEY") +
		strings.TrimSuffix(conn("aspayds-live", "aspayds", r.aspayds.URL(), "api_key: ASPAYDS_KEY, api_secret: ASPAYDS_SECRET"), "}\n") +
		", options: {currency: BDT}}\n" +
		conn("alppay-live", "alppay", r.alppay.URL(), "api_key: ALPPAY_API_KEY, hmac_secret: ALPPAY_HMAC_SECRET") + `routes:
  - {operation: payments, mode: live, currency: USD, connections: [aslan-live]}
  - {operation: payments, mode: live, currency: EUR, connections: [aikdata-live]}
  - {operation: payments, mode: live, currency: NGN, connections: [asyncpay-live]}
  - {operation: invoices, mode: live, currency: BDT, connections: [aspayds-live]}
  - {operation: invoices, mode: live, currency: USDT, connections: [alppay-live]}
  - {operation: payouts, mode: live, currency: BDT, connections: [aspayds-live]}
  - {operation: payouts, mode: live, currency: NGN, connections: [asyncpay-live]}
`
	if err := os.WriteFile(r.cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	r.grpcAddr, r.httpAddr = pvClosedAddr(t), pvClosedAddr(t)
	r.start()
	r.liveKey, _ = createKey(t, r.db, "live", "read,write,payouts", "")
	r.testKey, _ = createKey(t, r.db, "test", "read,write", "")
	pvSetLiveMethods(t, r.db, `{"payout_methods":[
		{"id":"1","name":"bKash","type":"mobile_banking","currency":"BDT","min_amount":10000,"max_amount":5000000,
		 "fee":{"fixed_amount":0,"basis_points":0},"account_format":"01XXXXXXXXX"},
		{"id":"ch_ngn_bank","name":"NGN bank transfer","type":"bank_transfer","currency":"NGN","min_amount":100000,
		 "max_amount":500000000,"fee":{"fixed_amount":5000,"basis_points":0},"account_format":"10-digit NUBAN"}]}`)
	return r
}

func (r *simRun) logf(format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf("[%d] ", r.ops)+fmt.Sprintf(format, args...))
}

// start runs `paymentd serve` as a child process (this test binary acting
// as paymentd), on the run's fixed ports so provider callbacks and the
// driver find it again after a restart.
func (r *simRun) start() {
	t := r.t
	args := []string{"serve", "--db", r.db, "--config", r.cfg, "--grpc-addr", r.grpcAddr, "--http-addr", r.httpAddr,
		"--rate-limit", "-1", "--log-level", "warn", "--provider-timeout", "400ms",
		"--reconcile-schedule", "50ms,100ms,200ms", "--reconcile-interval", "50ms", "--allow-private-webhooks"}
	var lastErr error
	for attempt := 0; attempt < 50; attempt++ {
		var cmd *exec.Cmd
		var stdout io.Reader
		cmd, stdout, r.log = startServeChild(t, args)
		ready := make(chan bool, 1)
		go func() {
			sc := bufio.NewScanner(stdout)
			seen := false
			for sc.Scan() {
				if !seen && servingLine.MatchString(sc.Text()) {
					seen = true
					ready <- true
				}
			}
			if !seen {
				ready <- false
			}
		}()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case ok := <-ready:
			if ok {
				r.proc, r.procDone = cmd, done
				return
			}
			<-done
			lastErr = fmt.Errorf("serve exited: %s", r.log.String())
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			lastErr = fmt.Errorf("serve did not start within 15s: %s", r.log.String())
		}
		// The ports of a killed server can take a moment to be free again.
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("seed %d: could not start paymentd: %v", r.seed, lastErr)
}

// startServeChild starts this test binary as `paymentd <args>` in a child
// process (so that SIGKILL is a real crash), with the provider credentials
// of pvEnv, and returns it, its stdout and the buffer its stderr goes to.
func startServeChild(t *testing.T, args []string) (*exec.Cmd, io.Reader, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), runAsMainEnv+"=1")
	for k, v := range pvEnv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	log := &syncBuffer{}
	cmd.Stderr = log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout, log
}

// stop ends the server: with SIGTERM (a graceful close of the server and
// its store) or with SIGKILL (a crash, nothing flushed but what was
// committed).
func (r *simRun) stop(kill bool) {
	if r.proc == nil {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = r.proc.Process.Signal(sig)
	select {
	case <-r.procDone:
	case <-time.After(20 * time.Second):
		_ = r.proc.Process.Kill()
		<-r.procDone
		r.t.Errorf("seed %d: paymentd did not stop within 20s of SIGTERM", r.seed)
	}
	r.proc = nil
}

var simClient = &http.Client{Timeout: 15 * time.Second}

// rest sends one REST request with the live key; a transport error is an
// answer too (code 0).
func (r *simRun) rest(method, path, idemKey, body string) (int, map[string]any) {
	return r.restAs(r.liveKey, method, path, idemKey, body)
}

// restAs is rest with another API key.
func (r *simRun) restAs(key, method, path, idemKey, body string) (int, map[string]any) {
	return restCall(r.httpAddr, method, path, key, idemKey, body)
}

// restCall sends one REST request to the paymentd at addr (no body when
// body is empty, no Idempotency-Key when idemKey is empty); a transport
// error is an answer too (code 0).
func restCall(addr, method, path, key, idemKey, body string) (int, map[string]any) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://"+addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := simClient.Do(req)
	if err != nil {
		return 0, map[string]any{"transport_error": err.Error()}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		return resp.StatusCode, map[string]any{"unparsed": string(raw)}
	}
	return resp.StatusCode, out
}

func num(v any) int64 {
	switch n := v.(type) {
	case float64:
		return int64(n)
	case string:
		var x int64
		_, _ = fmt.Sscan(n, &x)
		return x
	}
	return 0
}

func errCode(body map[string]any) string {
	if e, ok := body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func (r *simRun) pick(kind string, ok func(*simObj) bool) *simObj {
	var c []*simObj
	for _, o := range r.objs {
		if o.kind == kind && (ok == nil || ok(o)) {
			c = append(c, o)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[r.rng.IntN(len(c))]
}

func (r *simRun) fake(conn string) *fakekit.Kit {
	switch conn {
	case "aslan-live":
		return r.aslan.Kit
	case "aikdata-live":
		return r.aikdata.Kit
	case "asyncpay-live":
		return r.asyncpay.Kit
	case "aspayds-live":
		return r.aspayds.Kit
	case "alppay-live":
		return r.alppay.Kit
	}
	return nil
}

var simFaultKinds = []fakekit.FaultKind{fakekit.Refuse, fakekit.ApplyThenHang, fakekit.ApplyThenFail, fakekit.Malformed,
	fakekit.Oversize, fakekit.MismatchAmount, fakekit.MismatchCurrency, fakekit.UnknownStatus}

// maybeFault injects, with probability 0.3, one fault on one of the next
// POSTs (the money-moving calls) to the connection's fake.
func (r *simRun) maybeFault(conn string, calls int) {
	if r.rng.Float64() >= 0.3 {
		return
	}
	f := fakekit.Fault{Kind: simFaultKinds[r.rng.IntN(len(simFaultKinds))], Op: "POST", Nth: 1 + r.rng.IntN(calls)}
	switch f.Kind {
	case fakekit.Refuse:
		f.Status = []int{429, 503}[r.rng.IntN(2)]
	case fakekit.ApplyThenFail:
		f.Status = []int{500, 502, 504}[r.rng.IntN(3)]
	}
	r.fake(conn).Inject(f)
	r.stats["fault:"+f.Kind.String()]++
	r.logf("  fault %s at %s", f, conn)
}

// ambiguous reports an answer that is not a definite outcome.
func ambiguous(code int) bool { return code == 0 || code >= 500 }

// call sends a mutating request and, after an ambiguous answer, sometimes
// retries it with the same idempotency key, as a client should.
//
// unanswered says some answer in the chain was not definite, so the call
// may have acted even if a retry was refused.
func (r *simRun) call(method, path, key, body string) (code int, out map[string]any, unanswered bool) {
	code, out = r.rest(method, path, key, body)
	r.logf("  %s %s %s → %d %v", method, path, body, code, brief(out))
	unanswered = ambiguous(code)
	for tries := 0; ambiguous(code) && tries < 2 && r.rng.IntN(2) == 0; tries++ {
		code, out = r.rest(method, path, key, body)
		r.logf("  retry %s → %d %v", key, code, brief(out))
	}
	return code, out, unanswered
}

func brief(m map[string]any) string {
	if e, ok := m["error"].(map[string]any); ok {
		return fmt.Sprintf("error %v", e["code"])
	}
	if m["transport_error"] != nil {
		return fmt.Sprint(m["transport_error"])
	}
	return fmt.Sprintf("%v %v", m["id"], m["status"])
}

func (r *simRun) ack(body map[string]any) {
	if id, _ := body["id"].(string); id != "" {
		st, _ := body["status"].(string)
		r.acked[id] = st
	}
}

var simPaymentConns = map[string]string{"USD": "aslan-live", "EUR": "aikdata-live", "NGN": "asyncpay-live"}

func (r *simRun) drive(steps int) {
	conns := []string{"aslan-live", "aikdata-live", "asyncpay-live", "aspayds-live", "alppay-live"}
	for step := range steps {
		r.ops++
		key := fmt.Sprintf("sim-%d-%d", r.seed, step)
		if r.rng.IntN(10) == 0 {
			// Reads go wrong too: the reconciler, the payout processor and
			// GETs that ask the provider must not settle on a bad answer.
			conn := conns[r.rng.IntN(len(conns))]
			f := fakekit.Fault{Kind: simFaultKinds[r.rng.IntN(len(simFaultKinds))], Op: "GET", Nth: 1 + r.rng.IntN(3)}
			r.fake(conn).Inject(f)
			r.stats["read-fault:"+f.Kind.String()]++
			r.logf("read fault %s at %s", f, conn)
		}
		switch n := r.rng.IntN(100); {
		case n < 22:
			r.opPay(key)
		case n < 32:
			r.opCapture(key)
		case n < 38:
			r.opCancel(key)
		case n < 50:
			r.opRefund(key)
		case n < 56:
			r.opInvoice(key, step)
		case n < 60:
			r.opPageInvoice(key, step)
		case n < 64:
			r.opPayInvoice()
		case n < 66:
			r.opCancelInvoice(key)
		case n < 72:
			r.opPayPage()
		case n < 80:
			r.opPayout(key, step)
		case n < 87:
			r.opSettlePayout()
		case n < 90:
			r.opRead()
		case n < 93:
			r.opBurst(key)
		default:
			kill := r.rng.IntN(2) == 0
			r.logf("restart (kill -9: %v)", kill)
			r.stats["restart"]++
			if kill {
				r.stats["kill-9"]++
			}
			r.stop(kill)
			r.start()
		}
	}
}

func (r *simRun) opPay(key string) {
	cur := []string{"USD", "EUR", "NGN"}[r.rng.IntN(3)]
	amount := int64(1000 + r.rng.IntN(19000))
	if cur == "NGN" {
		amount = int64(5000_00 + r.rng.IntN(50000_00))
	}
	manual := cur == "USD" && r.rng.IntN(2) == 0
	body := fmt.Sprintf(`{"amount":%d,"currency":"%s","payment_method":"pm_sim"`, amount, cur)
	if manual {
		body += `,"capture_method":"manual"`
	}
	body += "}"
	conn := simPaymentConns[cur]
	r.logf("pay %s", key)
	r.maybeFault(conn, 2)
	code, out, unanswered := r.call("POST", "/v1/payments", key, body)
	r.stats["op:pay"]++
	if id, _ := out["id"].(string); id != "" {
		if code == 200 {
			r.ack(out)
		}
		r.objs = append(r.objs, &simObj{kind: "payment", id: id, conn: conn, currency: cur, amount: amount, ambiguous: unanswered})
	}
}

func (r *simRun) status(path string) (string, map[string]any) {
	code, out := r.rest("GET", path, "", "")
	if code != 200 {
		return "", out
	}
	s, _ := out["status"].(string)
	return s, out
}

func (r *simRun) opCapture(key string) {
	o := r.pick("payment", func(o *simObj) bool { return o.conn == "aslan-live" })
	if o == nil {
		return
	}
	st, _ := r.status("/v1/payments/" + o.id)
	if st != "requires_capture" {
		return
	}
	body := "{}"
	if r.rng.IntN(2) == 0 {
		// Aslan cannot capture part of an authorization (issue 10 case
		// 1): paymentd must refuse before any call, and the books show
		// whether it did.
		body = fmt.Sprintf(`{"amount":%d}`, o.amount/2)
	}
	r.logf("capture %s", o.id)
	r.maybeFault(o.conn, 1)
	code, out, unanswered := r.call("POST", "/v1/payments/"+o.id+"/capture", key, body)
	r.stats["op:capture"]++
	if code == 200 {
		r.ack(out)
	}
	if unanswered {
		o.ambiguous, o.captureUnanswered = true, true
	}
}

func (r *simRun) opCancel(key string) {
	o := r.pick("payment", func(o *simObj) bool { return o.conn == "aslan-live" })
	if o == nil {
		return
	}
	st, _ := r.status("/v1/payments/" + o.id)
	if st != "requires_capture" {
		return
	}
	r.logf("cancel %s", o.id)
	code, out, _ := r.call("POST", "/v1/payments/"+o.id+"/cancel", key, "{}")
	r.stats["op:cancel"]++
	if code == 200 {
		r.ack(out)
	}
}

func (r *simRun) opRefund(key string) {
	o := r.pick("payment", nil)
	if o == nil {
		return
	}
	_, p := r.status("/v1/payments/" + o.id)
	left := num(p["amount_captured"]) - num(p["amount_refunded"])
	if left <= 0 {
		return
	}
	amount := left
	if r.rng.IntN(2) == 0 && left > 100 {
		amount = 1 + r.rng.Int64N(left-1)
	}
	r.logf("refund %s of %s", key, o.id)
	r.maybeFault(o.conn, 1)
	code, out, _ := r.call("POST", "/v1/refunds", key, fmt.Sprintf(`{"payment_id":"%s","amount":%d}`, o.id, amount))
	r.stats["op:refund"]++
	if code == 200 {
		r.ack(out)
	}
}

func (r *simRun) opInvoice(key string, step int) {
	ref := fmt.Sprintf("S%dN%d", r.seed%100000, step)
	var body, conn, cur string
	var amount int64
	if r.rng.IntN(2) == 0 {
		cur, conn, amount = "BDT", "aspayds-live", int64(500_00+r.rng.IntN(4500_00))
		body = fmt.Sprintf(`{"amount":%d,"currency":"BDT","customer":{"name":"Sim"},"transaction_reference":"%s","callback_url":"https://shop.example/cb"}`, amount, ref)
	} else {
		cur, conn, amount = "USDT", "alppay-live", int64(10_000000+r.rng.IntN(90_000000))
		body = fmt.Sprintf(`{"amount":%d,"currency":"USDT","network":"tron","customer":{"id":"42","name":"Sim","email":"sim@example.com"},"transaction_reference":"%s","callback_url":"https://shop.example/cb"}`, amount, ref)
	}
	r.logf("invoice %s", ref)
	r.maybeFault(conn, 1)
	code, out, unanswered := r.call("POST", "/v1/invoices", key, body)
	r.stats["op:invoice"]++
	if id, _ := out["id"].(string); id != "" {
		if code == 200 {
			r.ack(out)
		}
		r.objs = append(r.objs, &simObj{kind: "invoice", id: id, conn: conn, currency: cur, amount: amount, ref: ref, ambiguous: unanswered})
	}
}

// opPageInvoice creates a test-mode invoice, paid on paymentd's hosted
// page through the sandbox.
func (r *simRun) opPageInvoice(key string, step int) {
	ref := fmt.Sprintf("PG%dN%d", r.seed%100000, step)
	amount := int64(500 + r.rng.IntN(5000))
	body := fmt.Sprintf(`{"amount":%d,"currency":"USD","customer":{"name":"Sim"},"transaction_reference":"%s","callback_url":"https://shop.example/cb"}`, amount, ref)
	r.logf("page invoice %s", ref)
	code, out := r.restAs(r.testKey, "POST", "/v1/invoices", key, body)
	r.logf("  → %d %v", code, brief(out))
	r.stats["op:page-invoice"]++
	if id, _ := out["id"].(string); id != "" && code == 200 {
		r.ack(out)
		r.objs = append(r.objs, &simObj{kind: "page-invoice", id: id, conn: "sandbox", currency: "USD", amount: amount, ref: ref})
	}
}

// opPayPage submits the hosted page's form, as a customer's browser does.
func (r *simRun) opPayPage() {
	o := r.pick("page-invoice", nil)
	if o == nil {
		return
	}
	code, inv := r.restAs(r.testKey, "GET", "/v1/invoices/"+o.id, "", "")
	if code != 200 || (inv["status"] != "open" && inv["status"] != "partially_paid") {
		return
	}
	// A second attempt while one is unsettled must be refused by the page
	// (issue 10 case 4); the invoice check below sees whether it was.
	method := "pm_card_visa"
	switch n := r.rng.IntN(20); {
	case n < 5:
		method = "pm_card_timeout"
	case n < 8:
		method = "pm_card_declined"
	}
	form := "action=pay&payment_method=" + method
	req, _ := http.NewRequest("POST", "http://"+r.httpAddr+"/pay/"+o.id, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := invNoRedirects.Do(req)
	status := 0
	if err == nil {
		status = resp.StatusCode
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	r.stats["op:pay-page"]++
	r.logf("pay page %s with %s → %d %v", o.id, method, status, err)
	if method == "pm_card_timeout" {
		o.ambiguous = true
	}
}

// opCancelInvoice cancels a provider-served invoice through paymentd; the
// customer may still pay it on the provider's page afterwards.
func (r *simRun) opCancelInvoice(key string) {
	o := r.pick("invoice", nil)
	if o == nil {
		return
	}
	r.logf("cancel invoice %s", o.id)
	code, out, _ := r.call("POST", "/v1/invoices/"+o.id+"/cancel", key, "{}")
	r.stats["op:cancel-invoice"]++
	if code == 200 {
		r.ack(out)
		o.canceled = true
	}
}

func (r *simRun) opPayInvoice() {
	o := r.pick("invoice", nil)
	if o == nil {
		return
	}
	kit := r.fake(o.conn)
	b, ok := kit.BookFor(o.ref)
	if !ok {
		b, ok = kit.BookFor(o.id)
	}
	if !ok || b.Received >= o.amount {
		return
	}
	amount := o.amount - b.Received
	if r.rng.IntN(3) == 0 {
		amount = 1 + r.rng.Int64N(amount)
	}
	r.logf("pay invoice %s at %s: %d", o.ref, o.conn, amount)
	r.stats["op:pay-invoice"]++
	if o.conn == "alppay-live" {
		_ = r.alppay.PayInvoice(b.ID, amount)
		return
	}
	_ = r.aspayds.PayInvoice(b.ID, amount)
	if b.Received+amount >= o.amount {
		r.webhook("payment.completed", b.ID)
	}
}

// webhook sends the aspayds webhook for an object to paymentd through the
// fake's deliverer, lost, duplicated or held back at random.
func (r *simRun) webhook(event, ref string) {
	h, body, err := r.aspayds.Webhook(event, ref, time.Now())
	if err != nil {
		return
	}
	switch n := r.rng.IntN(6); n {
	case 0:
		r.aspayds.FaultWebhooks(fakekit.LoseWebhook)
		r.stats["webhook:lost"]++
	case 1:
		r.aspayds.FaultWebhooks(fakekit.DuplicateWebhook)
		r.stats["webhook:duplicate"]++
	case 2:
		r.aspayds.FaultWebhooks(fakekit.DelayWebhook)
		r.stats["webhook:out-of-order"]++
	}
	err = r.aspayds.Send("http://"+r.httpAddr+"/v1/provider-webhooks/aspayds-live", h, body)
	r.logf("  webhook %s %s: %v", event, ref, err)
}

func (r *simRun) opPayout(key string, step int) {
	var body, conn, cur string
	var amount int64
	ref := fmt.Sprintf("SP%d-%d", r.seed, step)
	if r.rng.IntN(2) == 0 {
		cur, conn, amount = "BDT", "aspayds-live", int64(100_00+r.rng.IntN(900_00))
		body = fmt.Sprintf(`{"payout_method_id":"1","amount":%d,"recipient_name":"Sim","recipient_account":"01712345678","transaction_reference":"%s"}`, amount, ref)
	} else {
		cur, conn, amount = "NGN", "asyncpay-live", int64(1000_00+r.rng.IntN(5000_00))
		body = fmt.Sprintf(`{"payout_method_id":"ch_ngn_bank","amount":%d,"recipient_name":"Sim","recipient_account":"0123456789","transaction_reference":"%s"}`, amount, ref)
	}
	r.logf("payout %s", ref)
	r.maybeFault(conn, 1)
	code, out, unanswered := r.call("POST", "/v1/payouts", key, body)
	r.stats["op:payout"]++
	if id, _ := out["id"].(string); id != "" {
		if code == 200 {
			r.ack(out)
		}
		r.objs = append(r.objs, &simObj{kind: "payout", id: id, conn: conn, currency: cur, amount: amount, ref: ref, ambiguous: unanswered})
	}
}

func (r *simRun) opSettlePayout() {
	o := r.pick("payout", nil)
	if o == nil {
		return
	}
	kit := r.fake(o.conn)
	b, ok := kit.BookFor(o.id) // aspayds knows the payout by paymentd's id, its transaction_reference
	if !ok {
		b, ok = kit.BookFor(o.ref)
	}
	if !ok || (b.Status != "pending" && b.Status != "processing") {
		return
	}
	status := []string{"completed", "completed", "rejected", "processing"}[r.rng.IntN(4)]
	r.logf("settle payout %s at %s: %s", o.ref, o.conn, status)
	r.stats["op:settle-payout"]++
	if o.conn == "asyncpay-live" {
		_ = r.asyncpay.SettlePayout(b.ID, status)
		return
	}
	_ = r.aspayds.SettlePayout(b.ID, status)
	if r.rng.IntN(2) == 0 {
		r.webhook("payout."+status, b.ID)
	}
}

// opBurst sends concurrent calls on one payment, as clients racing each
// other do: refunds that together ask for more than is left, the same
// refund twice with one idempotency key, or a capture racing a cancel.
func (r *simRun) opBurst(key string) {
	o := r.pick("payment", nil)
	if o == nil {
		return
	}
	_, p := r.status("/v1/payments/" + o.id)
	type req struct{ path, key, body string }
	var reqs []req
	switch st, _ := p["status"].(string); {
	case st == "requires_capture" && !o.ambiguous:
		// A cancel while the capture is in flight must be refused (issue
		// 10 case 2): the books show whether it was.
		reqs = []req{{"/v1/payments/" + o.id + "/capture", key + "-c", "{}"}, {"/v1/payments/" + o.id + "/cancel", key + "-x", "{}"}}
	case st == "succeeded":
		left := num(p["amount_captured"]) - num(p["amount_refunded"])
		if left <= 1 {
			return
		}
		part := fmt.Sprintf(`{"payment_id":"%s","amount":%d}`, o.id, left/2+1)
		reqs = []req{{"/v1/refunds", key + "-a", part}, {"/v1/refunds", key + "-b", part}, {"/v1/refunds", key + "-a", part}}
	default:
		return
	}
	r.maybeFault(o.conn, len(reqs))
	type res struct {
		code int
		out  map[string]any
	}
	results := make([]res, len(reqs))
	done := make(chan int)
	for i, q := range reqs {
		go func() {
			code, out := r.rest("POST", q.path, q.key, q.body)
			results[i] = res{code, out}
			done <- i
		}()
	}
	for range reqs {
		<-done
	}
	r.stats["op:burst"]++
	for i, q := range reqs {
		r.logf("burst %s %s %s → %d %v", q.path, q.key, q.body, results[i].code, brief(results[i].out))
		if results[i].code == 200 {
			r.ack(results[i].out)
		}
		if ambiguous(results[i].code) {
			o.ambiguous = true
			if strings.HasSuffix(q.path, "/capture") {
				o.captureUnanswered = true
			}
		}
	}
}

func (r *simRun) opRead() {
	if len(r.objs) == 0 {
		return
	}
	o := r.objs[r.rng.IntN(len(r.objs))]
	code, out := r.rest("GET", "/v1/"+o.kind+"s/"+o.id, "", "")
	r.logf("read %s %s → %d %v", o.kind, o.id, code, brief(out))
}

// quiesceAndCheck stops the faults, restarts paymentd cleanly, lets the
// reconciler work, and checks every object against the fakes' books until
// they agree or the time is up.
func (r *simRun) quiesceAndCheck() {
	t := r.t
	for _, k := range []*fakekit.Kit{r.aslan.Kit, r.aikdata.Kit, r.asyncpay.Kit, r.aspayds.Kit, r.alppay.Kit} {
		k.Reset()
	}
	_ = r.aspayds.FlushWebhooks()
	r.stop(false)
	r.start()
	var problems, operator, known []string
	deadline := time.Now().Add(8 * time.Second)
	for {
		// Reads of provider-served invoices and payouts ask the provider.
		for _, o := range r.objs {
			if o.kind == "invoice" || o.kind == "payout" {
				r.rest("GET", "/v1/"+o.kind+"s/"+o.id, "", "")
			}
		}
		problems, operator, known = r.compare()
		if (len(problems) == 0 && len(known) == 0 && len(unlisted(operator, r.operatorItems())) == 0) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range problems {
		t.Errorf("seed %d: %s", r.seed, p)
	}
	for _, k := range known {
		r.stats["known-violation"]++
		if *simKnown {
			t.Errorf("seed %d: %s", r.seed, k)
		} else {
			t.Logf("seed %d: KNOWN VIOLATION (not failing without -sim.known): %s", r.seed, k)
		}
	}
	r.stop(false)
	// Every object left unsettled must be listed for an operator.
	listed := r.operatorItems()
	for _, item := range operator {
		id := strings.Fields(item)[1]
		switch {
		case listed[id]:
			r.stats["operator-item"]++
		default:
			t.Errorf("seed %d: %s: left unsettled, and no operator item names it", r.seed, item)
		}
	}
	if t.Failed() {
		lines := strings.SplitAfter(r.log.String(), "\n")
		t.Logf("seed %d: open operator items: %v; last server log lines:\n%s", r.seed, listed, strings.Join(lines[max(0, len(lines)-25):], ""))
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check", "--db", r.db}, noEnv, &out, &out); err != nil {
		t.Errorf("seed %d: paymentd check: %v\n%s", r.seed, err, out.String())
	}
	out.Reset()
	err := run(context.Background(), []string{"reconcile", "--db", r.db, "--config", r.cfg},
		func(k string) string { return pvEnv[k] }, &out, &out)
	if err != nil {
		// Differences about objects with a known violation are that
		// violation seen by reconcile; any other fails the seed.
		other := 0
		for _, line := range strings.Split(out.String(), "\n") {
			if !strings.HasPrefix(line, "DIFF") && !strings.HasPrefix(line, "UNREAD") {
				continue
			}
			isKnown := false
			for _, k := range known {
				// A known violation starts "<kind> <id> …".
				if f := strings.Fields(k); len(f) > 1 && strings.Contains(line, " "+f[1]+" ") {
					isKnown = true
				}
			}
			if !isKnown || *simKnown {
				other++
			}
		}
		if other > 0 {
			t.Errorf("seed %d: paymentd reconcile: %v\n%s", r.seed, err, out.String())
		} else {
			t.Logf("seed %d: paymentd reconcile lists only the known violations:\n%s", r.seed, out.String())
		}
	}
}

// operatorItems returns the objects named by open operator items, read
// from the database read-only (paymentd may be serving).
func (r *simRun) operatorItems() map[string]bool {
	db, err := sql.Open("sqlite", "file:"+r.db+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		r.t.Errorf("seed %d: opening the database for its operator items: %v", r.seed, err)
		return nil
	}
	defer db.Close()
	rows, err := db.Query(`SELECT object_id FROM operator_items WHERE resolved IS NULL`)
	if err != nil {
		r.t.Errorf("seed %d: operator items: %v", r.seed, err)
		return nil
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if rows.Scan(&id) == nil {
			out[id] = true
		}
	}
	return out
}

// unlisted returns the operator entries no open operator item names.
func unlisted(operator []string, listed map[string]bool) []string {
	var out []string
	for _, item := range operator {
		if !listed[strings.Fields(item)[1]] {
			out = append(out, item)
		}
	}
	return out
}

// compare checks paymentd's records against the fakes' books. It returns
// the problems, the objects left unsettled where the provider cannot be
// read (operator items), and the violations of simKnownViolations.
func (r *simRun) compare() (problems, operator, known []string) {
	recs, err := store.ProviderRecords(context.Background(), r.db, "")
	if err != nil {
		return []string{"reading the records: " + err.Error()}, nil, nil
	}
	objs := map[string]*simObj{}
	for _, o := range r.objs {
		objs[o.id] = o
	}
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	byID := map[string]store.ProviderRecord{}
	refunds := map[string][2]int64{} // payment id → succeeded, pending
	pendingRefunds := map[string][]store.ProviderRecord{}
	pagePaid := map[string]int64{} // invoice id → captured by its page payments
	for _, rec := range recs {
		byID[rec.ID] = rec
		if rec.Kind == "payment" && rec.Metadata != "" {
			var md map[string]string
			if json.Unmarshal([]byte(rec.Metadata), &md) == nil && md["invoice_id"] != "" {
				pagePaid[md["invoice_id"]] += rec.Captured
			}
		}
		if rec.Kind == "refund" {
			v := refunds[rec.Reference]
			switch rec.Status {
			case "succeeded":
				v[0] += rec.Amount
			case "pending":
				v[1] += rec.Amount
				pendingRefunds[rec.Reference] = append(pendingRefunds[rec.Reference], rec)
			}
			refunds[rec.Reference] = v
		}
	}
	// Every acknowledged object is there, and no terminal answer was
	// contradicted later.
	for id, st := range r.acked {
		rec, ok := byID[id]
		if !ok {
			bad("%s was acknowledged (%s) but paymentd has no record of it", id, st)
			continue
		}
		if terminalContradiction(rec.Kind, st, rec.Status) {
			bad("%s %s was acknowledged as %s and is now %s", rec.Kind, id, st, rec.Status)
		}
	}
	claimed := map[string]map[string]bool{} // connection → provider book ids paymentd accounts for
	claim := func(conn, id string) {
		if claimed[conn] == nil {
			claimed[conn] = map[string]bool{}
		}
		claimed[conn][id] = true
	}
	for _, rec := range recs {
		if rec.Kind == "invoice" && rec.Provider == "sandbox" {
			// Hosted-page invoices: the invoice never collects more than
			// its amount, and records what its payments captured.
			paid := pagePaid[rec.ID]
			what := fmt.Sprintf("invoice %s (sandbox, %s)", rec.ID, rec.Status)
			switch {
			case paid > rec.Amount:
				bad("%s: its page payments captured %d for an invoice of %d", what, paid, rec.Amount)
			case paid != rec.Paid:
				bad("%s: its page payments captured %d, the invoice records %d paid", what, paid, rec.Paid)
			}
			continue
		}
		kit := r.fake(rec.Provider)
		if kit == nil || rec.Kind == "refund" {
			continue
		}
		var book fakekit.Money
		found := false
		for _, name := range []string{rec.ProviderRef, rec.ID, rec.Reference} {
			if name != "" {
				if book, found = kit.BookFor(name); found {
					break
				}
			}
		}
		if found {
			claim(rec.Provider, book.ID)
		}
		what := fmt.Sprintf("%s %s at %s (%s)", rec.Kind, rec.ID, rec.Provider, rec.Status)
		switch rec.Kind {
		case "payment":
			switch rec.Status {
			case "unknown", "processing":
				if rec.Provider == "aslan-live" {
					operator = append(operator, fmt.Sprintf("%s: provider book %+v", what, book))
				} else {
					bad("%s: not settled by the reconciler; the provider's book is %+v (found %v)", what, book, found)
				}
				continue
			case "requires_capture":
				if !found || book.Captured != 0 || book.Authorized != rec.Amount {
					bad("%s: the provider's book is %+v (found %v); want %d authorized, nothing captured", what, book, found, rec.Amount)
				}
			case "failed", "canceled":
				if found && book.Captured != 0 {
					bad("%s: the provider captured %d %s", what, book.Captured, book.Currency)
				}
			default:
				if !found || book.Captured != rec.Captured {
					bad("%s: paymentd captured %d; the provider's book is %+v (found %v)", what, rec.Captured, book, found)
				}
			}
			rf := refunds[rec.ID]
			if found && (book.Refunded < rf[0] || book.Refunded > rf[0]+rf[1]) {
				bad("%s: refunds succeeded %d and pending %d in paymentd; the provider refunded %d", what, rf[0], rf[1], book.Refunded)
			}
			if rf[1] > 0 {
				for _, rf := range pendingRefunds[rec.ID] {
					operator = append(operator, fmt.Sprintf("refund %s of %s: %d refunded pending (the provider cannot be asked)",
						rf.ID, what, rf.Amount))
				}
			}
		case "invoice":
			if found && book.Received != rec.Paid {
				bad("%s: paymentd has %d paid; the provider received %d", what, rec.Paid, book.Received)
			}
			if rec.Status == "canceled" && found && book.Received > 0 {
				bad("%s: canceled in paymentd, but the provider received %d", what, book.Received)
			}
		case "payout":
			switch {
			case !found && (rec.Status == "completed"):
				bad("%s: the provider has no such payout", what)
			case !found:
			case rec.Status == "completed" && book.PaidOut != rec.Amount:
				bad("%s: the provider paid out %d (book %+v)", what, book.PaidOut, book)
			case (rec.Status == "rejected" || rec.Status == "cancelled") && (book.PaidOut != 0 || book.Pending != 0):
				bad("%s: the provider paid out %d with %d pending", what, book.PaidOut, book.Pending)
			case (rec.Status == "pending" || rec.Status == "processing") && book.PaidOut != 0:
				bad("%s: the provider already paid out %d", what, book.PaidOut)
			case (rec.Status == "pending" || rec.Status == "processing") && book.Pending == 0:
				bad("%s: the provider settled it as %s", what, book.Status)
			}
		}
	}
	// No money at a provider that paymentd does not account for.
	for _, conn := range []string{"aslan-live", "aikdata-live", "asyncpay-live", "aspayds-live", "alppay-live"} {
		books := r.fake(conn).Books()
		ids := slices.Sorted(func(yield func(string) bool) {
			for id := range books {
				if !yield(id) {
					return
				}
			}
		})
		for _, id := range ids {
			b := books[id]
			if claimed[conn][id] {
				continue
			}
			if b.Captured != 0 || b.Received != 0 || b.PaidOut != 0 || b.Pending != 0 {
				bad("%s %s at %s moved money paymentd has no record of: %+v", b.Kind, id, conn, b)
			}
		}
	}
	return problems, operator, known
}

// terminalContradiction reports a later status that contradicts a
// terminal status paymentd acknowledged.
func terminalContradiction(kind, acked, now string) bool {
	if acked == now {
		return false
	}
	switch kind {
	case "payment":
		switch acked {
		case "succeeded":
			return now != "succeeded" // refunds do not change a payment's status
		case "failed", "canceled":
			return true
		}
	case "invoice":
		return acked == "paid" || acked == "canceled" || acked == "expired"
	case "payout":
		return acked == "completed" || acked == "rejected" || acked == "cancelled"
	case "refund":
		return acked == "succeeded" || acked == "failed"
	}
	return false
}

// The simulation's checks are not vacuous: a difference planted at a
// provider — a charge whose amount changed behind paymentd's back, and a
// charge paymentd never asked for — is caught by its comparison with the
// books and by `paymentd reconcile`.
func TestSimulationCatchesPlantedDifference(t *testing.T) {
	if testing.Short() {
		t.Skip("the simulation runs paymentd processes")
	}
	r := newSimRun(t, 7)
	code, out, _ := r.call("POST", "/v1/payments", "plant-1", `{"amount":2500,"currency":"EUR","payment_method":"pm_sim"}`)
	id, _ := out["id"].(string)
	if code != 200 || out["status"] != "succeeded" {
		t.Fatalf("payment through aikdata: %d %v", code, out)
	}
	r.ack(out)
	r.objs = append(r.objs, &simObj{kind: "payment", id: id, conn: "aikdata-live", currency: "EUR", amount: 2500})
	if problems, _, _ := r.compare(); len(problems) != 0 {
		t.Fatalf("before planting: %v; want no problem", problems)
	}
	book, _ := r.aikdata.BookFor(id)
	r.aikdata.Plant(book.ID, "", 2400, "", "")
	r.aikdata.Plant("ch_planted0000001", "succeeded", 900, "EUR", "")
	problems, _, _ := r.compare()
	joined := strings.Join(problems, "\n")
	if len(problems) != 2 || !strings.Contains(joined, "payment "+id+" at aikdata-live (succeeded): paymentd captured 2500") ||
		!strings.Contains(joined, "payment ch_planted0000001 at aikdata-live moved money paymentd has no record of") {
		t.Errorf("after planting, the simulation found:\n%s\nwant the changed charge and the unknown one", joined)
	}
	r.stop(false)
	var buf bytes.Buffer
	err := run(context.Background(), []string{"reconcile", "--db", r.db, "--config", r.cfg},
		func(k string) string { return pvEnv[k] }, &buf, &buf)
	if err == nil || !strings.Contains(buf.String(), "DIFF     payment "+id+" at aikdata-live ("+book.ID+"): paymentd captured 2500 EUR; the provider captured 2400") ||
		!strings.Contains(buf.String(), "DIFF     payment ch_planted0000001 at aikdata-live") {
		t.Errorf("reconcile after planting: %v\n%s", err, buf.String())
	}
}
