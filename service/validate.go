package service

import (
	"net/mail"
	"unicode/utf8"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// Limits on free-form fields.
const (
	maxDescription   = 1000
	maxMetadataKeys  = 50
	maxMetadataKey   = 40
	maxMetadataValue = 500
	maxName          = 255
	maxShortID       = 64
)

func checkLen(param, v string, limit int) error {
	if n := utf8.RuneCountInString(v); n > limit {
		return Invalid(param, "parameter_too_long", "%s must be at most %d characters; got %d.", param, limit, n)
	}
	if !utf8.ValidString(v) {
		return Invalid(param, "parameter_invalid", "%s must be valid UTF-8 text.", param)
	}
	return nil
}

func checkMetadata(param string, m map[string]string) error {
	if len(m) > maxMetadataKeys {
		return Invalid(param, "metadata_too_large", "%s may have at most %d keys; got %d.", param, maxMetadataKeys, len(m))
	}
	for k, v := range m {
		if k == "" {
			return Invalid(param, "metadata_invalid", "%s keys must not be empty.", param)
		}
		if err := checkLen(param+"["+k+"]", k, maxMetadataKey); err != nil {
			return Invalid(param, "metadata_invalid", "%s keys must be at most %d characters; %q is longer (%d).", param, maxMetadataKey, truncate(k, 40), utf8.RuneCountInString(k))
		}
		if err := checkLen(param+"["+k+"]", v, maxMetadataValue); err != nil {
			return err
		}
	}
	return nil
}

func checkCustomer(c *pb.Customer) error {
	if c == nil {
		return nil
	}
	if err := checkLen("customer.name", c.Name, maxName); err != nil {
		return err
	}
	if err := checkLen("customer.id", c.Id, maxShortID); err != nil {
		return err
	}
	if c.Email != "" {
		if err := checkLen("customer.email", c.Email, maxName); err != nil {
			return err
		}
		if a, err := mail.ParseAddress(c.Email); err != nil || a.Address != c.Email {
			return Invalid("customer.email", "email_invalid", "customer.email must be a plain email address such as jane@example.com.")
		}
	}
	return nil
}

func oneOf(param, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return Invalid(param, "parameter_invalid", "%s must be one of %v; got %q.", param, allowed, v)
}

// lookupCurrencyParam validates a currency parameter.
func lookupCurrencyParam(param, code string) (paymentd.Currency, error) {
	if code == "" {
		return paymentd.Currency{}, Invalid(param, "parameter_missing", "%s is required, e.g. USD.", param)
	}
	c, ok := paymentd.LookupCurrency(code)
	if !ok {
		return paymentd.Currency{}, Invalid(param, "currency_invalid", "%s %q is not a supported currency; use an ISO 4217 code such as USD, EUR, JPY or BDT, or a supported asset such as USDT.", param, code)
	}
	return c, nil
}
