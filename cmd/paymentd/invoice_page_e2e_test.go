package main

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

var (
	inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	inlineStyle  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
	pageState    = regexp.MustCompile(`id="page" data-state="([a-z_]+)"`)
)

func sha256Source(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// TestInvoicePageHeaders checks the headers of every state of the hosted
// page, in both languages: the content security policy is exactly as strict
// as the state needs (its one inline script and, with a brand colour, its
// one inline style allowed by hash; the logo's origin as the only other
// image source; fetches to itself only where the page refreshes itself),
// and nothing can frame, cache or leak it. Every string comes from the
// catalogue (a missing key would show as ⟦key⟧).
func TestInvoicePageHeaders(t *testing.T) {
	t.Parallel()
	srv, c := invServer(t, "--provider-timeout", "200ms", "--reconcile-interval", "1h")
	ctx := withKey(t.Context(), srv.key)

	// Unbranded first: no inline style, images from the page's origin only.
	plain := mustCreateInvoice(t, ctx, c, cardInvoice("hdr-plain"))
	checkPageHeaders(t, srv, "/pay/"+plain.Id, http.StatusOK, "open", "", "https://shop.example", false)

	cli(t, "accounts", "update", "--db", srv.db, "--display-name", "Chai & Co", "--accent-color", "#fbbf24",
		"--logo-url", "https://cdn.chai.example/brand/logo.png?v=2", "--support-url", "https://chai.example/help")
	const logoOrigin = "https://cdn.chai.example"

	open := mustCreateInvoice(t, ctx, c, cardInvoice("hdr-open"))
	body := checkPageHeaders(t, srv, "/pay/"+open.Id, http.StatusOK, "open", logoOrigin, "https://shop.example", false)
	if !strings.Contains(body, `id="merchant">Chai &amp; Co<`) || !strings.Contains(body, `src="https://cdn.chai.example/brand/logo.png?v=2"`) ||
		!strings.Contains(body, `href="https://chai.example/help"`) || !strings.Contains(body, "--accent:#fbbf24;--accent-text:#000000;") {
		t.Errorf("branded page lacks the display name, logo, support link or accent colour (with dark text on amber):\n%s", body)
	}
	for _, lang := range []string{"bn", "en"} {
		bodyIn := checkPageHeaders(t, srv, "/pay/"+open.Id+"?lang="+lang, http.StatusOK, "open", logoOrigin, "https://shop.example", false)
		if !strings.Contains(bodyIn, `<html lang="`+lang+`"`) || !strings.Contains(bodyIn, `action="/pay/`+open.Id+`?lang=`+lang+`"`) {
			t.Errorf("?lang=%s: page not in that language, or its form drops the choice:\n%s", lang, bodyIn)
		}
	}
	for accept, want := range map[string]string{"fr-FR, bn;q=0.8, en;q=0.5": "bn", "bn-BD": "bn", "de": "en", "": "en", "en-GB,bn;q=0.9": "en"} {
		req, _ := http.NewRequest("GET", srv.baseURL+"/pay/"+open.Id, nil)
		req.Header.Set("Accept-Language", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(raw), `<html lang="`+want+`"`) {
			t.Errorf("Accept-Language %q: page not in %s", accept, want)
		}
		checkPolicy(t, "Accept-Language "+accept, resp.Header, string(raw), "open", logoOrigin, "https://shop.example", false)
	}

	// A declined card (402) and a form error (400) keep the page's policy.
	code, _, _ := postPayPage(t, srv, open.Id, url.Values{"action": {"pay"}, "payment_method": {"pm_card_declined"}})
	if code != http.StatusPaymentRequired {
		t.Errorf("declined: %d; want 402", code)
	}
	checkPagePost(t, srv, open.Id, url.Values{"action": {"nothing"}}, http.StatusBadRequest, "open", logoOrigin)

	// The unsettled attempt: 202 on the post, the same state on every visit.
	unsettled := mustCreateInvoice(t, ctx, c, cardInvoice("hdr-unsettled"))
	checkPagePost(t, srv, unsettled.Id, url.Values{"action": {"pay"}, "payment_method": {"pm_card_timeout"}}, http.StatusAccepted, "unsettled", logoOrigin)
	body = checkPageHeaders(t, srv, "/pay/"+unsettled.Id, http.StatusOK, "unsettled", logoOrigin, "https://shop.example", true)
	if strings.Contains(body, `id="pay"`) || strings.Contains(body, `id="cancel"`) || !strings.Contains(body, "Do not pay again") {
		t.Errorf("unsettled page offers Pay or Cancel, or does not say not to pay again:\n%s", body)
	}
	checkPageHeaders(t, srv, "/pay/"+unsettled.Id+"?lang=bn", http.StatusOK, "unsettled", logoOrigin, "https://shop.example", true)

	crypto := mustCreateInvoice(t, ctx, c, usdtInvoice("hdr-crypto", ""))
	body = checkPageHeaders(t, srv, "/pay/"+crypto.Id, http.StatusOK, "crypto", logoOrigin, "https://shop.example", true)
	if !strings.Contains(body, "<svg") || !strings.Contains(body, `<span id="amount-due">25.00</span>`) {
		t.Errorf("crypto page lacks the QR code or shows the amount due in more than display precision:\n%s", body)
	}
	checkPageHeaders(t, srv, "/pay/"+crypto.Id+"?lang=bn", http.StatusOK, "crypto", logoOrigin, "https://shop.example", true)
	mustReceipt(t, ctx, c, crypto.Id, "0xaa", 10_000_000, 30)
	checkPageHeaders(t, srv, "/pay/"+crypto.Id, http.StatusOK, "partially_paid", logoOrigin, "https://shop.example", true)
	mustReceipt(t, ctx, c, crypto.Id, "0xab", 15_000_000, 30)
	checkPageHeaders(t, srv, "/pay/"+crypto.Id, http.StatusOK, "paid", logoOrigin, "https://shop.example", false)

	paid := mustCreateInvoice(t, ctx, c, cardInvoice("hdr-paid"))
	if code, _, _ := postPayPage(t, srv, paid.Id, url.Values{"action": {"pay"}}); code != http.StatusSeeOther {
		t.Fatalf("pay: %d; want 303", code)
	}
	checkPageHeaders(t, srv, "/pay/"+paid.Id, http.StatusOK, "paid", logoOrigin, "https://shop.example", false)
	checkPageHeaders(t, srv, "/pay/"+paid.Id+"?lang=bn", http.StatusOK, "paid", logoOrigin, "https://shop.example", false)

	canceled := mustCreateInvoice(t, ctx, c, cardInvoice("hdr-canceled"))
	if code, _, _ := postPayPage(t, srv, canceled.Id, url.Values{"action": {"cancel"}}); code != http.StatusSeeOther {
		t.Fatalf("cancel: %d; want 303", code)
	}
	checkPageHeaders(t, srv, "/pay/"+canceled.Id, http.StatusOK, "canceled", logoOrigin, "https://shop.example", false)

	short := cardInvoice("hdr-expired")
	short.Expiry = durationpb.New(time.Second)
	expired := mustCreateInvoice(t, ctx, c, short)
	time.Sleep(1100 * time.Millisecond)
	checkPageHeaders(t, srv, "/pay/"+expired.Id, http.StatusOK, "expired", logoOrigin, "https://shop.example", false)
	checkPageHeaders(t, srv, "/pay/"+expired.Id+"?lang=bn", http.StatusOK, "expired", logoOrigin, "https://shop.example", false)

	for _, path := range []string{"/pay/inv_" + strings.Repeat("0", 26), "/pay/nope?lang=bn", "/pay/"} {
		checkPageHeaders(t, srv, path, http.StatusNotFound, "notfound", "", "", false)
	}
}

// checkPageHeaders GETs a page and checks its status, state and headers;
// it returns the body.
func checkPageHeaders(t *testing.T, srv *testServer, path string, code int, state, logoOrigin, formOrigin string, refresh bool) string {
	t.Helper()
	gotCode, hdr, body := getPayPage(t, srv, path)
	if gotCode != code {
		t.Errorf("GET %s: %d; want %d", path, gotCode, code)
	}
	checkPolicy(t, "GET "+path, hdr, body, state, logoOrigin, formOrigin, refresh)
	return body
}

func checkPagePost(t *testing.T, srv *testServer, id string, form url.Values, code int, state, logoOrigin string) {
	t.Helper()
	req, err := http.NewRequest("POST", srv.baseURL+"/pay/"+id, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := invNoRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code {
		t.Errorf("POST /pay/%s %v: %d; want %d", id, form, resp.StatusCode, code)
	}
	checkPolicy(t, "POST /pay/"+id, resp.Header, string(raw), state, logoOrigin, "https://shop.example", state == "unsettled")
}

// checkPolicy checks the headers every page state sends, and that the
// content security policy allows exactly what the body needs.
func checkPolicy(t *testing.T, what string, hdr http.Header, body, state, logoOrigin, formOrigin string, refresh bool) {
	t.Helper()
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
		"X-Content-Type-Options": "nosniff", "Content-Type": "text/html; charset=utf-8", "Vary": "Accept-Language"} {
		if got := hdr.Get(h); got != want {
			t.Errorf("%s (%s): %s %q; want %q", what, state, h, got, want)
		}
	}
	if m := pageState.FindStringSubmatch(body); m == nil || m[1] != state {
		t.Errorf("%s: page state %v; want %s", what, m, state)
	}
	if strings.Contains(body, "⟦") {
		t.Errorf("%s (%s): a string is missing from the catalogue:\n%s", what, state, body)
	}
	want := "default-src 'none'; style-src 'self'"
	if m := inlineStyle.FindStringSubmatch(body); m != nil {
		want += " " + sha256Source(m[1])
	}
	want += "; img-src 'self'"
	if logoOrigin != "" && state != "notfound" {
		want += " " + logoOrigin
	}
	if m := inlineScript.FindStringSubmatch(body); m != nil {
		want += "; script-src " + sha256Source(m[1])
	} else if state != "notfound" {
		t.Errorf("%s (%s): no inline script; want the page's script", what, state)
	}
	if refresh {
		want += "; connect-src 'self'"
	}
	want += "; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
	if formOrigin != "" {
		want += " " + formOrigin
	}
	if got := hdr.Get("Content-Security-Policy"); got != want {
		t.Errorf("%s (%s): Content-Security-Policy\n %s\nwant\n %s", what, state, got, want)
	}
	if n := strings.Count(body, "<script"); n > 1 || strings.Contains(body, "<script src") || strings.Contains(body, " style=") || strings.Contains(body, " on") && regexp.MustCompile(`\son[a-z]+=`).MatchString(body) {
		t.Errorf("%s (%s): %d script elements, or an external script, a style attribute or an inline event handler; want one hashed inline script and none of the others", what, state, n)
	}
}

// TestAccountsUpdate sets and clears brand settings with the CLI, and
// refuses bad ones with a message naming the flag.
func TestAccountsUpdate(t *testing.T) {
	t.Parallel()
	db := testDB(t)
	cli(t, "migrate", "--db", db)
	cli(t, "accounts", "create", "--db", db, "--name", "ops-name")
	out, _ := cli(t, "accounts", "update", "--db", db, "--display-name", "  Rupa Books ", "--accent-color", "#ABC",
		"--support-email", "help@rupa.example", "--logo-url", "https://rupa.example/logo.svg")
	if !strings.Contains(out, "Updated acct_") {
		t.Errorf("accounts update: %q", out)
	}
	list, _ := cli(t, "accounts", "list", "--db", db)
	for _, want := range []string{"ops-name", "Rupa Books", "#aabbcc", "help@rupa.example", "https://rupa.example/logo.svg"} {
		if !strings.Contains(list, want) {
			t.Errorf("accounts list lacks %q:\n%s", want, list)
		}
	}
	// Only the flags given change; "" clears one.
	cli(t, "accounts", "update", "--db", db, "--logo-url", "")
	list, _ = cli(t, "accounts", "list", "--db", db)
	if strings.Contains(list, "logo.svg") || !strings.Contains(list, "#aabbcc") {
		t.Errorf("after clearing the logo:\n%s\nwant no logo and the colour kept", list)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--logo-url", "http://rupa.example/logo.png"}, "--logo-url must use https"},
		{[]string{"--logo-url", "https://127.0.0.1/logo.png"}, "--logo-url points to a loopback address"},
		{[]string{"--logo-url", "https://10.1.2.3/logo.png"}, "--logo-url points to a private address"},
		{[]string{"--logo-url", "https://[fd00::1]/logo.png"}, "--logo-url points to a unique-local address"},
		{[]string{"--logo-url", "https://169.254.169.254/latest"}, "--logo-url points to a link-local address"},
		{[]string{"--logo-url", "https://localhost/logo.png"}, "--logo-url points to a loopback address"},
		{[]string{"--logo-url", "https://0x7f000001/logo.png"}, "non-standard form"},
		{[]string{"--logo-url", "https://intranet/logo.png"}, "single-label host name"},
		{[]string{"--logo-url", "https://user:pw@rupa.example/logo.png"}, "user name or password"},
		{[]string{"--logo-url", "javascript:alert(1)"}, "--logo-url must be an absolute https URL"},
		{[]string{"--support-url", "https://192.168.1.1/"}, "--support-url points to a private address"},
		{[]string{"--accent-color", "red"}, "--accent-color must be a hex colour"},
		{[]string{"--accent-color", "#12345g"}, "--accent-color must be a hex colour"},
		{[]string{"--accent-color", "#1234"}, "--accent-color must be a hex colour"},
		{[]string{"--support-email", "Rupa <help@rupa.example>"}, "--support-email must be a plain e-mail address"},
		{[]string{"--support-email", "not-an-address"}, "--support-email must be a plain e-mail address"},
		{[]string{"--display-name", strings.Repeat("x", 101)}, "--display-name must be at most 100 characters"},
		{[]string{"--display-name", "two\nlines"}, "--display-name must be plain text on one line"},
		{nil, "give at least one of"},
	} {
		var stdout, stderr strings.Builder
		err := run(t.Context(), append([]string{"accounts", "update", "--db", db}, tc.args...), noEnv, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("accounts update %q: %v; want an error containing %q", tc.args, err, tc.want)
		}
	}
	// Nothing was half-written by the refused updates.
	after, _ := cli(t, "accounts", "list", "--db", db)
	if after != list {
		t.Errorf("refused updates changed the account:\n%s\nwant\n%s", after, list)
	}
	// A private logo host is accepted for local development only when asked.
	cli(t, "accounts", "update", "--db", db, "--logo-url", "https://127.0.0.1:8443/logo.png", "--allow-private-urls")
}

// TestInvoicePageAfterLateSettlement: a card payment that got no answer is
// settled later by the reconciler (the sandbox reports pm_card_timeout's
// payments captured). From the first answer on, the page never offers a
// second payment: it shows the attempt as being confirmed until the
// invoice reflects it, and then the invoice as paid.
func TestInvoicePageAfterLateSettlement(t *testing.T) {
	t.Parallel()
	srv, c := invServer(t, "--provider-timeout", "200ms", "--reconcile-schedule", "300ms,50ms", "--reconcile-interval", "20ms")
	ctx := withKey(t.Context(), srv.key)
	inv := mustCreateInvoice(t, ctx, c, cardInvoice("late-1"))
	checkPagePost(t, srv, inv.Id, url.Values{"action": {"pay"}, "payment_method": {"pm_card_timeout"}}, http.StatusAccepted, "unsettled", "")
	deadline := time.Now().Add(20 * time.Second)
	for {
		pays, err := srv.payments.ListPayments(ctx, &pb.ListPaymentsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(pays.Payments) != 1 || pays.Payments[0].Metadata["invoice_id"] != inv.Id {
			t.Fatalf("payments %v; want the one attempt for %s", pays.Payments, inv.Id)
		}
		if pays.Payments[0].Status == "succeeded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("payment still %s after 20s; want the reconciler to settle it", pays.Payments[0].Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, _, body := getPayPage(t, srv, "/pay/"+inv.Id)
	m := pageState.FindStringSubmatch(body)
	if m == nil || (m[1] != "unsettled" && m[1] != "paid") || strings.Contains(body, `id="pay"`) {
		t.Errorf("page after the late answer: state %v, Pay button %v; want unsettled or paid, and no Pay button", m, strings.Contains(body, `id="pay"`))
	}
}

// TestInvoicePageOtherMethodsAre405: a payment page's address with a method
// it does not take is 405 with Allow, not the "no invoice at this address"
// page, which would be false for an invoice that exists.
func TestInvoicePageOtherMethodsAre405(t *testing.T) {
	srv := newServer(t)
	code, inv, _ := srv.restDo(t, "POST", "/v1/invoices", srv.key, "page-405",
		`{"amount":2500,"currency":"USD","transaction_reference":"page-405","callback_url":"https://shop.example/cb"}`)
	if code != 200 {
		t.Fatalf("create invoice: %d %v", code, inv)
	}
	for _, method := range []string{"PUT", "DELETE", "PATCH"} {
		req, _ := http.NewRequest(method, srv.baseURL+"/pay/"+inv["id"].(string), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD, POST" {
			t.Errorf("%s /pay/{id}: %d, Allow %q; want 405 with Allow: GET, HEAD, POST", method, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	resp, err := http.Get(srv.baseURL + "/pay/inv_missing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /pay/inv_missing: %d; want 404", resp.StatusCode)
	}
}
