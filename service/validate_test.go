package service

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestTruncateKeepsCharactersWhole checks that quoting a caller's input
// back cut short never splits a character (the message would not be UTF-8),
// and that an overlong metadata key is not quoted whole.
func TestTruncateKeepsCharactersWhole(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"pay_123", 64, "pay_123"},
		{"abcdef", 3, "abc…"},
		{"ab€d", 3, "ab…"}, // € is three bytes from byte 2
		{"€€", 4, "€…"},
	} {
		if got := truncate(c.in, c.n); got != c.want || !utf8.ValidString(got) {
			t.Errorf("truncate(%q, %d) = %q; want %q", c.in, c.n, got, c.want)
		}
	}
	err := checkMetadata("metadata", map[string]string{strings.Repeat("ключ", 200): "v"})
	if err == nil || len(err.Error()) > 300 || !utf8.ValidString(err.Error()) {
		t.Errorf("checkMetadata of an 800-character key: %v; want a short message that does not quote it whole", err)
	}
}
