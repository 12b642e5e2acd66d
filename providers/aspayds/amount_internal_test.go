package aspayds

import (
	"strings"
	"testing"
)

// TestParseAmount: answers' amounts are non-negative numbers in major
// units, converted to minor units exactly (plain decimals and JSON's
// exponent forms alike); anything else is refused, never read as money.
func TestParseAmount(t *testing.T) {
	for raw, want := range map[string]int64{
		"0": 0, "100": 10000, "100.5": 10050, "100.50": 10050, "100.000": 10000, "1e2": 10000, "1E2": 10000,
		"1.0E+2": 10000, "1.5e1": 1500, "1e-2": 1, "0.01e0": 1, "12345e-2": 12345, "92233720368547758.07": 1<<63 - 1,
	} {
		if v, ok := parseAmount(raw, 2); !ok || v != want {
			t.Errorf("parseAmount(%q) = %d, %v; want %d", raw, v, ok, want)
		}
	}
	for _, raw := range []string{"", "-1", "-0.01", "+1", " 1", "1.", ".5", "1.005", "1e-3", "1e400", "1e31",
		"92233720368547758.08", "9.3e17", "0x10", "NaN", "Infinity", "1,00", "1e", "e2"} {
		if v, ok := parseAmount(raw, 2); ok {
			t.Errorf("parseAmount(%q) = %d; want it refused", raw, v)
		}
	}
}

// TestPayoutAnswerNegativeAmounts: a payout answer with a negative amount,
// fee or total_amount is malformed, not money.
func TestPayoutAnswerNegativeAmounts(t *testing.T) {
	c, err := New(Options{APIKey: "k", APISecret: "s", BaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	ok := decimal{raw: "500", set: true}
	neg := decimal{raw: "-5", set: true}
	for name, a := range map[string]payoutAnswer{
		"amount": {PayoutID: "ATPAY1", Status: "pending", Amount: neg, Fee: decimal{raw: "0", set: true}, TotalAmount: ok},
		"fee":    {PayoutID: "ATPAY1", Status: "pending", Amount: ok, Fee: neg, TotalAmount: decimal{raw: "495", set: true}},
		"total":  {PayoutID: "ATPAY1", Status: "pending", Amount: ok, Fee: decimal{raw: "0", set: true}, TotalAmount: neg},
	} {
		st, err := c.payoutState(a, false)
		if err == nil {
			t.Errorf("negative %s: %+v accepted", name, st)
		} else if !strings.Contains(err.Error(), "provider_malformed_answer") {
			t.Errorf("negative %s: %v; want provider_malformed_answer", name, err)
		}
	}
}

// TestPayoutAnswerFee: the fee and total_amount of a payout answer are
// reported when they add up for its amount, one derived from the other when
// only one is given; an answer where they do not add up is malformed.
func TestPayoutAnswerFee(t *testing.T) {
	c, err := New(Options{APIKey: "k", APISecret: "s", BaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	d := func(raw string) decimal { return decimal{raw: raw, set: raw != ""} }
	for _, tc := range []struct {
		amount, fee, total string
		wantFee, wantTotal int64
		ok                 bool
	}{
		{"500", "7.50", "507.50", 750, 50750, true},
		{"500", "7.50", "", 750, 50750, true},
		{"500", "", "507.50", 750, 50750, true},
		{"500", "0", "500", 0, 50000, true},
		{"500", "", "", 0, 0, true},        // not said (the batch answer)
		{"", "7.50", "507.50", 0, 0, true}, // no amount to add up to: not said
		{"500", "7.50", "500", 0, 0, false},
		{"500", "", "499.99", 0, 0, false},
		{"92233720368547758.07", "0.01", "", 0, 0, false}, // the sum overflows int64
	} {
		st, err := c.payoutState(payoutAnswer{PayoutID: "ATPAY1", Status: "pending", Amount: d(tc.amount), Fee: d(tc.fee), TotalAmount: d(tc.total)}, true)
		if tc.ok != (err == nil) || (err == nil && (st.Fee != tc.wantFee || st.TotalAmount != tc.wantTotal)) {
			t.Errorf("amount %q fee %q total %q: %+v, %v; want fee %d total %d (ok %v)", tc.amount, tc.fee, tc.total, st, err, tc.wantFee, tc.wantTotal, tc.ok)
		}
	}
}
