package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/paymentd/paymentd/providers/aikdata/aikdatafake"
	"github.com/paymentd/paymentd/providers/fakekit"
	"github.com/paymentd/paymentd/store/storetest"
	"github.com/paymentd/paymentd/webhook"
)

// The fleet tests run three paymentd replicas — child processes (this test
// binary acting as paymentd), so that SIGKILL is a real crash — on one fresh
// PostgreSQL database, with the clients spread across them, and check the
// guarantees one process gives on its own SQLite file: one execution per
// idempotency key, refunds and payouts that never overdraw, each webhook
// delivered once (and none lost when a replica dies mid-delivery), one
// status call at a time about an unknown payment, and no acknowledged write
// lost when a replica is killed under load. They need PAYMENTD_TEST_POSTGRES
// (storetest.PostgresDSN skips without it, and fails under CI=true).

// fleetArgs are the serve flags of every replica: leases and retries short,
// so that each test takes seconds.
var fleetArgs = []string{"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--rate-limit", "-1",
	"--log-level", "warn", "--allow-private-webhooks", "--provider-timeout", "400ms",
	"--reconcile-schedule", "50ms,100ms,200ms", "--reconcile-interval", "50ms",
	"--webhook-timeout", "3s", "--webhook-retry-base", "100ms", "--webhook-retry-max-delay", "200ms",
	"--sandbox-payout-processing-delay", "100ms", "--sandbox-payout-completion-delay", "100ms"}

// fleet is three replicas on one database, with a fake aikdata provider (EUR
// live payments) behind a proxy that counts status calls.
type fleet struct {
	dsn      string
	cfg      string
	replicas [3]*fleetReplica
	aikdata  *aikdatafake.Server
	status   *statusProxy
}

// fleetReplica is one `paymentd serve` child process.
type fleetReplica struct {
	cmd      *exec.Cmd
	done     chan struct{}
	httpAddr string
	log      *syncBuffer
}

func newFleet(t *testing.T) *fleet {
	if testing.Short() {
		t.Skip("runs three paymentd processes")
	}
	f := &fleet{dsn: storetest.PostgresDSN(t)}
	f.aikdata = aikdatafake.New(pvAikdataToken)
	t.Cleanup(f.aikdata.Close)
	f.status = newStatusProxy(t, f.aikdata.URL())
	f.cfg = filepath.Join(t.TempDir(), "paymentd.yaml")
	config := `connections:
  - {name: aikdata-live, provider: aikdata, mode: live, base_url: '` + f.status.URL + `', credentials: {token: AIKDATA_TOKEN}, timeout: 400ms, max_attempts: 1}
routes:
  - {operation: payments, mode: live, currency: EUR, connections: [aikdata-live]}
`
	if err := os.WriteFile(f.cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// Replica 0 looks for due webhooks often; the others rarely, so that
	// the deliveries of events written through replica 0 (whose writes wake
	// its own dispatcher) are attempted by it.
	f.start(t, 0, "--webhook-poll-interval", "20ms")
	var wg sync.WaitGroup
	for i := 1; i < 3; i++ {
		wg.Go(func() { f.start(t, i, "--webhook-poll-interval", "1s") })
	}
	wg.Wait()
	t.Cleanup(func() {
		for i := range f.replicas {
			f.stop(t, i, syscall.SIGTERM)
		}
	})
	return f
}

// start runs replica i and waits until it serves.
func (f *fleet) start(t *testing.T, i int, extra ...string) {
	args := append(append([]string{"serve", "--db", f.dsn, "--config", f.cfg}, fleetArgs...), extra...)
	cmd, stdout, log := startServeChild(t, args)
	r := &fleetReplica{cmd: cmd, done: make(chan struct{}), log: log}
	addrs := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1:3]
			}
		}
	}()
	go func() { _ = cmd.Wait(); close(r.done) }()
	var a []string
	select {
	case a = <-addrs:
	case <-r.done:
		t.Fatalf("replica %d exited before serving:\n%s", i, r.log)
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("replica %d did not serve within 30s:\n%s", i, r.log)
	}
	r.httpAddr = a[1]
	conn, err := grpc.NewClient(a[0], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	waitServing(t, conn)
	conn.Close()
	f.replicas[i] = r
}

// stop ends replica i with sig (SIGKILL: a crash) and waits for it to exit.
func (f *fleet) stop(t *testing.T, i int, sig syscall.Signal) {
	r := f.replicas[i]
	if r == nil {
		return
	}
	f.replicas[i] = nil
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Errorf("replica did not stop within 20s of %v", sig)
	}
	if t.Failed() {
		lines := strings.SplitAfter(r.log.String(), "\n")
		t.Logf("replica %d log, last lines:\n%s", i, strings.Join(lines[max(0, len(lines)-30):], ""))
	}
}

// account makes a fresh account with a test key and a live key, so that
// each test's balances and events are its own.
func (f *fleet) account(t *testing.T, name string) (testKey, liveKey string) {
	acct := createAccount(t, f.dsn, name)
	testKey, _ = createKey(t, f.dsn, "test", "read,write,payouts", acct)
	liveKey, _ = createKey(t, f.dsn, "live", "read,write,payouts", acct)
	return testKey, liveKey
}

// rest sends one REST request to replica i; code 0 means no answer (the
// replica is down or went down).
func (f *fleet) rest(i int, method, path, key, idemKey, body string) (int, map[string]any) {
	r := f.replicas[i]
	if r == nil {
		return 0, nil
	}
	return restCall(r.httpAddr, method, path, key, idemKey, body)
}

// must sends a request that must answer 200.
func (f *fleet) must(t *testing.T, i int, method, path, key, body string) map[string]any {
	t.Helper()
	code, out := f.rest(i, method, path, key, "", body)
	if code != http.StatusOK {
		t.Fatalf("%s %s on replica %d: %d %v", method, path, i, code, out)
	}
	return out
}

// parallel runs n calls at once, call k on replica k%3, and returns their
// status codes and bodies.
func (f *fleet) parallel(n int, call func(k, replica int) (int, map[string]any)) ([]int, []map[string]any) {
	codes, bodies := make([]int, n), make([]map[string]any, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for k := range n {
		wg.Go(func() {
			<-start
			codes[k], bodies[k] = call(k, k%3)
		})
	}
	close(start)
	wg.Wait()
	return codes, bodies
}

// statusProxy stands in front of a fake provider, counts the status calls
// (GETs) in flight at once, and can answer the next ones 503 after a delay.
type statusProxy struct {
	*httptest.Server
	inflight, maxInflight, gets atomic.Int64
	failGets                    atomic.Int64
	getDelay                    atomic.Int64 // nanoseconds
}

func newStatusProxy(t *testing.T, target string) *statusProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &statusProxy{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			proxy.ServeHTTP(w, r)
			return
		}
		p.gets.Add(1)
		n := p.inflight.Add(1)
		defer p.inflight.Add(-1)
		for {
			m := p.maxInflight.Load()
			if n <= m || p.maxInflight.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(time.Duration(p.getDelay.Load()))
		if p.failGets.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func TestFleet(t *testing.T) {
	f := newFleet(t)
	t.Run("IdempotencyKeyRunsOnce", f.testIdempotencyKeyRunsOnce)
	t.Run("RefundsNeverExceedCaptured", f.testRefundsNeverExceedCaptured)
	t.Run("PayoutsNeverOverdraw", f.testPayoutsNeverOverdraw)
	t.Run("WebhooksDeliveredOnce", f.testWebhooksDeliveredOnce)
	t.Run("UnknownPaymentAskedByOneReplica", f.testUnknownPaymentAskedByOneReplica)
	t.Run("WebhooksSurviveKillMidDelivery", f.testWebhooksSurviveKillMidDelivery)
	t.Run("KillUnderLoadLosesNothing", f.testKillUnderLoadLosesNothing)
}

// The same idempotency key ×50 at once, spread over the three replicas:
// the provider is called once, one payment exists, and every other call is
// a 409 or the replay of that payment.
func (f *fleet) testIdempotencyKeyRunsOnce(t *testing.T) {
	test, live := f.account(t, "idempotency")
	f.aikdata.SetDelay(200 * time.Millisecond) // the first call is still running when the others arrive
	defer f.aikdata.SetDelay(0)
	before := f.charges()
	body := `{"amount":2500,"currency":"EUR","payment_method":"pm_fleet"}`
	codes, bodies := f.parallel(50, func(_, i int) (int, map[string]any) {
		return f.rest(i, "POST", "/v1/payments", live, "fleet-same-key", body)
	})
	ids := map[string]bool{}
	conflicts := 0
	for k, code := range codes {
		switch code {
		case http.StatusOK:
			ids[str(bodies[k], "id")] = true
		case http.StatusConflict:
			conflicts++
		default:
			t.Errorf("call %d: %d %v; want 200 or 409", k, code, bodies[k])
		}
	}
	if len(ids) != 1 {
		t.Fatalf("payments answered: %v; want one payment for one key", ids)
	}
	if n := f.charges() - before; n != 1 {
		t.Errorf("the provider was asked to charge %d times; want once", n)
	}
	list := f.must(t, 0, "GET", "/v1/payments?page_size=100", live, "")
	if ps, _ := list["payments"].([]any); len(ps) != 1 {
		t.Errorf("the account has %d live payments; want 1", len(ps))
	}
	t.Logf("50 calls with one key (aikdata, two writes): %d answered 200 (one payment), %d answered 409", 50-conflicts, conflicts)

	// The sandbox's payments take one write, whose idempotency record is
	// the only marker: of the writes racing, one commits and the others
	// answer its outcome.
	codes, bodies = f.parallel(50, func(_, i int) (int, map[string]any) {
		return f.rest(i, "POST", "/v1/payments", test, "fleet-same-key", `{"amount":2500,"currency":"USD","payment_method":"pm_card_visa"}`)
	})
	ids = map[string]bool{}
	for k, code := range codes {
		if code == http.StatusOK {
			ids[str(bodies[k], "id")] = true
		} else if code != http.StatusConflict {
			t.Errorf("sandbox call %d: %d %v; want 200 or 409", k, code, bodies[k])
		}
	}
	list = f.must(t, 0, "GET", "/v1/payments?page_size=100", test, "")
	if ps, _ := list["payments"].([]any); len(ps) != 1 || len(ids) != 1 {
		t.Errorf("sandbox: %d test payments, answers name %v; want one payment", len(ps), ids)
	}
}

// charges counts the charge requests the fake provider received.
func (f *fleet) charges() int {
	n := 0
	for _, r := range f.aikdata.Requests() {
		if r.Method == http.MethodPost && r.Path == "/charge" {
			n++
		}
	}
	return n
}

// 20 refunds of 100 at once on a captured 1000, spread over the replicas:
// exactly 10 succeed and the payment is refunded exactly 1000.
func (f *fleet) testRefundsNeverExceedCaptured(t *testing.T) {
	key, _ := f.account(t, "refunds")
	p := f.must(t, 0, "POST", "/v1/payments", key, `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa"}`)
	if str(p, "status") != "succeeded" || str(p, "amount_captured") != "1000" {
		t.Fatalf("payment: %v; want succeeded with 1000 captured", p)
	}
	codes, bodies := f.parallel(20, func(k, i int) (int, map[string]any) {
		return f.rest(i, "POST", "/v1/refunds", key, fmt.Sprintf("refund-%d", k), `{"payment_id":"`+str(p, "id")+`","amount":100}`)
	})
	ok := 0
	for k, code := range codes {
		switch {
		case code == http.StatusOK && str(bodies[k], "status") == "succeeded":
			ok++
		case code == http.StatusBadRequest || code == http.StatusConflict:
		default:
			t.Errorf("refund %d: %d %v; want a succeeded refund or a refusal", k, code, bodies[k])
		}
	}
	if ok != 10 {
		t.Errorf("%d refunds of 100 succeeded on a captured 1000; want exactly 10", ok)
	}
	if got := f.must(t, 1, "GET", "/v1/payments/"+str(p, "id"), key, ""); str(got, "amount_refunded") != "1000" {
		t.Errorf("payment after the refunds: %v; want amount_refunded 1000", got)
	}

	// One idempotency key ×30 at once: one refund (its record is the
	// marker, CreateRefund holds no lease).
	p = f.must(t, 0, "POST", "/v1/payments", key, `{"amount":1000,"currency":"USD","payment_method":"pm_card_visa"}`)
	codes, bodies = f.parallel(30, func(_, i int) (int, map[string]any) {
		return f.rest(i, "POST", "/v1/refunds", key, "same-refund", `{"payment_id":"`+str(p, "id")+`","amount":100}`)
	})
	ids := map[string]bool{}
	for k, code := range codes {
		if code == http.StatusOK {
			ids[str(bodies[k], "id")] = true
		} else if code != http.StatusConflict {
			t.Errorf("refund %d with one key: %d %v; want 200 or 409", k, code, bodies[k])
		}
	}
	got := f.must(t, 2, "GET", "/v1/payments/"+str(p, "id"), key, "")
	if len(ids) != 1 || str(got, "amount_refunded") != "100" {
		t.Errorf("30 refunds with one key answered %v and refunded %s; want one refund of 100", ids, str(got, "amount_refunded"))
	}
}

// 30 payouts of 1000 (1035 with the fee) at once from an available 10000,
// spread over the replicas: exactly 9 are taken, the balance never goes
// negative, and `paymentd check` passes once they have completed.
func (f *fleet) testPayoutsNeverOverdraw(t *testing.T) {
	key, _ := f.account(t, "payouts")
	f.must(t, 0, "POST", "/v1/payments", key, `{"amount":10000,"currency":"USD","payment_method":"pm_card_visa"}`)
	stop := make(chan struct{})
	var watched sync.WaitGroup
	watched.Go(func() { // the balance as callers see it, all along
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if code, b := f.rest(i%3, "GET", "/v1/balance", key, "", ""); code == http.StatusOK {
				bs, _ := b["balances"].([]any)
				for _, x := range bs {
					if bal, _ := x.(map[string]any); strings.HasPrefix(str(bal, "available"), "-") {
						t.Errorf("available balance went negative: %v", bal)
					}
				}
			}
		}
	})
	codes, bodies := f.parallel(30, func(k, i int) (int, map[string]any) {
		return f.rest(i, "POST", "/v1/payouts", key, "", fmt.Sprintf(`{"payout_method_id":"us_bank","amount":1000,
			"recipient_name":"Fleet","recipient_account":"GB33BUKB20201555555555","transaction_reference":"fleet-%d"}`, k))
	})
	ok := 0
	for k, code := range codes {
		switch code {
		case http.StatusOK:
			ok++
		case http.StatusPaymentRequired:
		default:
			t.Errorf("payout %d: %d %v; want 200 or 402 insufficient_funds", k, code, bodies[k])
		}
	}
	if ok != 9 {
		t.Errorf("%d payouts of 1035 taken from 10000; want exactly 9", ok)
	}
	whWait(t, "the payouts to complete", func() bool {
		list := f.must(t, 2, "GET", "/v1/payouts?page_size=100&status=completed", key, "")
		ps, _ := list["payouts"].([]any)
		return len(ps) == ok
	})
	close(stop)
	watched.Wait()
	bal := items(t, f.must(t, 0, "GET", "/v1/balance", key, ""), "balances")[0]
	if str(bal, "available") != "685" || str(bal, "reserved") != "0" {
		t.Errorf("balance: %v; want available 685 (10000 − 9×1035), reserved 0", bal)
	}
	out, _ := cli(t, "check", "--db", f.dsn)
	t.Logf("paymentd check: %s", strings.TrimSpace(out))
}

// webhookCounter is a receiver that counts the deliveries of each event;
// while held it keeps requests open, counting those whose sender went away.
type webhookCounter struct {
	*httptest.Server
	mu        sync.Mutex
	answered  map[string]int // event id → 2xx answers
	held      chan struct{}  // closed: answer; nil: answer at once
	delay     time.Duration  // how long each answer takes
	waiting   atomic.Int64   // requests being held
	abandoned atomic.Int64   // held requests whose sender disconnected
}

func newWebhookCounter(t *testing.T) *webhookCounter {
	c := &webhookCounter{answered: map[string]int{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		c.mu.Lock()
		held := c.held
		c.mu.Unlock()
		if held != nil {
			c.waiting.Add(1)
			select {
			case <-held:
				c.waiting.Add(-1)
			case <-r.Context().Done():
				c.waiting.Add(-1)
				c.abandoned.Add(1)
				return
			}
		}
		time.Sleep(c.delay)
		c.mu.Lock()
		c.answered[r.Header.Get(webhook.HeaderID)]++
		c.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *webhookCounter) hold() {
	c.mu.Lock()
	c.held = make(chan struct{})
	c.mu.Unlock()
}

func (c *webhookCounter) release() {
	c.mu.Lock()
	if c.held != nil {
		close(c.held)
		c.held = nil
	}
	c.mu.Unlock()
}

func (c *webhookCounter) count(eventID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answered[eventID]
}

// events lists the ids of the account's events (up to 100), read through replica i.
func (f *fleet) events(t *testing.T, i int, key string) []string {
	var ids []string
	for _, e := range items(t, f.must(t, i, "GET", "/v1/events?page_size=100", key, ""), "events") {
		ids = append(ids, str(e, "id"))
	}
	return ids
}

// Payments made through every replica: each event is delivered exactly
// once, though three dispatchers look for due deliveries. The receiver
// takes its time, so that a dispatcher's poll often finds deliveries
// another replica is attempting.
func (f *fleet) testWebhooksDeliveredOnce(t *testing.T) {
	key, _ := f.account(t, "webhooks")
	rcv := newWebhookCounter(t)
	rcv.delay = 700 * time.Millisecond
	f.must(t, 0, "POST", "/v1/webhook-endpoints", key, `{"url":"`+rcv.URL+`"}`)
	codes, bodies := f.parallel(30, func(k, i int) (int, map[string]any) {
		return f.rest(i, "POST", "/v1/payments", key, fmt.Sprintf("hook-%d", k), `{"amount":1500,"currency":"USD","payment_method":"pm_card_visa"}`)
	})
	for k, code := range codes {
		if code != http.StatusOK {
			t.Fatalf("payment %d: %d %v", k, code, bodies[k])
		}
	}
	evs := f.events(t, 0, key)
	if len(evs) < 30 {
		t.Fatalf("%d events for 30 payments", len(evs))
	}
	whWait(t, "every event to be delivered", func() bool {
		for _, id := range evs {
			if rcv.count(id) == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(1500 * time.Millisecond) // longer than the slowest poll: a second delivery would have come
	for _, id := range evs {
		if n := rcv.count(id); n != 1 {
			t.Errorf("event %s delivered %d times; want once", id, n)
		}
	}
}

// A replica is killed while its webhook attempts are in flight (the
// receiver holds them open): once its leases pass, the other replicas
// deliver those events; none is lost.
func (f *fleet) testWebhooksSurviveKillMidDelivery(t *testing.T) {
	key, _ := f.account(t, "webhook-kill")
	rcv := newWebhookCounter(t)
	f.must(t, 0, "POST", "/v1/webhook-endpoints", key, `{"url":"`+rcv.URL+`"}`)
	rcv.hold()
	for k := range 5 {
		f.must(t, 0, "POST", "/v1/payments", key, `{"amount":1200,"currency":"USD","payment_method":"pm_card_visa","description":"`+fmt.Sprint(k)+`"}`)
	}
	whWait(t, "replica 0 to be attempting deliveries", func() bool { return rcv.waiting.Load() >= 1 })
	f.stop(t, 0, syscall.SIGKILL)
	whWait(t, "the killed replica's attempts to be cut off", func() bool { return rcv.abandoned.Load() >= 1 })
	rcv.release()
	evs := f.events(t, 1, key)
	whWait(t, "every event to be delivered by the surviving replicas", func() bool {
		for _, id := range evs {
			if rcv.count(id) == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("%d attempts cut off by the kill; all %d events delivered after it", rcv.abandoned.Load(), len(evs))
	f.start(t, 0, "--webhook-poll-interval", "20ms")
}

// A payment left unknown (the provider took the charge and never answered)
// is asked about by one replica at a time, though all three reconcile: the
// provider never sees two status calls at once, and the payment settles.
func (f *fleet) testUnknownPaymentAskedByOneReplica(t *testing.T) {
	_, live := f.account(t, "unknown")
	f.status.gets.Store(0)
	f.status.maxInflight.Store(0)
	f.status.getDelay.Store(int64(150 * time.Millisecond))
	f.status.failGets.Store(3) // unsettled for the first three calls: asked again and again
	defer f.status.getDelay.Store(0)
	f.aikdata.Inject(fakekit.Fault{Kind: fakekit.ApplyThenHang, Op: "POST /charge"})
	code, out := f.rest(1, "POST", "/v1/payments", live, "unknown-1", `{"amount":3100,"currency":"EUR","payment_method":"pm_fleet"}`)
	t.Logf("payment whose charge got no answer: %d %v", code, out)
	var id string
	whWait(t, "the payment to be recorded", func() bool {
		ps, _ := f.must(t, 2, "GET", "/v1/payments?page_size=10", live, "")["payments"].([]any)
		if len(ps) == 1 {
			id = str(ps[0].(map[string]any), "id")
		}
		return id != ""
	})
	whWait(t, "the reconciler to settle the payment", func() bool {
		return str(f.must(t, 0, "GET", "/v1/payments/"+id, live, ""), "status") == "succeeded"
	})
	if n := f.status.gets.Load(); n < 4 {
		t.Errorf("%d status calls; want at least 4 (three answered 503)", n)
	}
	if m := f.status.maxInflight.Load(); m != 1 {
		t.Errorf("up to %d status calls about one payment at once; want 1", m)
	}
}

// Payments are created on all three replicas while one is killed: every
// payment a replica acknowledged is there afterwards, the others keep
// answering, the sweeps go on, and `paymentd check` passes.
func (f *fleet) testKillUnderLoadLosesNothing(t *testing.T) {
	key, _ := f.account(t, "kill")
	var mu sync.Mutex
	acked := map[string]string{}
	var afterKill atomic.Int64
	var killed atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 12 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				i := w % 3
				if i == 2 && killed.Load() {
					i = n % 2 // its client moves to the survivors
				}
				code, p := f.rest(i, "POST", "/v1/payments", key, fmt.Sprintf("load-%d-%d", w, n),
					`{"amount":1000,"currency":"USD","payment_method":"pm_card_visa"}`)
				if code != http.StatusOK {
					continue // not acknowledged (cut off by the kill)
				}
				mu.Lock()
				acked[str(p, "id")] = str(p, "status")
				mu.Unlock()
				if killed.Load() {
					afterKill.Add(1)
				}
			}
		})
	}
	time.Sleep(1500 * time.Millisecond)
	f.stop(t, 2, syscall.SIGKILL)
	killed.Store(true)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if afterKill.Load() == 0 {
		t.Error("no payment was acknowledged by the surviving replicas after the kill")
	}
	for id, status := range acked {
		if got := f.must(t, 0, "GET", "/v1/payments/"+id, key, ""); str(got, "status") != status {
			t.Errorf("acknowledged payment %s: %v; want status %s", id, got, status)
		}
	}
	// The sweeps go on: whichever replica held the sandbox payouts' lease,
	// a payout made now completes (taken over within the lease if it was
	// the killed one's).
	po := f.must(t, 0, "POST", "/v1/payouts", key, `{"payout_method_id":"us_bank","amount":1000,
		"recipient_name":"Fleet","recipient_account":"GB33BUKB20201555555555","transaction_reference":"after-kill"}`)
	whWait(t, "a payout made after the kill to complete", func() bool {
		return str(f.must(t, 1, "GET", "/v1/payouts/"+str(po, "id"), key, ""), "status") == "completed"
	})
	out, _ := cli(t, "check", "--db", f.dsn)
	t.Logf("%d payments acknowledged (%d after the kill), all found; paymentd check: %s", len(acked), afterKill.Load(), strings.TrimSpace(out))
}

// TestFleetStartedAtOnceBootstrapsOnce starts three replicas at the same
// moment on an empty PostgreSQL database: one of them creates the default
// account and prints its test key, the others print none, and the database
// holds one account and one key.
func TestFleetStartedAtOnceBootstrapsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three paymentd processes")
	}
	dsn := storetest.PostgresDSN(t)
	keyFile := filepath.Join(t.TempDir(), "secrets-key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	outs := make([]string, 3)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() {
			args := append([]string{"serve", "--db", dsn, "--secrets-key-file", keyFile}, fleetArgs...)
			cmd, stdout, log := startServeChild(t, args)
			defer func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				_ = cmd.Wait()
			}()
			var b strings.Builder
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				b.WriteString(sc.Text() + "\n")
				if servingLine.MatchString(sc.Text()) {
					outs[i] = b.String()
					return
				}
			}
			t.Errorf("replica %d exited before serving:\n%s\n%s", i, b.String(), log)
		})
	}
	wg.Wait()
	printed := 0
	for _, out := range outs {
		if testKeyLine.MatchString(out) {
			printed++
		}
	}
	accounts, _ := cli(t, "accounts", "list", "--db", dsn)
	keys, _ := cli(t, "keys", "list", "--db", dsn)
	if n := strings.Count(accounts, "acct_"); n != 1 || printed != 1 || strings.Count(keys, "key_") != 1 {
		t.Errorf("three replicas started at once: %d printed a test key, %d accounts, keys:\n%s\naccounts:\n%s; want one of each",
			printed, n, keys, accounts)
	}
}
