package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// chromiumPath is Debian's chromium (apt-get install chromium), or
// $CHROMIUM_PATH.
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// newBrowser starts headless Chromium with a fresh profile, for the length
// of the test. Without Chromium the test is skipped on a developer's machine
// but fails under CI, where .ci/run installs it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("no Chromium at %s (apt-get install chromium, or set CHROMIUM_PATH); CI runs this test", path)
		}
		t.Fatalf("no Chromium at %s under CI: %v", path, err)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "chromium-profile")),
		chromedp.WindowSize(800, 1000),
	)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = chromedp.Cancel(cctx)
		cancelCtx()
		cancelAlloc()
	})
	// The first call starts the browser and binds it to ctx, which must
	// have no timeout; each later step gets its own (see browse).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// browse runs steps in the browser with a generous deadline.
func browse(t *testing.T, browser context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// read runs one action that returns a value, with a generous deadline.
func read[T any](t *testing.T, browser context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// callbackServer is the merchant's site: it records the query of every
// request to /return and answers with a page the browser can wait for.
type callbackServer struct {
	*httptest.Server
	mu      sync.Mutex
	queries []url.Values
}

func newCallbackServer(t *testing.T) *callbackServer {
	cb := &callbackServer{}
	cb.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/return" {
			http.NotFound(w, r)
			return
		}
		cb.mu.Lock()
		cb.queries = append(cb.queries, r.URL.Query())
		cb.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>Shop</title><h1 id="back">Back at the shop</h1>`))
	}))
	t.Cleanup(cb.Close)
	return cb
}

func (cb *callbackServer) received() []url.Values {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	return slices.Clone(cb.queries)
}

// TestInvoicePageInBrowser drives the hosted page in a real browser: pay one
// invoice and cancel another, landing on the merchant's callback each time
// with the right query, and check that what the customer and merchant typed
// is shown as text, never run.
func TestInvoicePageInBrowser(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	srv, c := invServer(t)
	ctx := withKey(t.Context(), srv.key)
	cb := newCallbackServer(t)

	// Every request the browser makes must go to paymentd or the merchant.
	var reqMu sync.Mutex
	var requested []string
	if _, err := chromedp.Call(browser, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enable network events: %v", err)
	}
	err := chromedp.Listen(browser, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			reqMu.Lock()
			requested = append(requested, e.Request.URL)
			reqMu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("listen to the browser: %v", err)
	}

	const evilName = `<script>window.__pwned = "name"</script>Jane <b>Doe</b>`
	const evilDescription = `<img src=x onerror="window.__pwned='description'">2 × coffee`
	req := cardInvoice("browser-1")
	req.CallbackUrl = cb.URL + "/return?cart=9"
	req.Customer = &pb.Customer{Name: evilName}
	req.Description = evilDescription
	inv := mustCreateInvoice(t, ctx, c, req)
	if !strings.HasPrefix(inv.PaymentUrl, srv.baseURL+"/pay/") {
		t.Fatalf("payment_url %q; want it under %s/pay/", inv.PaymentUrl, srv.baseURL)
	}

	browse(t, browser, "open "+inv.PaymentUrl, chromedp.Navigate(inv.PaymentUrl), chromedp.WaitVisible(chromedp.ID("pay")))
	name := read(t, browser, "customer name", chromedp.TextContent(chromedp.ID("customer-name")))
	description := read(t, browser, "description", chromedp.TextContent(chromedp.ID("description")))
	if name != evilName || description != evilDescription {
		t.Errorf("page shows customer name %q and description %q; want them as typed, as text:\n %q\n %q", name, description, evilName, evilDescription)
	}
	scripts := read(t, browser, "count scripts", chromedp.Evaluate[int](`document.querySelectorAll("script").length`))
	images := read(t, browser, "count images", chromedp.Evaluate[int](`document.querySelectorAll("img").length`))
	pwned := read(t, browser, "check window.__pwned", chromedp.Evaluate[bool](`window.__pwned !== undefined`))
	if scripts != 0 || images != 0 || pwned {
		t.Errorf("page has %d script and %d img elements, window.__pwned set: %v; want none: input must never become markup", scripts, images, pwned)
	}
	amount := read(t, browser, "amount", chromedp.TextContent(chromedp.ID("amount")))
	merchant := read(t, browser, "merchant", chromedp.TextContent(chromedp.ID("merchant")))
	title := read(t, browser, "title", chromedp.Title())
	if amount != "25.00" || merchant != "default" || title != "Pay default" {
		t.Errorf("page shows amount %q, merchant %q, title %q; want 25.00, default, \"Pay default\"", amount, merchant, title)
	}

	// Pay: the browser lands on the callback with the invoice in the query.
	browse(t, browser, "click Pay", chromedp.Click(chromedp.ID("pay")), chromedp.WaitVisible(chromedp.ID("back")))
	checkLanding(t, read(t, browser, "location", chromedp.Location()), cb.URL+"/return", url.Values{"cart": {"9"},
		"status": {"success"}, "invoice_id": {inv.Id}, "transaction_reference": {"browser-1"}})
	// The merchant verifies through the API, never trusting the redirect alone.
	checkInvoice(t, mustGetInvoice(t, ctx, c, "browser-1"), "paid", 2500, 2500)

	// A second invoice: Cancel.
	req2 := cardInvoice("browser-2")
	req2.CallbackUrl = cb.URL + "/return"
	inv2 := mustCreateInvoice(t, ctx, c, req2)
	browse(t, browser, "open "+inv2.PaymentUrl, chromedp.Navigate(inv2.PaymentUrl), chromedp.WaitVisible(chromedp.ID("cancel")))
	browse(t, browser, "click Cancel", chromedp.Click(chromedp.ID("cancel")), chromedp.WaitVisible(chromedp.ID("back")))
	checkLanding(t, read(t, browser, "location", chromedp.Location()), cb.URL+"/return", url.Values{
		"status": {"cancel"}, "invoice_id": {inv2.Id}, "transaction_reference": {"browser-2"}})
	checkInvoice(t, mustGetInvoice(t, ctx, c, "browser-2"), "canceled", 2500, 0)

	// Back on the paid invoice's page: its state, and no buttons.
	browse(t, browser, "reopen "+inv.PaymentUrl, chromedp.Navigate(inv.PaymentUrl), chromedp.WaitVisible(chromedp.ID("status")))
	status := read(t, browser, "status", chromedp.TextContent(chromedp.ID("status")))
	buttons := read(t, browser, "count buttons", chromedp.Evaluate[int](`document.querySelectorAll("button").length`))
	if status != "Paid" || buttons != 0 {
		t.Errorf("paid invoice page: status %q with %d buttons; want Paid and none", status, buttons)
	}

	// A crypto invoice shows what to send where.
	inv3 := mustCreateInvoice(t, ctx, c, usdtInvoice("browser-3", "cus_7"))
	mustReceipt(t, ctx, c, inv3.Id, "0xbeef01", 5_000_000, 30)
	browse(t, browser, "open "+inv3.PaymentUrl, chromedp.Navigate(inv3.PaymentUrl), chromedp.WaitVisible(chromedp.ID("deposit-address")))
	address := read(t, browser, "deposit address", chromedp.TextContent(chromedp.ID("deposit-address")))
	due := read(t, browser, "amount due", chromedp.TextContent(chromedp.ID("amount-due")))
	chain := read(t, browser, "network", chromedp.TextContent(chromedp.ID("network")))
	rows := read(t, browser, "count receipts", chromedp.Evaluate[int](`document.querySelectorAll("#receipts tbody tr").length`))
	pays := read(t, browser, "count Pay buttons", chromedp.Evaluate[int](`document.querySelectorAll("#pay").length`))
	if address != inv3.DepositAddress || due != "20.000000" || chain != "tron" || rows != 1 || pays != 0 {
		t.Errorf("crypto page: address %q, due %q, network %q, %d receipts, %d Pay buttons; want %s, 20.000000, tron, 1, 0",
			address, due, chain, rows, pays, inv3.DepositAddress)
	}

	if got := cb.received(); len(got) != 2 {
		t.Errorf("the callback server saw %d requests %v; want 2 (pay, cancel)", len(got), got)
	}
	reqMu.Lock()
	defer reqMu.Unlock()
	if len(requested) < 5 {
		t.Errorf("saw %d browser requests %v; want every page and stylesheet load", len(requested), requested)
	}
	for _, u := range requested {
		if !strings.HasPrefix(u, srv.baseURL+"/") && !strings.HasPrefix(u, cb.URL+"/") {
			t.Errorf("the browser requested %s; want requests to paymentd and the merchant only", u)
		}
	}
}

// checkLanding checks the page the browser landed on: base URL and query.
func checkLanding(t *testing.T, landed, base string, want url.Values) {
	t.Helper()
	u, err := url.Parse(landed)
	if err != nil {
		t.Fatalf("landed on %q: %v", landed, err)
	}
	q := u.Query()
	u.RawQuery = ""
	if u.String() != base || len(q) != len(want) {
		t.Errorf("landed on %s; want %s with query %v", landed, base, want)
	}
	for k, v := range want {
		if !slices.Equal(q[k], v) {
			t.Errorf("landed on %s: %s = %v; want %v", landed, k, q[k], v)
		}
	}
}
