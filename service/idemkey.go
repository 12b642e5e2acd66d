package service

import (
	"net/http"
)

// Idempotency keys are honoured exactly or refused: a key that could be
// altered on its way (the gateway drops header values that are not valid
// gRPC metadata, and some proxies fold or re-encode non-ASCII bytes) would
// let a retry run as a new call and move money twice. A key is therefore 1
// to maxIdemKey bytes, each printable ASCII from '!' (0x21) to '~' (0x7E):
// letters, digits and punctuation, no spaces, no control characters, no
// non-ASCII text. A UUID or an order reference fits. Exactly one key may be
// sent, and it must not hold a card number.
const maxIdemKey = 255

// idemKeyHeader is the REST header, idemKeyMetadata the gRPC metadata key.
const (
	idemKeyHeader   = "Idempotency-Key"
	idemKeyMetadata = "idempotency-key"
)

// checkIdempotencyKey validates the values sent for the idempotency key
// (none means the call has no key). Its errors never quote the key.
func checkIdempotencyKey(vals []string) error {
	if len(vals) == 0 {
		return nil
	}
	const hint = "send 1–255 printable ASCII characters (letters, digits and punctuation such as - _ . : /, no spaces), for example a UUID"
	if len(vals) > 1 {
		return Invalid("idempotency_key", "idempotency_key_invalid", "%d idempotency keys were sent; send exactly one: %s.", len(vals), hint)
	}
	key := vals[0]
	if key == "" {
		return Invalid("idempotency_key", "idempotency_key_invalid", "The idempotency key is empty or only white space; %s.", hint)
	}
	if len(key) > maxIdemKey {
		return Invalid("idempotency_key", "idempotency_key_invalid", "The idempotency key must be at most %d bytes; got %d.", maxIdemKey, len(key))
	}
	if containsPAN(key) {
		return Invalid("idempotency_key", "card_number_refused",
			"The idempotency key looks like it holds a card number; paymentd never accepts card numbers. Use a key of your own such as a UUID or an order reference.")
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x21 || c > 0x7e {
			what := "a character that is not printable ASCII"
			switch {
			case c == ' ':
				what = "a space"
			case c == '\t':
				what = "a tab"
			case c < 0x20 || c == 0x7f:
				what = "a control character"
			}
			return Invalid("idempotency_key", "idempotency_key_invalid",
				"The idempotency key holds %s at byte %d; it is refused rather than altered, since a retry must carry the very same key: %s.", what, i+1, hint)
		}
	}
	return nil
}

// checkRESTHeaders refuses a REST request whose Idempotency-Key header
// cannot be honoured exactly. It runs on the raw header, before the gateway
// turns it into gRPC metadata (which would drop a non-ASCII value and run the
// call with no key at all). net/http has already trimmed the value's
// surrounding white space, so a header of only white space arrives empty and
// is refused.
//
// An Authorization header with bytes outside printable ASCII is refused here
// too: gRPC metadata cannot carry it, so the gateway would drop it and the
// call would be answered as if no key had been sent.
func checkRESTHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, v := range r.Header["Authorization"] {
			if !printableASCII(v) {
				writeDomainError(w, r, &Error{Kind: KindUnauthenticated, Code: "api_key_invalid",
					Message: "The authorization header holds characters that are not printable ASCII; API keys are `ak_test_` or `ak_live_` and letters and digits: check that the whole key was copied, and nothing else."})
				return
			}
		}
		if vals, present := r.Header[idemKeyHeader]; present {
			if err := checkIdempotencyKey(vals); err != nil {
				writeDomainError(w, r, err.(*Error))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
