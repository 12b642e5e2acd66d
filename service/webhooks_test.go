package service

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store"
)

func TestBlockedReason(t *testing.T) {
	for _, tc := range []struct {
		ip      string
		blocked bool
	}{
		{"127.0.0.1", true}, {"127.255.0.9", true}, {"::1", true}, {"::ffff:127.0.0.1", true},
		{"10.0.0.1", true}, {"172.16.5.4", true}, {"192.168.0.1", true}, {"169.254.169.254", true},
		{"100.64.0.1", true}, {"100.127.255.254", true}, {"fc00::1", true}, {"fd12:3456::1", true},
		{"fe80::1", true}, {"0.0.0.0", true}, {"::", true}, {"0.1.2.3", true}, {"224.0.0.1", true},
		{"255.255.255.255", true}, {"64:ff9b::7f00:1", true}, {"64:ff9b::a00:1", true},
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"100.63.255.255", false}, {"100.128.0.0", false},
		{"172.32.0.1", false}, {"2606:4700:4700::1111", false}, {"64:ff9b::808:808", false},
	} {
		got := blockedReason(netip.MustParseAddr(tc.ip))
		if (got != "") != tc.blocked {
			t.Errorf("blockedReason(%s) = %q; want blocked %v", tc.ip, got, tc.blocked)
		}
	}
}

// TestWebhookClientGuard drives the delivery client at real listeners:
// with the guard on, no connection to a non-public address is made, by
// address or by a name resolving to one, and a redirect (here from a
// destination the test admits) is returned, not followed.
func TestWebhookClientGuard(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer target.Close()
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	defer redirector.Close()
	port := target.URL[strings.LastIndex(target.URL, ":"):]
	redirAddr := netip.MustParseAddrPort(strings.TrimPrefix(redirector.URL, "http://"))

	guarded := newWebhookClient(false, 2*time.Second, func(ap netip.AddrPort) bool { return ap == redirAddr })
	urls := []string{target.URL, "http://localhost" + port, "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/"}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		defer ln.Close()
		urls = append(urls, "http://"+ln.Addr().String()+"/")
	}
	for _, u := range urls {
		resp, err := guarded.Post(u, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			t.Errorf("POST %s: %s; want refused", u, resp.Status)
			continue
		}
		var blocked *blockedDestError
		if !errors.As(err, &blocked) {
			t.Errorf("POST %s: %v; want a refusal by the guard", u, err)
		}
	}
	resp, err := guarded.Post(redirector.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("POST to the admitted redirector: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Errorf("redirect answered %s; want the 302 itself", resp.Status)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback target got %d requests; want none", n)
	}

	// With private destinations allowed, the same target is reached.
	open := newWebhookClient(true, 2*time.Second, nil)
	resp, err = open.Post(target.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Errorf("with private destinations allowed the target got %d requests; want 1", hits.Load())
	}
}

func TestRetryDelay(t *testing.T) {
	cfg := WebhookConfig{}.withDefaults()
	prevMin := time.Duration(0)
	total := time.Duration(0)
	attempts := 1
	want := cfg.RetryBase
	for n := 1; n < 40; n++ {
		if n > 1 {
			want = min(2*want, cfg.RetryMaxDelay)
		}
		d := cfg.retryDelay(n)
		if d < want*8/10 || d > want*12/10 {
			t.Errorf("retryDelay(%d) = %s; want %s ±20%%", n, d, want)
		}
		if want*8/10 < prevMin {
			t.Errorf("retryDelay(%d) may be shorter than the previous one", n)
		}
		prevMin = want * 8 / 10
		if total+want <= cfg.RetryWindow {
			total += want
			attempts++
		}
	}
	// The documented schedule: 21 attempts over the 72 hours (give or take the jitter).
	if attempts != 21 {
		t.Errorf("%d attempts fit in the default window; docs/webhooks.md says 21", attempts)
	}
}

func TestEventMessageName(t *testing.T) {
	for typ, want := range map[string]string{
		"payment.succeeded":  "paymentd.v1.Payment",
		"refund.failed":      "paymentd.v1.Refund",
		"invoice.paid":       "paymentd.v1.Invoice",
		"payout.completed":   "paymentd.v1.Payout",
		"payment_link.added": "paymentd.v1.PaymentLink",
	} {
		if got := eventMessageName(typ); string(got) != want {
			t.Errorf("eventMessageName(%s) = %s; want %s", typ, got, want)
		}
	}
}

func TestCallbackURL(t *testing.T) {
	if got := callbackURL(&pb.Invoice{CallbackUrl: "https://example.com/cb"}); got != "https://example.com/cb" {
		t.Errorf("callbackURL(invoice) = %q", got)
	}
	if got := callbackURL(&pb.Payout{CallbackUrl: "https://example.com/po"}); got != "https://example.com/po" {
		t.Errorf("callbackURL(payout) = %q", got)
	}
	if got := callbackURL(&pb.Invoice{}); got != "" {
		t.Errorf("callbackURL(invoice without one) = %q", got)
	}
	if got := callbackURL(&pb.Payment{Id: "pay_1"}); got != "" {
		t.Errorf("callbackURL(payment) = %q; payments have no callback_url", got)
	}
}

func TestWebhookTargetWants(t *testing.T) {
	for _, tc := range []struct {
		types []string
		typ   string
		want  bool
	}{
		{nil, "payment.succeeded", true},
		{[]string{"payment.succeeded"}, "payment.succeeded", true},
		{[]string{"payment.succeeded"}, "payment.failed", false},
		{[]string{"payment.*"}, "payment.failed", true},
		{[]string{"payment.*"}, "payout.completed", false},
		{[]string{"payment.*"}, "payment_link.added", false},
		{[]string{"*"}, "refund.failed", true},
	} {
		if got := (store.WebhookTarget{EventTypes: tc.types}).Wants(tc.typ); got != tc.want {
			t.Errorf("%v wants %s = %v; want %v", tc.types, tc.typ, got, tc.want)
		}
	}
}
