package service

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// panForms are the ways a card number was seen to slip past the detector:
// each must be found.
var panForms = map[string]string{
	"plain":               "4111111111111111",
	"spaces":              "4111 1111 1111 1111",
	"dashes":              "4111-1111-1111-1111",
	"dots":                "4111.1111.1111.1111",
	"slashes":             "4111/1111/1111/1111",
	"underscores":         "4111_1111_1111_1111",
	"commas":              "4111,1111,1111,1111",
	"tabs":                "4111\t1111\t1111\t1111",
	"two spaces":          "4111  1111  1111  1111",
	"spaced dash":         "4111 - 1111 - 1111 - 1111",
	"nbsp":                "4111\u00a01111\u00a01111\u00a01111",
	"zero-width":          "4111\u200b1111\u200b1111\u200b1111",
	"word joiner":         "4111\u20601111\u20601111\u20601111",
	"soft hyphen":         "4111\u00ad1111\u00ad1111\u00ad1111",
	"bidi override":       "\u202e4111111111111111\u202c",
	"en dash":             "4111–1111–1111–1111",
	"full-width":          "４１１１１１１１１１１１１１１１",
	"full-width sep":      "４１１１－１１１１－１１１１－１１１１",
	"arabic-indic":        "٤١١١١١١١١١١١١١١١",
	"devanagari":          "४१११११११११११११११",
	"mixed scripts":       "4١11١1١١11١1١111",
	"percent space":       "https://shop.example/cb?card=4111%201111%201111%201111",
	"percent digits":      "https://shop.example/cb?c=%34%31%31%31111111111111",
	"double percent":      "https://shop.example/cb?card=4111%25201111%25201111%25201111",
	"plus":                "card=4111+1111+1111+1111",
	"in text":             "customer card 4111111111111111 thanks",
	"with expiry":         "4111 1111 1111 1111 12/25",
	"after digits":        "ref 2024 4111 1111 1111 1111",
	"amex":                "3782 822463 10005",
	"mastercard":          "5555555555554444",
	"circled":             "④①①①①①①①①①①①①①①①",
	"newlines":            "4111\n1111\n1111\n1111",
	"ideographic sp":      "4111\u30001111\u30001111\u30001111",
	"combining mark":      "4\u03361\u03361\u03361\u0336111111111111",
	"long text after":     strings.Repeat("x", 300) + " 4111111111111111",
	"glued to a word":     "txn4111111111111111",
	"glued to hex":        "abc4111111111111111def",
	"beside a hex key":    "deadbeefdeadbeefdeadbeefdeadbeef-4111111111111111",
	"before a hex key":    "4111111111111111 0123456789abcdef0123456789abcdef",
	"not quite hex":       "0123456789abcdef4111111111111111g123456789abcdef",
	"hex letters after":   "4111111111111111aaaaaaaa",
	"hex letters before":  "deadbeef4111111111111111",
	"inside a hex key":    "4111 1111 1111 1111aaaaaaaaaaaaaaaaaaaaaaaa",
	"four percent layers": "c=4111%2525252520" + "1111%2525252520" + "1111%2525252520" + "1111",
	"ratio sign":          "4111∶1111∶1111∶1111",
}

func init() {
	// Every separator seen in a bypass, each between the groups.
	for _, sep := range []string{"·", "•", "×", "∙", "・", "|", ";", "*", "~", "=", "#", "'", "(", ")", "[", "]", "\\", "!", "?", "&", "@", "$", "\x00", "\x7f"} {
		panForms["separator "+sep] = "4111" + sep + "1111" + sep + "1111" + sep + "1111"
	}
	panForms["parentheses"] = "(4111) (1111) (1111) (1111)"
}

func TestScanPANFindsEveryForm(t *testing.T) {
	for name, s := range panForms {
		last4, ok := scanPAN(s)
		if !ok {
			t.Errorf("%s: %q not recognized as a card number", name, s)
			continue
		}
		want := "1111"
		switch name {
		case "amex":
			want = "0005"
		case "mastercard":
			want = "4444"
		}
		if last4 != want {
			t.Errorf("%s: last four %q; want %q", name, last4, want)
		}
	}
}

func TestScanPANLeavesOrdinaryText(t *testing.T) {
	for _, s := range []string{
		"",
		"Order 1001",
		"pay_01m80abcdefghijklmnopqrstu",
		"4111111111111112",                // Luhn fails
		"41111111111111110000",            // 20 unbroken digits: no card number
		"1764651266123",                   // a Unix time in milliseconds
		"2026-12-02T02:54:26.123456789Z",  // an RFC 3339 timestamp
		"+8801712345678",                  // a mobile number
		"https://shop.example/cb?id=1234", // an ordinary URL
		"4111 1111 1111",                  // 12 digits
		"٤١١١",
		"%zz%4",
	} {
		if last4, ok := scanPAN(s); ok {
			t.Errorf("%q taken for a card number (…%s)", s, last4)
		}
	}
}

func TestFindPANMasksMetadataKeys(t *testing.T) {
	req := &pb.CreatePaymentRequest{Metadata: map[string]string{"4111 1111 1111 1111": "x"}}
	field, why := findRefused(req.ProtoReflect())
	if why != refusedCardNumber || field != "metadata[••••1111]" {
		t.Errorf("findRefused = %q, %v; want metadata[••••1111], a card number", field, why)
	}
	// A key holding a card number is masked even when its value holds one too.
	req.Metadata = map[string]string{"4111111111111111": "4111111111111111"}
	if field, _ := findRefused(req.ProtoReflect()); strings.Contains(field, "41111") {
		t.Errorf("findRefused named %q", field)
	}
}

// TestPANFalsePositiveRate measures how often ordinary values are taken
// for card numbers; the figures are the ones docs/card-numbers.md quotes.
func TestPANFalsePositiveRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 200000
	rate := func(gen func() string) float64 {
		hits := 0
		for range n {
			if containsPAN(gen()) {
				hits++
			}
		}
		return float64(hits) / n
	}
	digits := func(k int) func() string {
		return func() string {
			b := make([]byte, k)
			for i := range b {
				b[i] = byte('0' + rng.IntN(10))
			}
			return string(b)
		}
	}
	// hex makes random hex tokens, as hashes, trace ids and random keys are:
	// each of the 16 hex digits alike likely.
	hex := func(k int) func() string {
		return func() string {
			b := make([]byte, k)
			for i := range b {
				b[i] = "0123456789abcdef"[rng.IntN(16)]
			}
			return string(b)
		}
	}
	uuid := func() string {
		h := hex(32)()
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	}
	cases := []struct {
		name string
		gen  func() string
		max  float64
	}{
		{"random 16-digit strings", digits(16), 0.06},
		{"random 13-19-digit strings", func() string { return digits(13 + rng.IntN(7))() }, 0.06},
		{"random 20-40-digit strings", func() string { return digits(20 + rng.IntN(21))() }, 0},
		{"Unix milliseconds 2000-2039", func() string {
			return strconv.FormatInt(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()+rng.Int64N(40*365*86400000), 10)
		}, 0},
		{"Unix nanoseconds 2000-2039", func() string {
			return strconv.FormatInt(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()+rng.Int64N(40*365*86400e9), 10)
		}, 0},
		{"RFC 3339 timestamps", func() string {
			return time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).UTC().Format(time.RFC3339Nano)
		}, 0},
		{"order ids", func() string { return fmt.Sprintf("order-%d", rng.IntN(1e9)) }, 0},
		{"random 32-digit hex keys (UUIDs without dashes)", hex(32), 0.002},
		{"random UUIDs", uuid, 0.002},
		{"random 24-digit hex ObjectIds", hex(24), 0.002},
		{"random SHA-1 and SHA-256 hex", func() string { return hex(40 + 24*rng.IntN(2))() }, 0.003},
		{"10-digit phone numbers", func() string {
			return fmt.Sprintf("+1 %03d %03d %04d", rng.IntN(1000), rng.IntN(1000), rng.IntN(10000))
		}, 0},
	}
	for _, c := range cases {
		r := rate(c.gen)
		t.Logf("%-28s false positives %.4f%%", c.name, 100*r)
		if r > c.max {
			t.Errorf("%s: false-positive rate %.4f; want at most %.4f", c.name, r, c.max)
		}
	}
}

// BenchmarkFindPAN measures the detector on a typical create-payment
// request, as the interceptor runs it on every call.
func BenchmarkFindPAN(b *testing.B) {
	req := &pb.CreatePaymentRequest{
		Amount: 2000, Currency: "USD", PaymentMethod: "pm_card_visa",
		Description: "Order 1001 for Jane Doe, 2 items",
		Customer:    &pb.Customer{Name: "Jane Doe", Email: "jane@example.com", Id: "cus_8842"},
		Metadata:    map[string]string{"order_id": "1001", "cart": "c-20261202-77", "channel": "web"},
	}
	b.ReportAllocs()
	m := proto.Message(req).ProtoReflect()
	for b.Loop() {
		if _, why := findRefused(m); why != 0 {
			b.Fatal("refused string found")
		}
	}
}

func BenchmarkScanPANNonASCII(b *testing.B) {
	s := "Bestellung für Jürgen Müller — ２ Artikel, 注文番号 12345"
	b.ReportAllocs()
	for b.Loop() {
		if containsPAN(s) {
			b.Fatal("card number found")
		}
	}
}

func TestRedactText(t *testing.T) {
	for in, want := range map[string]string{
		"amount must be at most 999; got 4111111111111111.": "amount must be at most 999; got (a card number ending in 1111)",
		"card 4111 1111 1111 1111 here":                     "(a message quoting a card number ending in 1111 was removed)",
		"field ak_test_abcDEF123_x is unknown":              "field ak_test_… is unknown",
		"keys ak_live_zz and whsec_Q1w2e3 and ak_live_yy":   "keys ak_live_… and whsec_… and ak_live_…",
		"ordinary text, order 1001":                         "ordinary text, order 1001",
		"send `Bearer ak_test_…`":                           "send `Bearer ak_test_…`",
	} {
		if got := redactText(in); got != want {
			t.Errorf("redactText(%q) = %q; want %q", in, got, want)
		}
	}
	if got := redactParam("metadata[4111111111111111]"); strings.Contains(got, "4111") {
		t.Errorf("redactParam kept the card number: %q", got)
	}
}

// TestFindRefusedNUL checks that U+0000 is found in every place a string can
// be — a field, a nested message's field, a map key or value, a list
// element, and a field exempt from the card-number check — and that a key
// holding it is not quoted in the field name.
func TestFindRefusedNUL(t *testing.T) {
	for _, tc := range []struct {
		msg   proto.Message
		field string
	}{
		{&pb.CreatePaymentRequest{Description: "a\x00b"}, "description"},
		{&pb.CreatePaymentRequest{Customer: &pb.Customer{Name: "\x00"}}, "customer.name"},
		{&pb.CreatePaymentRequest{Metadata: map[string]string{"k": "v\x00"}}, "metadata[k]"},
		{&pb.CreatePaymentRequest{Metadata: map[string]string{"k\x00": "v"}}, "metadata"},
		{&pb.CreateWebhookEndpointRequest{Url: "https://example.com/x", EventTypes: []string{"payment.*", "\x00"}}, "event_types"},
		{&pb.CreatePayoutRequest{RecipientAccount: "0001\x00"}, "recipient_account"},
	} {
		field, why := findRefused(tc.msg.ProtoReflect())
		if why != refusedNUL || field != tc.field {
			t.Errorf("findRefused(%v) = %q, %v; want %q, refusedNUL", tc.msg, field, why, tc.field)
		}
	}
	if field, why := findRefused((&pb.CreatePaymentRequest{Description: "Order 1001", Metadata: map[string]string{"k": "v"}}).ProtoReflect()); why != 0 {
		t.Errorf("findRefused of a clean request = %q, %v", field, why)
	}
}
