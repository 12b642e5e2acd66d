package webhook_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paymentd/paymentd/webhook"
)

const (
	secret = "whsec_3mQ2sWkN9vXb7LcPz4HdRt8YfJa1GeUo"
	body   = `{"id":"evt_01","event":"payment.succeeded","timestamp":"2026-02-09T21:30:00.000Z","data":{"id":"pay_01","amount":"2000"}}`
)

func TestSignMatchesDocumentedScheme(t *testing.T) {
	at := time.Unix(1770672600, 0)
	got := webhook.Sign(secret, at, []byte(body))
	// Computed independently: printf '%s.%s' 1770672600 "$body" | openssl dgst -sha256 -hmac "$secret"
	const want = "t=1770672600,v1=" // the hex follows; checked through Verify and openssl below
	if !strings.HasPrefix(got, want) || len(got) != len(want)+64 {
		t.Fatalf("Sign = %q; want t=1770672600,v1=<64 hex digits>", got)
	}
	if err := webhook.VerifyAt(secret, got, []byte(body), time.Minute, at); err != nil {
		t.Fatalf("VerifyAt(own signature) = %v; want nil", err)
	}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	sig := webhook.Sign(secret, now, []byte(body))
	rotated := webhook.SignAll(now, []byte(body), "whsec_new", secret)
	for _, tc := range []struct {
		name   string
		secret string
		header string
		body   string
		want   error
	}{
		{"valid", secret, sig, body, nil},
		{"valid with spaces", secret, strings.ReplaceAll(sig, ",", ", "), body, nil},
		{"rotation: old secret", secret, rotated, body, nil},
		{"rotation: new secret", "whsec_new", rotated, body, nil},
		{"changed body", secret, sig, strings.Replace(body, "2000", "2001", 1), webhook.ErrSignature},
		{"body with trailing newline", secret, sig, body + "\n", webhook.ErrSignature},
		{"wrong secret", "whsec_wrong", sig, body, webhook.ErrSignature},
		{"10 minutes old", secret, webhook.Sign(secret, now.Add(-10*time.Minute), []byte(body)), body, webhook.ErrTimestamp},
		{"10 minutes in the future", secret, webhook.Sign(secret, now.Add(10*time.Minute), []byte(body)), body, webhook.ErrTimestamp},
		{"timestamp changed after signing", secret, strings.Replace(sig, "t=", "t=1", 1), body, webhook.ErrTimestamp},
		{"empty header", secret, "", body, webhook.ErrMalformed},
		{"no v1", secret, "t=" + strconv.FormatInt(now.Unix(), 10), body, webhook.ErrMalformed},
		{"no t", secret, sig[strings.Index(sig, "v1="):], body, webhook.ErrMalformed},
		{"v1 not hex", secret, "t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=zz", body, webhook.ErrMalformed},
		{"two t", secret, sig + ",t=1", body, webhook.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := webhook.Verify(tc.secret, tc.header, []byte(tc.body), 5*time.Minute)
			if !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyToleranceBothDirections(t *testing.T) {
	now := time.Unix(1770672600, 0)
	for _, off := range []time.Duration{-4*time.Minute - 59*time.Second, 4*time.Minute + 59*time.Second} {
		h := webhook.Sign(secret, now.Add(off), []byte(body))
		if err := webhook.VerifyAt(secret, h, []byte(body), 0, now); err != nil {
			t.Errorf("signed %v from now, default tolerance: %v; want nil", off, err)
		}
	}
	for _, off := range []time.Duration{-5*time.Minute - time.Second, 5*time.Minute + time.Second} {
		h := webhook.Sign(secret, now.Add(off), []byte(body))
		if err := webhook.VerifyAt(secret, h, []byte(body), 0, now); !errors.Is(err, webhook.ErrTimestamp) {
			t.Errorf("signed %v from now, default tolerance: %v; want ErrTimestamp", off, err)
		}
	}
}

// TestOpenSSLCommand runs the command line shown in docs/webhooks.md and
// checks that it computes the same v1 as Sign.
func TestOpenSSLCommand(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "body.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	header := webhook.Sign(secret, at, []byte(body))
	script := `t=$(printf '%s' "$SIG" | tr ',' '\n' | sed -n 's/^t=//p')
{ printf '%s.' "$t"; cat body.json; } | openssl dgst -sha256 -hmac "$SECRET" -r | cut -d' ' -f1`
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SIG="+header, "SECRET="+secret)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	if got, want := "v1="+strings.TrimSpace(string(out)), header[strings.Index(header, "v1="):]; got != want {
		t.Errorf("openssl computed %s; Sign computed %s", got, want)
	}
}

func ExampleVerify() {
	// In a receiver: body is the raw request body, header the
	// X-Webhook-Signature request header.
	header := webhook.Sign(secret, time.Now(), []byte(body))
	if err := webhook.Verify(secret, header, []byte(body), 5*time.Minute); err != nil {
		fmt.Println("reject:", err)
		return
	}
	fmt.Println("verified")
	// Output: verified
}
