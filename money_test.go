package paymentd

import (
	"math"
	"strings"
	"testing"
)

func TestAddChecked(t *testing.T) {
	for _, tc := range []struct {
		a, b, sum int64
		ok        bool
	}{
		{1, 2, 3, true},
		{-5, 3, -2, true},
		{math.MaxInt64, 0, math.MaxInt64, true},
		{math.MaxInt64, 1, 0, false},
		{math.MinInt64, -1, 0, false},
		{math.MinInt64, math.MaxInt64, -1, true},
	} {
		if sum, ok := AddChecked(tc.a, tc.b); sum != tc.sum || ok != tc.ok {
			t.Errorf("AddChecked(%d, %d) = %d %v; want %d %v", tc.a, tc.b, sum, ok, tc.sum, tc.ok)
		}
	}
}

func TestFormatAndCheckAmount(t *testing.T) {
	usd, _ := LookupCurrency("usd")
	jpy, _ := LookupCurrency("JPY")
	usdt, _ := LookupCurrency("USDT")
	for _, tc := range []struct {
		amount int64
		c      Currency
		want   string
	}{{1050, usd, "10.50"}, {5, usd, "0.05"}, {-1050, usd, "-10.50"}, {500, jpy, "500"}, {1_500_000, usdt, "1.500000"}} {
		if got := FormatAmount(tc.amount, tc.c); got != tc.want {
			t.Errorf("FormatAmount(%d, %s) = %q; want %q", tc.amount, tc.c.Code, got, tc.want)
		}
	}
	for amount, code := range map[int64]string{0: "amount_invalid", 49: "amount_too_small", MaxAmount + 1: "amount_too_large", 50: ""} {
		err := CheckAmount("amount", amount, usd)
		de, _ := err.(*Error)
		if (code == "") != (err == nil) || (de != nil && (de.Code != code || de.Param != "amount")) {
			t.Errorf("CheckAmount(%d USD) = %v; want code %q", amount, err, code)
		}
	}
	if err := CheckAmount("amount", 0, usd); !strings.Contains(err.Error(), "amount is required") {
		t.Errorf("CheckAmount(0 USD) = %v; want it to say that amount is required (proto3 sends an omitted amount as 0)", err)
	}
	if err := CheckAmount("amount", -5, usd); !strings.Contains(err.Error(), "got -5") {
		t.Errorf("CheckAmount(-5 USD) = %v; want it to quote the amount", err)
	}
	if _, ok := LookupCurrency("XXX"); ok {
		t.Error("XXX is a currency; want unknown")
	}
}
