package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
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

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers/sandbox"
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
		// The merchant's logo comes from a local https server with a test
		// certificate; nothing else in these tests uses https.
		chromedp.Flag("ignore-certificate-errors", true),
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
		if r.Method != http.MethodGet {
			// A webhook delivery to the callback_url (the server runs with
			// --allow-private-webhooks), not a customer's browser landing.
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

// TestInvoicePageInBrowser drives the hosted page in a real browser through
// every state a customer can meet: a branded card invoice paid by keyboard
// only, one canceled, an unsettled attempt (pm_card_timeout), a crypto
// invoice with its QR code and partial receipts, an expired invoice, an
// unknown one, and the page in Bengali. Each state is screenshotted at
// phone, small-laptop and desktop sizes, checked with axe-core, and must
// trip no content security policy; no request may go anywhere but paymentd,
// the merchant's callback (navigation) and the merchant's logo (an image).
// PAYMENTD_UPDATE_SCREENSHOTS=1 also writes docs/screenshots/<state>.png.
func TestInvoicePageInBrowser(t *testing.T) {
	t.Parallel()
	browser := newBrowser(t)
	srv, c := invServer(t, "--provider-timeout", "1s", "--reconcile-interval", "1h",
		"--allow-private-webhooks") // the callback server is on loopback
	ctx := withKey(t.Context(), srv.key)
	cb := newCallbackServer(t)
	logo := newLogoServer(t)
	pc := newPageChecker(t, browser)

	// The merchant's brand, set as an operator would.
	cli(t, "accounts", "update", "--db", srv.db, "--display-name", "Dhaka Tea House", "--accent-color", "#0F766E",
		"--logo-url", logo.URL+"/logo.png", "--support-email", "help@tea.example", "--allow-private-urls")
	listed, _ := cli(t, "accounts", "list", "--db", srv.db)
	if !strings.Contains(listed, "Dhaka Tea House") || !strings.Contains(listed, "#0f766e") || !strings.Contains(listed, logo.URL+"/logo.png") {
		t.Errorf("accounts list after update:\n%s\nwant the display name, #0f766e and the logo URL", listed)
	}

	// Every request the browser makes must go to paymentd, or navigate to
	// the merchant's callback, or load the merchant's logo.
	var reqMu sync.Mutex
	type request struct{ url, kind string }
	var requested []request
	if _, err := chromedp.Call(browser, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enable network events: %v", err)
	}
	err := chromedp.Listen(browser, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			reqMu.Lock()
			requested = append(requested, request{e.Request.URL, string(e.Type)})
			reqMu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("listen to the browser: %v", err)
	}

	expiring := cardInvoice("browser-expired")
	expiring.Expiry = durationpb.New(time.Second)
	expired := mustCreateInvoice(t, ctx, c, expiring)

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

	pc.open(inv.PaymentUrl, "open")
	name := read(t, browser, "customer name", chromedp.TextContent(chromedp.ID("customer-name")))
	description := read(t, browser, "description", chromedp.TextContent(chromedp.ID("description")))
	if name != evilName || description != evilDescription {
		t.Errorf("page shows customer name %q and description %q; want them as typed, as text:\n %q\n %q", name, description, evilName, evilDescription)
	}
	scripts := read(t, browser, "scripts", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("script"), s => s.src || "inline")`))
	images := read(t, browser, "images", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("img"), i => i.src)`))
	pwned := read(t, browser, "check window.__pwned", chromedp.Evaluate[bool](`window.__pwned !== undefined`))
	if !slices.Equal(scripts, []string{"inline"}) || !slices.Equal(images, []string{logo.URL + "/logo.png"}) || pwned {
		t.Errorf("page has scripts %v and images %v, window.__pwned set: %v; want only the page's own inline script and the logo: input must never become markup", scripts, images, pwned)
	}
	amount := read(t, browser, "amount", chromedp.TextContent(chromedp.ID("amount")))
	merchant := read(t, browser, "merchant", chromedp.TextContent(chromedp.ID("merchant")))
	title := read(t, browser, "title", chromedp.Title())
	logoLoaded := read(t, browser, "logo", chromedp.Evaluate[bool](`document.getElementById("logo").complete && document.getElementById("logo").naturalWidth > 0`))
	payColour := read(t, browser, "Pay colour", chromedp.Evaluate[string](`getComputedStyle(document.getElementById("pay")).backgroundColor`))
	support := read(t, browser, "support", chromedp.AttributeValue(chromedp.ID("support-email"), "href"))
	if amount != "25.00" || merchant != "Dhaka Tea House" || title != "Pay Dhaka Tea House" || !logoLoaded || payColour != "rgb(15, 118, 110)" ||
		support.Value != "mailto:help@tea.example" {
		t.Errorf("page shows amount %q, merchant %q, title %q, logo loaded %v, Pay colour %s, support %q; want 25.00, Dhaka Tea House, \"Pay Dhaka Tea House\", the logo, rgb(15, 118, 110), mailto:help@tea.example",
			amount, merchant, title, logoLoaded, payColour, support.Value)
	}
	labels := read(t, browser, "test cards", chromedp.Evaluate[map[string]string](`Object.fromEntries(Array.from(document.querySelectorAll("#payment_method option"), o => [o.value, o.textContent.trim()]))`))
	for _, m := range sandbox.Methods {
		if len(labels[m]) < 8 {
			t.Errorf("test card %s is labelled %q; want every test card labelled (all labels: %v)", m, labels[m], labels)
		}
	}
	if l := labels[sandbox.CardTimeout]; !strings.Contains(l, "never answers") || !strings.Contains(l, "unsettled") {
		t.Errorf("pm_card_timeout is labelled %q; want it to say it never answers and shows an unsettled payment", l)
	}

	// Pay with the keyboard only: Tab to the Pay button, Enter. The browser
	// lands on the callback with the invoice in the query.
	focused := ""
	for range 30 {
		browse(t, browser, "press Tab", chromedp.KeyEvent("\t"))
		if focused = read(t, browser, "focused element", chromedp.Evaluate[string](`document.activeElement.id`)); focused == "pay" {
			break
		}
	}
	if focused != "pay" {
		t.Fatalf("30 Tab presses never reached the Pay button (last focus %q); want it reachable by keyboard", focused)
	}
	browse(t, browser, "press Enter on Pay", chromedp.KeyEvent("\r"), chromedp.WaitVisible(chromedp.ID("back")))
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
	pc.open(inv2.PaymentUrl, "canceled")

	// Back on the paid invoice's page: its state, no buttons, a way back.
	pc.open(inv.PaymentUrl, "paid")
	status := read(t, browser, "status", chromedp.TextContent(chromedp.ID("status")))
	buttons := read(t, browser, "count buttons", chromedp.Evaluate[int](`document.querySelectorAll("button").length`))
	back := read(t, browser, "return link", chromedp.AttributeValue(chromedp.ID("return"), "href"))
	if status != "Paid" || buttons != 0 || !strings.HasPrefix(back.Value, cb.URL+"/return?") {
		t.Errorf("paid invoice page: status %q with %d buttons, return link %q; want Paid, none, and a link to the callback", status, buttons, back.Value)
	}

	// A card that never answers: the page says plainly what is happening
	// and offers no second payment, then and on every later visit.
	inv4 := mustCreateInvoice(t, ctx, c, cardInvoice("browser-4"))
	browse(t, browser, "open "+inv4.PaymentUrl, chromedp.Navigate(inv4.PaymentUrl), chromedp.WaitVisible(chromedp.ID("pay")),
		chromedp.SetValue(chromedp.ID("payment_method"), sandbox.CardTimeout), chromedp.Click(chromedp.ID("pay")),
		chromedp.WaitVisible(chromedp.ID("unsettled")))
	for _, visit := range []string{"after Pay", "on a later visit"} {
		if visit != "after Pay" {
			pc.open(inv4.PaymentUrl, "unsettled")
		}
		text := read(t, browser, "unsettled text", chromedp.TextContent(chromedp.ID("unsettled")))
		pays := read(t, browser, "count Pay buttons", chromedp.Evaluate[int](`document.querySelectorAll("#pay, #cancel").length`))
		status := read(t, browser, "status", chromedp.TextContent(chromedp.ID("status")))
		if !strings.Contains(text, "Do not pay again") || pays != 0 || status != "Payment being confirmed" {
			t.Errorf("unsettled attempt %s: %d Pay/Cancel buttons, status %q, text %q; want none, \"Payment being confirmed\", and \"Do not pay again\"", visit, pays, status, text)
		}
	}
	checkInvoice(t, mustGetInvoice(t, ctx, c, "browser-4"), "open", 2500, 0)

	// A crypto invoice: QR code, copy button, the network by name, amounts
	// in display precision; first with nothing received, then partly paid.
	inv3 := mustCreateInvoice(t, ctx, c, usdtInvoice("browser-3", "cus_7"))
	pc.open(inv3.PaymentUrl, "crypto")
	if got := pc.decodeQR(); got != inv3.DepositAddress {
		t.Errorf("the QR code decodes to %q; want the deposit address %s", got, inv3.DepositAddress)
	}
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(browser, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{Origin: srv.baseURL,
			Permission: &cdpbrowser.PermissionDescriptor{Name: perm}, Setting: cdpbrowser.PermissionSettingGranted}); err != nil {
			t.Fatalf("grant %s: %v", perm, err)
		}
	}
	browse(t, browser, "click Copy", chromedp.Click(chromedp.ID("copy-address")), chromedp.WaitVisible(chromedp.CSS(`#copy-status:not(:empty)`)))
	copied := read(t, browser, "clipboard", chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	countdown := read(t, browser, "countdown", chromedp.TextContent(chromedp.ID("countdown")))
	refreshed := read(t, browser, "last refreshed", chromedp.TextContent(chromedp.ID("refreshed")))
	if copied != inv3.DepositAddress || !strings.HasSuffix(countdown, "left") || !strings.HasPrefix(refreshed, "Last refreshed ") {
		t.Errorf("crypto page: clipboard %q after Copy, countdown %q, %q; want the address, a countdown and when the page was refreshed", copied, countdown, refreshed)
	}
	// Transfers arrive while the page is open: it updates in place, and the
	// same live region announces the new status.
	browse(t, browser, "mark the live region", chromedp.Evaluate[chromedp.Void](`document.getElementById("announce").dataset.mark = "kept"`))
	mustReceipt(t, ctx, c, inv3.Id, "0xbeef01", 5_000_000, 30)
	browse(t, browser, "customer comes back to the tab", chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event("focus"))`),
		chromedp.WaitReady(chromedp.CSS(`#page[data-state="partially_paid"]`)))
	announced := read(t, browser, "announcement", chromedp.Evaluate[string](`(() => { const a = document.getElementById("announce"); return a.dataset.mark + " " + a.getAttribute("aria-live") + " " + a.textContent })()`))
	if announced != "kept polite Partially paid" {
		t.Errorf("after a transfer arrived: live region %q; want the same polite live region saying \"Partially paid\"", announced)
	}
	mustReceipt(t, ctx, c, inv3.Id, "0xbeef02", 2_500_000, 4)
	browse(t, browser, "focus again", chromedp.Evaluate[chromedp.Void](`window.dispatchEvent(new Event("focus"))`),
		chromedp.WaitReady(chromedp.CSS(`#receipts tbody tr:nth-child(2)`)))
	pc.check("partially_paid")
	pc.open(inv3.PaymentUrl, "partially_paid")
	address := read(t, browser, "deposit address", chromedp.TextContent(chromedp.ID("deposit-address")))
	due := read(t, browser, "amount due", chromedp.TextContent(chromedp.ID("amount-due")))
	chain := read(t, browser, "network", chromedp.TextContent(chromedp.ID("network")))
	rows := read(t, browser, "count receipts", chromedp.Evaluate[int](`document.querySelectorAll("#receipts tbody tr").length`))
	pays := read(t, browser, "count Pay buttons", chromedp.Evaluate[int](`document.querySelectorAll("#pay").length`))
	overflow := read(t, browser, "receipts overflow", chromedp.Evaluate[bool](`(() => { const c = document.getElementById("page").getBoundingClientRect(), r = document.getElementById("receipts").getBoundingClientRect(); return r.right > c.right || r.left < c.left })()`))
	if address != inv3.DepositAddress || due != "20.00" || chain != "TRON (TRC-20)" || rows != 2 || pays != 0 || overflow {
		t.Errorf("crypto page: address %q, due %q, network %q, %d receipts, %d Pay buttons, receipts past the card: %v; want %s, 20.00, TRON (TRC-20), 2, 0, false",
			address, due, chain, rows, pays, overflow, inv3.DepositAddress)
	}

	// Past its expiry; and no invoice at all.
	pc.open(expired.PaymentUrl, "expired")
	pc.open(srv.baseURL+"/pay/inv_"+strings.Repeat("0", 26), "not_found")

	// Bengali, from Accept-Language; ?lang= overrides it.
	inv5 := mustCreateInvoice(t, ctx, c, cardInvoice("browser-5"))
	if _, err := chromedp.Call(browser, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "bn-BD,bn;q=0.9,en;q=0.5"}}); err != nil {
		t.Fatalf("set Accept-Language: %v", err)
	}
	pc.open(inv5.PaymentUrl, "bengali")
	lang := read(t, browser, "lang", chromedp.Evaluate[string](`document.documentElement.lang`))
	payText := read(t, browser, "Pay text", chromedp.TextContent(chromedp.ID("pay")))
	if lang != "bn" || payText != "২৫.০০ USD পরিশোধ করুন" {
		t.Errorf("with Accept-Language bn: lang %q, Pay button %q; want bn and \"২৫.০০ USD পরিশোধ করুন\"", lang, payText)
	}
	browse(t, browser, "open ?lang=en", chromedp.Navigate(inv5.PaymentUrl+"?lang=en"), chromedp.WaitVisible(chromedp.ID("pay")))
	lang = read(t, browser, "lang", chromedp.Evaluate[string](`document.documentElement.lang`))
	payText = read(t, browser, "Pay text", chromedp.TextContent(chromedp.ID("pay")))
	if lang != "en" || payText != "Pay 25.00 USD" {
		t.Errorf("with Accept-Language bn and ?lang=en: lang %q, Pay button %q; want en and \"Pay 25.00 USD\"", lang, payText)
	}

	// The countdown ticks in the page's language.
	soon := cardInvoice("browser-6")
	soon.Expiry = durationpb.New(100 * time.Second)
	inv6 := mustCreateInvoice(t, ctx, c, soon)
	browse(t, browser, "open a soon-expiring invoice", chromedp.Navigate(inv6.PaymentUrl+"?lang=bn"), chromedp.WaitVisible(chromedp.ID("countdown")))
	first := read(t, browser, "countdown", chromedp.TextContent(chromedp.ID("countdown")))
	time.Sleep(1200 * time.Millisecond)
	second := read(t, browser, "countdown", chromedp.TextContent(chromedp.ID("countdown")))
	if first == second || !strings.Contains(second, "সেকেন্ড") || strings.ContainsAny(second, "0123456789") {
		t.Errorf("countdown %q then %q a second later; want it ticking, in Bengali with Bengali digits", first, second)
	}

	if got := cb.received(); len(got) != 2 {
		t.Errorf("the callback server saw %d requests %v; want 2 (pay, cancel)", len(got), got)
	}
	reqMu.Lock()
	defer reqMu.Unlock()
	if len(requested) < 10 {
		t.Errorf("saw %d browser requests %v; want every page and stylesheet load", len(requested), requested)
	}
	for _, r := range requested {
		switch {
		case strings.HasPrefix(r.url, srv.baseURL+"/"):
		case strings.HasPrefix(r.url, cb.URL+"/") && r.kind == string(network.ResourceTypeDocument), r.url == cb.URL+"/favicon.ico":
		case r.url == logo.URL+"/logo.png" && r.kind == string(network.ResourceTypeImage):
		default:
			t.Errorf("the browser requested %s (%s); want requests to paymentd only, besides navigating to the merchant and loading its logo", r.url, r.kind)
		}
	}
}

// newLogoServer serves a merchant's logo over https, as a logo host would.
func newLogoServer(t *testing.T) *httptest.Server {
	img := image.NewRGBA(image.Rect(0, 0, 80, 80))
	for y := range 80 {
		for x := range 80 {
			c := color.RGBA{15, 118, 110, 255}
			if (x > 18 && x < 62 && y > 16 && y < 28) || (x > 34 && x < 46 && y >= 28 && y < 64) {
				c = color.RGBA{255, 255, 255, 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/logo.png" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(buf.Bytes())
	}))
	t.Cleanup(s.Close)
	return s
}

// pageChecker opens page states and checks each: screenshots at three
// sizes (and the Pay button inside the window at each, where there is one),
// axe-core, and no content security policy violation.
type pageChecker struct {
	t       *testing.T
	browser context.Context
	dir     string
	axe     string // axe.min.js, or "" when it is not installed (outside CI)
	docs    string // docs/screenshots when regenerating them, else ""
}

// pageSizes are the window sizes every state is checked at.
var pageSizes = []struct{ w, h int64 }{{375, 667}, {800, 600}, {1280, 800}}

// axePath is axe-core's browser build, which .ci/run installs with npm.
func axePath() string {
	if p := os.Getenv("AXE_CORE_JS"); p != "" {
		return p
	}
	return filepath.Join("..", "..", ".ci", "node", "node_modules", "axe-core", "axe.min.js")
}

func newPageChecker(t *testing.T, browser context.Context) *pageChecker {
	pc := &pageChecker{t: t, browser: browser, dir: t.ArtifactDir()}
	if d := os.Getenv("PAGE_SHOTS"); d != "" {
		pc.dir = d
	}
	b, err := os.ReadFile(axePath())
	switch {
	case err == nil:
		pc.axe = string(b)
	case os.Getenv("CI") != "":
		t.Fatalf("axe-core not found at %s under CI (.ci/run installs it): %v", axePath(), err)
	default:
		t.Logf("axe-core not found at %s (npm install --prefix .ci/node axe-core@4); skipping the accessibility check", axePath())
	}
	if os.Getenv("PAYMENTD_UPDATE_SCREENSHOTS") != "" {
		pc.docs = filepath.Join("..", "..", "docs", "screenshots")
		if err := os.MkdirAll(pc.docs, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Record content security policy violations from before any script of
	// the page runs; the DevTools script itself is exempt from the policy.
	_, err = chromedp.Call(browser, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__csp = []; document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`})
	if err != nil {
		t.Fatalf("install the CSP listener: %v", err)
	}
	t.Logf("screenshots in %s", pc.dir)
	return pc
}

// open navigates to a page and checks it as the given state.
func (pc *pageChecker) open(u, state string) {
	t := pc.t
	t.Helper()
	browse(t, pc.browser, "open "+state+" page "+u, chromedp.EmulateViewport(pageSizes[0].w, pageSizes[0].h),
		chromedp.Navigate(u), chromedp.WaitReady(chromedp.ID("page")))
	pc.check(state)
}

// check checks the page on screen as the given state.
func (pc *pageChecker) check(state string) {
	t := pc.t
	t.Helper()
	pageState := state
	if state == "bengali" {
		pageState = "open"
	}
	if state == "not_found" {
		pageState = "notfound"
	}
	if got := read(t, pc.browser, "state", chromedp.Evaluate[string](`document.getElementById("page").dataset.state`)); got != pageState {
		t.Errorf("%s page: data-state %q; want %q", state, got, pageState)
	}
	hasPay := read(t, pc.browser, "Pay button", chromedp.Evaluate[bool](`document.getElementById("pay") !== null`))
	if wantPay := state == "open" || state == "bengali"; hasPay != wantPay {
		t.Errorf("%s page: Pay button present %v; want %v", state, hasPay, wantPay)
	}
	for _, sz := range pageSizes {
		browse(t, pc.browser, "resize", chromedp.EmulateViewport(sz.w, sz.h))
		if hasPay {
			inside := read(t, pc.browser, "Pay position", chromedp.Evaluate[bool](`(() => { const r = document.getElementById("pay").getBoundingClientRect();
				return r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth })()`))
			if !inside {
				t.Errorf("%s page at %dx%d: the Pay button is outside the window; want it visible without scrolling", state, sz.w, sz.h)
			}
		}
		wide := read(t, pc.browser, "page width", chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
		if wide {
			t.Errorf("%s page at %dx%d: the page is wider than the window; want no sideways scrolling", state, sz.w, sz.h)
		}
		shot := read(t, pc.browser, "screenshot", chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join(pc.dir, fmt.Sprintf("%s-%dx%d.png", state, sz.w, sz.h)), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if pc.docs != "" {
		browse(t, pc.browser, "resize", chromedp.EmulateViewport(pageSizes[0].w, pageSizes[0].h))
		shot := read(t, pc.browser, "full screenshot", chromedp.FullScreenshot(100))
		if err := os.WriteFile(filepath.Join(pc.docs, state+".png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if csp := read(t, pc.browser, "CSP violations", chromedp.Evaluate[[]string](`window.__csp || []`)); len(csp) > 0 {
		t.Errorf("%s page: content security policy violations %v; want none", state, csp)
	}
	if pc.axe == "" {
		return
	}
	type violation struct {
		ID, Impact, Help string
		Nodes            []string
	}
	vs := read(t, pc.browser, "axe-core", chromedp.Evaluate[[]violation](pc.axe+`;
		axe.run(document, { resultTypes: ["violations"] }).then(r => r.violations.map(v => ({
			ID: v.id, Impact: v.impact || "", Help: v.help, Nodes: v.nodes.map(n => n.target.join(" ")) })))`, chromedp.EvalAwaitPromise))
	for _, v := range vs {
		if v.Impact == "serious" || v.Impact == "critical" {
			t.Errorf("%s page: axe-core %s violation %s (%s) at %v", state, v.Impact, v.ID, v.Help, v.Nodes)
		} else {
			t.Logf("%s page: axe-core %s finding %s (%s) at %v", state, v.Impact, v.ID, v.Help, v.Nodes)
		}
	}
}

// decodeQR reads the QR code on the page back from a screenshot of it.
func (pc *pageChecker) decodeQR() string {
	t := pc.t
	t.Helper()
	shot := read(t, pc.browser, "QR screenshot", chromedp.ScreenshotScale(chromedp.CSS(`#qr svg`), 2))
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("decode the QR screenshot: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatalf("QR bitmap: %v", err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("read the QR code: %v", err)
	}
	return res.GetText()
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
