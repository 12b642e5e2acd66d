package paymentd

import (
	"fmt"
	"strings"
)

// Currency describes how a currency's amounts are written in minor units.
// Every amount in paymentd is an int64 of minor units (cents, yen, the
// smallest unit of a crypto asset); nothing is ever a float.
type Currency struct {
	Code     string
	Exponent int   // digits after the decimal point: 2 for USD, 0 for JPY
	Min      int64 // smallest amount a payment may have, in minor units
}

// MaxAmount bounds every single amount, in minor units, well inside int64 so
// that sums of many amounts cannot overflow unnoticed.
const MaxAmount int64 = 999_999_999_999

// currencies is the currency table. Minimums follow what card networks and
// the documented providers accept; crypto assets carry their token's decimals
// (USDT on tron has 6).
var currencies = map[string]Currency{
	"USD":  {"USD", 2, 50},
	"EUR":  {"EUR", 2, 50},
	"GBP":  {"GBP", 2, 30},
	"CAD":  {"CAD", 2, 50},
	"AUD":  {"AUD", 2, 50},
	"CHF":  {"CHF", 2, 50},
	"SGD":  {"SGD", 2, 50},
	"INR":  {"INR", 2, 5000},
	"BDT":  {"BDT", 2, 1000},
	"NGN":  {"NGN", 2, 10000},
	"KES":  {"KES", 2, 5000},
	"JPY":  {"JPY", 0, 50},
	"KRW":  {"KRW", 0, 500},
	"USDT": {"USDT", 6, 1_000_000},
	"USDC": {"USDC", 6, 1_000_000},
	"BTC":  {"BTC", 8, 10_000},
}

// LookupCurrency finds a currency by code, in any letter case.
func LookupCurrency(code string) (Currency, bool) {
	c, ok := currencies[strings.ToUpper(code)]
	return c, ok
}

// FormatAmount writes minor units as a decimal string in the currency's
// exponent, e.g. 1050 USD → "10.50".
func FormatAmount(amount int64, c Currency) string {
	neg := amount < 0
	u := uint64(amount)
	if neg {
		u = -u
	}
	s := fmt.Sprintf("%0*d", c.Exponent+1, u)
	if c.Exponent > 0 {
		s = s[:len(s)-c.Exponent] + "." + s[len(s)-c.Exponent:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// CheckAmount checks a positive amount against the currency's minimum and
// MaxAmount; the error names param and says what to send instead.
func CheckAmount(param string, amount int64, c Currency) error {
	switch {
	case amount == 0: // proto3 cannot tell an omitted amount from 0
		return Invalid(param, "amount_invalid", "%s is required: a positive whole number of minor units of %s (e.g. %d for %s %s); it was omitted or 0.",
			param, c.Code, c.Min*20, FormatAmount(c.Min*20, c), c.Code)
	case amount < 0:
		return Invalid(param, "amount_invalid", "%s must be a positive whole number of minor units of %s (e.g. %d for %s %s); got %d.",
			param, c.Code, c.Min*20, FormatAmount(c.Min*20, c), c.Code, amount)
	case amount < c.Min:
		return Invalid(param, "amount_too_small", "%s must be at least %d (%s %s); got %d.",
			param, c.Min, FormatAmount(c.Min, c), c.Code, amount)
	case amount > MaxAmount:
		return Invalid(param, "amount_too_large", "%s must be at most %d minor units; got %d.", param, MaxAmount, amount)
	}
	return nil
}

// AddChecked adds two amounts and reports false on int64 overflow. It is the
// one addition of money that the service and the store both use.
func AddChecked(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, false
	}
	return s, true
}
