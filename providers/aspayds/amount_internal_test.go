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
