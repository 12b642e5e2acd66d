package providers

import (
	"fmt"
	"strings"

	"github.com/paymentd/paymentd"
)

// exponents are the digits after the decimal point of the currencies and
// assets the adapters convert between minor units and decimal strings. It
// mirrors paymentd's currency table; adapters whose providers speak in minor
// units do not need it.
var exponents = map[string]int{
	"USD": 2, "EUR": 2, "GBP": 2, "CAD": 2, "AUD": 2, "CHF": 2, "SGD": 2,
	"INR": 2, "BDT": 2, "NGN": 2, "KES": 2, "GHS": 2, "ZAR": 2, "XOF": 0,
	"JPY": 0, "KRW": 0,
	"USDT": 6, "USDC": 6, "BTC": 8,
}

// CurrencyExponent returns the number of decimal digits of a currency or
// crypto asset code, in any letter case.
func CurrencyExponent(code string) (int, bool) {
	e, ok := exponents[strings.ToUpper(code)]
	return e, ok
}

// ParseDecimal converts a plain decimal string such as "1000.00" or "20" into
// minor units for the exponent, exactly: no floating point is involved, and
// a value with more non-zero fractional digits than the exponent allows, an
// exponent notation, or a value beyond int64 is an error.
func ParseDecimal(s string, exp int) (int64, error) {
	orig := s
	s = strings.TrimSpace(s)
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	} else {
		s = strings.TrimPrefix(s, "+")
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" {
		return 0, fmt.Errorf("amount %q is not a decimal number", orig)
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > exp {
		return 0, fmt.Errorf("amount %q has more than %d decimal places", orig, exp)
	}
	digits := whole + frac + strings.Repeat("0", exp-len(frac))
	var v int64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("amount %q is not a decimal number", orig)
		}
		if v > (1<<63-1-int64(c-'0'))/10 {
			return 0, fmt.Errorf("amount %q is too large", orig)
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, nil
}

// FormatDecimal writes minor units as a decimal string with exactly exp
// fractional digits, e.g. 1050 with exponent 2 → "10.50" (the domain's
// paymentd.FormatAmount, for an exponent without a currency).
func FormatDecimal(v int64, exp int) string {
	return paymentd.FormatAmount(v, paymentd.Currency{Exponent: exp})
}

// FormatDecimalTrim writes minor units as a decimal string with trailing
// zeros removed, but at least minFrac fractional digits (when the exponent
// has that many): 1000000000 with exponent 6 and minFrac 2 → "1000.00".
func FormatDecimalTrim(v int64, exp, minFrac int) string {
	s := FormatDecimal(v, exp)
	if exp == 0 {
		return s
	}
	minFrac = min(minFrac, exp)
	dot := strings.IndexByte(s, '.')
	end := len(s)
	for end > dot+1+minFrac && s[end-1] == '0' {
		end--
	}
	if end == dot+1 {
		end = dot
	}
	return s[:end]
}
