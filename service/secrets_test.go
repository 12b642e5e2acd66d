package service

import (
	"regexp"
	"testing"
)

// TestRandomSecretsHaveTheirForm checks API keys and webhook signing
// secrets: their prefix and 32 base62 characters, different every time.
func TestRandomSecretsHaveTheirForm(t *testing.T) {
	for _, c := range []struct {
		make func() string
		form *regexp.Regexp
	}{
		{func() string { return NewAPIKey(false) }, regexp.MustCompile(`^ak_test_[0-9A-Za-z]{32}$`)},
		{func() string { return NewAPIKey(true) }, regexp.MustCompile(`^ak_live_[0-9A-Za-z]{32}$`)},
		{newWebhookSecret, regexp.MustCompile(`^whsec_[0-9A-Za-z]{32}$`)},
	} {
		seen := map[string]bool{}
		for range 50 {
			s := c.make()
			if !c.form.MatchString(s) || seen[s] {
				t.Fatalf("%q: does not match %s, or was made twice", s, c.form)
			}
			seen[s] = true
		}
	}
}
