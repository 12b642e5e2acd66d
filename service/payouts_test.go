package service

import (
	"math"
	"testing"

	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/providers/sandbox"
	"github.com/paymentd/paymentd/store"
)

func TestPayoutFee(t *testing.T) {
	for _, c := range []struct {
		fixed, bps, amount, fee int64
		ok                      bool
	}{
		{0, 0, 5000, 0, true},
		{25, 100, 5000, 75, true},
		{25, 100, 4851, 74, true}, // 48.51 rounds up
		{7, 333, 1, 8, true},
		{0, 10_000, paymentd.MaxAmount, paymentd.MaxAmount, true},
		{paymentd.MaxAmount, 10_000, paymentd.MaxAmount, 2 * paymentd.MaxAmount, true},
		{0, 2, math.MaxInt64, 0, false},      // amount × bps overflows
		{math.MaxInt64, 1, 10_000, 0, false}, // fixed + part overflows
		{0, 10_000, math.MaxInt64 / 2, 0, false},
		{0, 1, -1, 0, false},
	} {
		fee, ok := payoutFee(&store.PayoutMethod{FeeFixed: c.fixed, FeeBasisPoints: c.bps}, c.amount)
		if fee != c.fee || ok != c.ok {
			t.Errorf("fee(fixed %d, %d bps, amount %d) = %d, %v; want %d, %v", c.fixed, c.bps, c.amount, fee, ok, c.fee, c.ok)
		}
	}
}

func TestRecipientAccounts(t *testing.T) {
	tron := &store.PayoutMethod{ID: "t", Type: MethodCrypto, Network: "tron"}
	for _, a := range []string{"TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", sandbox.TronZeroAddress} {
		if err := checkRecipientAccount(tron, a); err != nil {
			t.Errorf("tron %s: %v; want valid", a, err)
		}
	}
	for _, a := range []string{"TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6", "AR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj0t"} {
		if err := checkRecipientAccount(tron, a); err == nil {
			t.Errorf("tron %s: valid; want refused", a)
		}
	}
	for a, want := range map[string]bool{
		"4242424242424242": true, "378282246310005": true, "5555555555554444": true,
		"1000123456789013": false, "8801712345670": false, "4242424242424241": false, "424242424242": false,
	} {
		if got := looksLikeCardNumber(a); got != want {
			t.Errorf("looksLikeCardNumber(%q) = %v; want %v", a, got, want)
		}
	}
}

func TestSandboxMethodsAreValid(t *testing.T) {
	ms := make([]*store.PayoutMethod, len(SandboxPayoutMethods))
	for i := range SandboxPayoutMethods {
		ms[i] = &SandboxPayoutMethods[i]
	}
	if err := ValidatePayoutMethods(ms); err != nil {
		t.Fatal(err)
	}
	out, err := FormatPayoutMethods(ms)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePayoutMethods(out)
	if err != nil {
		t.Fatalf("ParsePayoutMethods(FormatPayoutMethods(defaults)): %v", err)
	}
	for i := range back {
		if *back[i] != *ms[i] {
			t.Errorf("method %d round trip: %+v; want %+v", i, *back[i], *ms[i])
		}
	}
}
