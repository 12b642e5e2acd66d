// Package webhook signs and verifies paymentd's webhook deliveries.
//
// Every delivery carries the header
//
//	X-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//
// with one v1 value per signing secret (two while a secret is being
// rotated). A receiver verifies it with the endpoint's secret (whsec_…) over
// the raw request body, before decoding it:
//
//	body, _ := io.ReadAll(r.Body)
//	err := webhook.Verify(secret, r.Header.Get("X-Webhook-Signature"), body, 5*time.Minute)
//
// The timestamp is part of what is signed, so a captured delivery cannot be
// replayed outside the tolerance window.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock, in either direction, when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// Header names of a delivery.
const (
	HeaderSignature = "X-Webhook-Signature"
	HeaderTimestamp = "X-Webhook-Timestamp"
	HeaderEvent     = "X-Webhook-Event"
	HeaderID        = "X-Webhook-Id"
)

// Errors returned by Verify.
var (
	// ErrMalformed: the header is not t=<unix>,v1=<hex>[,v1=<hex>…].
	ErrMalformed = errors.New("webhook: signature header is malformed")
	// ErrTimestamp: the signed timestamp is outside the tolerance.
	ErrTimestamp = errors.New("webhook: timestamp is outside the tolerance")
	// ErrSignature: no v1 value matches the body signed with the secret.
	ErrSignature = errors.New("webhook: signature does not match")
)

// Sign returns the signature header value for body sent at t, signed with secret.
func Sign(secret string, t time.Time, body []byte) string {
	return SignAll(t, body, secret)
}

// SignAll returns the signature header value with one v1 per secret, as
// sent while a secret is being rotated.
func SignAll(t time.Time, body []byte, secrets ...string) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=")
	b.WriteString(ts)
	for _, s := range secrets {
		b.WriteString(",v1=")
		b.WriteString(hex.EncodeToString(mac(s, ts, body)))
	}
	return b.String()
}

func mac(secret, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, []byte(secret))
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks a signature header against the raw body and secret: the
// timestamp must be within tolerance of now in either direction (tolerance
// <= 0 means DefaultTolerance) and one of the v1 values must be the body's
// HMAC-SHA256, compared in constant time.
func Verify(secret, header string, body []byte, tolerance time.Duration) error {
	return VerifyAt(secret, header, body, tolerance, time.Now())
}

// VerifyAt is Verify with the receiver's clock reading given.
func VerifyAt(secret, header string, body []byte, tolerance time.Duration, now time.Time) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return ErrMalformed
		}
		switch k {
		case "t":
			if ts != "" {
				return ErrMalformed
			}
			ts = v
		case "v1":
			sig, err := hex.DecodeString(v)
			if err != nil || len(sig) != sha256.Size {
				return ErrMalformed
			}
			sigs = append(sigs, sig)
		}
		// Other schemes (v0, v2 …) are ignored, so that new ones can be added.
	}
	if ts == "" || len(sigs) == 0 {
		return ErrMalformed
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrMalformed
	}
	if d := now.Sub(time.Unix(unix, 0)); d > tolerance || d < -tolerance {
		return ErrTimestamp
	}
	want := mac(secret, ts, body)
	ok := false
	for _, sig := range sigs {
		// Check every value, so the time taken does not depend on which one matched.
		if hmac.Equal(sig, want) {
			ok = true
		}
	}
	if !ok {
		return ErrSignature
	}
	return nil
}
