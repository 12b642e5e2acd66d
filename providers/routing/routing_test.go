package routing_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/aslan/aslanfake"
	"github.com/paymentd/paymentd/providers/routing"
)

const liveKey = "ak_live_routingtest000000000000000"

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

const example = `
connections:
  - name: aslan-live
    provider: aslan
    mode: live
    base_url: https://aslanpay.xyz
    credentials:
      api_key: ASLAN_LIVE_KEY
  - name: aikdata-live
    provider: aikdata
    mode: live
    credentials:
      token: AIKDATA_TOKEN
  - name: aspayds-live
    provider: aspayds
    mode: live
    credentials:
      api_key: ASPAYDS_KEY
      api_secret: ASPAYDS_SECRET
    options:
      currency: BDT
  - name: asyncpay-live
    provider: asyncpay
    mode: live
    credentials:
      secret_key: ASYNCPAY_SECRET_KEY
    options:
      path_create_payout: /v1/transfers
  - name: alppay-live
    provider: alppay
    mode: live
    credentials:
      api_key: ALPPAY_API_KEY
      hmac_secret: ALPPAY_HMAC_SECRET
  - name: sandbox
    provider: sandbox
    mode: test
routes:
  - {operation: payments, mode: live, currency: USD, connections: [aslan-live, aikdata-live]}
  - {operation: payments, mode: live, currency: "*", connections: [aikdata-live]}
  - {operation: invoices, mode: live, currency: BDT, connections: [aspayds-live]}
  - {operation: invoices, mode: live, currency: USDT, connections: [alppay-live]}
  - {operation: payouts, mode: live, currency: BDT, connections: [aspayds-live]}
  - {operation: payouts, mode: live, currency: NGN, connections: [asyncpay-live]}
  - {operation: payments, mode: test, connections: [sandbox]}
`

var exampleEnv = map[string]string{"ASLAN_LIVE_KEY": liveKey, "AIKDATA_TOKEN": "tok", "ASPAYDS_KEY": "k", "ASPAYDS_SECRET": "s",
	"ASYNCPAY_SECRET_KEY": "sk", "ALPPAY_API_KEY": "ak", "ALPPAY_HMAC_SECRET": "hs"}

func names(cs []*routing.Connection) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return strings.Join(out, ",")
}

func TestRoutes(t *testing.T) {
	f, err := routing.ParseFile([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.New(f, routing.Options{Getenv: env(exampleEnv)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		op       routing.Operation
		live     bool
		currency string
		want     string
	}{
		{routing.Payments, true, "usd", "aslan-live,aikdata-live"},
		{routing.Payments, true, "EUR", "aikdata-live"},
		{routing.Payments, false, "USD", "sandbox"},
		{routing.Invoices, true, "BDT", "aspayds-live"},
		{routing.Invoices, true, "USDT", "alppay-live"},
		{routing.Invoices, true, "EUR", ""},
		{routing.Invoices, false, "BDT", ""},
		{routing.Payouts, true, "NGN", "asyncpay-live"},
	} {
		if got := names(r.Route(tc.op, tc.live, tc.currency)); got != tc.want {
			t.Errorf("Route(%s, live=%v, %s) = %q; want %q", tc.op, tc.live, tc.currency, got, tc.want)
		}
	}
	if !r.Routed(routing.Payouts, true) || r.Routed(routing.Payouts, false) {
		t.Error("Routed(payouts) wrong")
	}
	c, ok := r.Connection("aspayds-live")
	if _, isInv := c.Client.(providers.Invoices); !ok || !isInv || c.Provider != "aspayds" || !c.Livemode() {
		t.Errorf("Connection(aspayds-live) = %+v", c)
	}
	if len(r.Connections()) != 6 {
		t.Errorf("%d connections; want 6", len(r.Connections()))
	}
}

func TestConfigErrorsNeverShowSecrets(t *testing.T) {
	const secret = "ak_live_THIS_IS_A_SECRET_0000000000"
	base := "connections:\n  - name: aslan-live\n    provider: aslan\n    mode: live\n    credentials:\n      api_key: %s\n"
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		want       string
	}{
		{"a secret pasted into the file", strings.Replace(base, "%s", secret, 1), nil, "NAME of an environment variable"},
		{"an unset variable", strings.Replace(base, "%s", "ASLAN_KEY", 1), nil, "not set"},
		{"a test key on a live connection", strings.Replace(base, "%s", "ASLAN_KEY", 1),
			map[string]string{"ASLAN_KEY": "ak_test_" + secret[8:]}, "ak_live_ key"},
		{"an unknown provider", "connections:\n  - {name: x, provider: stripe, mode: live}\n", nil, "unknown provider"},
		{"a bad mode", "connections:\n  - {name: x, provider: aikdata, mode: prod, credentials: {token: T}}\n", map[string]string{"T": "t"}, "mode must be test or live"},
		{"plain http for live", "connections:\n  - {name: x, provider: aikdata, mode: live, base_url: 'http://api.example.com', credentials: {token: T}}\n",
			map[string]string{"T": "t"}, "https"},
		{"an unknown key", "connections:\n  - {name: x, provider: aikdata, mode: live, token: abc}\n", nil, "field token not found"},
		{"a route across modes", strings.Replace(base, "%s", "K", 1) + "routes:\n  - {operation: payments, mode: test, connections: [aslan-live]}\n",
			map[string]string{"K": liveKey}, "test and live never meet"},
		{"a route to a capability the provider lacks", strings.Replace(base, "%s", "K", 1) + "routes:\n  - {operation: payouts, mode: live, connections: [aslan-live]}\n",
			map[string]string{"K": liveKey}, "does not offer payouts"},
		{"a route to nowhere", "routes:\n  - {operation: payments, mode: live, connections: [ghost]}\n", nil, "no connection named"},
		{"a duplicate route", strings.Replace(base, "%s", "K", 1) + "routes:\n  - {operation: payments, mode: live, connections: [aslan-live]}\n  - {operation: payments, mode: live, currency: '*', connections: [aslan-live]}\n",
			map[string]string{"K": liveKey}, "routed twice"},
	} {
		f, err := routing.ParseFile([]byte(tc.yaml))
		if err == nil {
			_, err = routing.New(f, routing.Options{Getenv: env(tc.env)})
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error saying %q", tc.name, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "THIS_IS_A_SECRET") {
			t.Errorf("%s: the error shows the secret: %v", tc.name, err)
		}
	}
}

func TestHealthFollowsCallsAndStatusChecks(t *testing.T) {
	fake := aslanfake.New(liveKey)
	defer fake.Close()
	f, _ := routing.ParseFile([]byte("connections:\n  - {name: aslan-live, provider: aslan, mode: live, base_url: '" + fake.URL() +
		"', credentials: {api_key: K}, max_attempts: 1}\n"))
	r, err := routing.New(f, routing.Options{Getenv: env(map[string]string{"K": liveKey})})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := r.Connection("aslan-live")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Monitor(ctx, time.Hour); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for c.Health().At.IsZero() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if h := c.Health(); h.State != "operational" || h.At.IsZero() {
		t.Errorf("after the first status check: %+v; want operational with a time", h)
	}
	cancel()
	<-done
	fake.FailNext(1, 503, 0)
	p := c.Client.(providers.Payments)
	if _, err := p.Authorize(context.Background(), providers.PaymentRequest{Amount: 100, Currency: "USD", Capture: true}); err == nil {
		t.Fatal("Authorize against a 503 succeeded")
	}
	if h := c.Health(); h.State != "degraded" || !strings.Contains(h.Message, "503") {
		t.Errorf("after a 503: %+v; want degraded naming the 503", h)
	}
	if _, err := p.Authorize(context.Background(), providers.PaymentRequest{Amount: 100, Currency: "USD", Capture: true}); err != nil {
		t.Fatal(err)
	}
	if h := c.Health(); h.State != "operational" || h.Latency <= 0 {
		t.Errorf("after a good call: %+v; want operational with a latency", h)
	}
}
