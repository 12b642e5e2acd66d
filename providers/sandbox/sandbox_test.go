package sandbox

import (
	"strings"
	"testing"
)

// TestRejectsRecipient checks the test recipients whose payouts the sandbox
// always rejects, and that the reason names the account.
func TestRejectsRecipient(t *testing.T) {
	for a, want := range map[string]bool{
		"0000000000": true, "+0000000000": true, "000000": true, TronZeroAddress: true,
		"0x0000000000000000000000000000000000000000": true,
		"01712345678": false, "0": true, "": false, "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t": false,
	} {
		reason, got := New().RejectsRecipient(a)
		if got != want || (got && !strings.Contains(reason, a)) {
			t.Errorf("RejectsRecipient(%q) = %q, %v; want %v and a reason naming it", a, reason, got, want)
		}
	}
}
