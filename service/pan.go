package service

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// panExempt lists fields that legitimately hold long digit runs (payout
// recipients: bank account and mobile numbers, crypto addresses), where a
// Luhn-valid run is no sign of a card. They get a narrower card-number check
// of their own (checkRecipientAccount in payout_methods.go).
var panExempt = map[protoreflect.FullName]bool{
	"paymentd.v1.CreatePayoutRequest.recipient_account": true,
}

// A refusal is what findRefused found in a string of a request.
type refusal uint8

const (
	refusedCardNumber refusal = iota + 1 // a raw card number (containsPAN)
	// refusedNUL is U+0000: valid UTF-8, but no PostgreSQL text column
	// takes it, so it is refused on every store before anything runs.
	refusedNUL
)

// refusedIn says whether s is refused, and why; a field exempt from the
// card-number check (panExempt) is still checked for U+0000.
func refusedIn(s string, panExempt bool) refusal {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return refusedNUL
	case !panExempt && containsPAN(s):
		return refusedCardNumber
	}
	return 0
}

// findRefused reports the first string field (or map key or value, or list
// element) of msg that holds a raw card number (see containsPAN) or U+0000,
// and which, in one walk over the request. The field name it returns is
// safe to show and log: a map key that holds a card number is masked to its
// last four digits, as in metadata[••••1111], and one holding U+0000 is not
// quoted.
func findRefused(msg protoreflect.Message) (field string, why refusal) {
	msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		exempt := panExempt[fd.FullName()]
		name := string(fd.Name())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				// The key first: a value's field name shows its key.
				key := k.String()
				if strings.IndexByte(key, 0) >= 0 {
					field, why = name, refusedNUL
				} else if last4, ok := scanPAN(key); ok && !exempt {
					field, why = name+"[••••"+last4+"]", refusedCardNumber
				} else if fd.MapValue().Kind() == protoreflect.StringKind {
					if why = refusedIn(mv.String(), exempt); why != 0 {
						field = name + "[" + key + "]"
					}
				} else if fd.MapValue().Kind() == protoreflect.MessageKind {
					if sub, w := findRefused(mv.Message()); w != 0 {
						field, why = name+"["+key+"]."+sub, w
					}
				}
				return why == 0
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && why == 0; i++ {
				if fd.Kind() == protoreflect.StringKind {
					if why = refusedIn(l.Get(i).String(), exempt); why != 0 {
						field = name
					}
				} else if fd.Kind() == protoreflect.MessageKind {
					if sub, w := findRefused(l.Get(i).Message()); w != 0 {
						field, why = name+"."+sub, w
					}
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if why = refusedIn(v.String(), exempt); why != 0 {
				field = name
			}
		case fd.Kind() == protoreflect.MessageKind:
			if sub, w := findRefused(v.Message()); w != 0 {
				field, why = name+"."+sub, w
			}
		}
		return why == 0
	})
	return field, why
}

// maskCardNumber returns a name the caller sent (a field or parameter name
// paymentd does not know, which it quotes back) with a card number in it
// reduced to its last four digits.
func maskCardNumber(name string) string {
	if last4, ok := scanPAN(name); ok {
		return "••••" + last4
	}
	return name
}

// HoldsCardNumber reports whether paymentd refuses s as holding a card
// number: a client drawing random keys (the bench's --random-keys) draws
// again when it does.
func HoldsCardNumber(s string) bool { return containsPAN(s) }

// containsPAN reports whether s holds something that reads as a card number
// (see scanPAN).
func containsPAN(s string) bool {
	_, ok := scanPAN(s)
	return ok
}

// scanPAN looks for a card number in s and returns its last four digits.
//
// Callers hide card numbers in many ways, so s is read the way a person would
// read it: every Unicode decimal digit counts as its ASCII digit (full-width
// １, Arabic-Indic ١, circled ①, parenthesized ⑴, ⒈, …); letters end a run of digits, and so does
// the colon of a clock time (12:34:56), but every other character between
// digits is a separator and skipped, also in runs: spaces of every kind,
// punctuation and symbols (. / - , + | ; * ~ = # ' ( ) · • × ∶ …), control
// and invisible format characters (zero-width space, word joiner, soft
// hyphen, bidi controls) and combining marks. Percent-escapes are decoded as
// well, however many layers deep, so a number inside a URL (4111%201111…)
// is found.
//
// A run of digits is split into the groups its separators made. A card
// number is a window of whole groups, 13 to 19 digits long, that starts the
// way card numbers of the networks do (see issuerPrefix) and passes the Luhn
// check. Requiring whole groups keeps a number written next to other digits
// ("4111 1111 1111 1111 12/25") from hiding it, while a longer unbroken
// digit string (an id, a bank reference) is no card number. The
// false-positive rate this gives is measured and documented in
// docs/card-numbers.md.
//
// The common case, a short ASCII string, is scanned byte by byte with no
// allocation.
func scanPAN(s string) (last4 string, found bool) {
	// Most strings are short or hold few digits: 13 ASCII digits at least
	// are needed unless there are non-ASCII characters or percent-escapes.
	digits, other := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c >= utf8.RuneSelf || c == '%':
			other = true
		}
	}
	if digits < 13 && !other {
		return "", false
	}
	var sc panScanner
	if last4, found = sc.scan(s); found {
		return last4, true
	}
	// Percent-decode and look again, layer after layer: each layer that
	// decodes anything is shorter than the one before, so this ends; the
	// bound keeps a hostile string of many layers from costing more than
	// maxPercentLayers passes over it.
	for range maxPercentLayers {
		if strings.IndexByte(s, '%') < 0 {
			break
		}
		dec := percentDecode(s)
		if dec == s {
			break
		}
		s = dec
		sc = panScanner{}
		if last4, found = sc.scan(s); found {
			return last4, true
		}
	}
	return "", false
}

// maxPercentLayers bounds the layers of percent-encoding scanPAN undoes.
const maxPercentLayers = 16

// panScanner holds the current run of digits: the last digits seen (at most
// maxKeep are needed to find a window ending at the current position) and
// where the groups that can still start a window begin.
type panScanner struct {
	digits [64]byte
	n      int
	starts [20]int // group starts within digits[:n], oldest first
	ns     int
	sep    bool // a separator was seen since the last digit
}

const maxKeep = 19

func (p *panScanner) scan(s string) (string, bool) {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			i += size
			switch {
			case r >= 0xFF01 && r <= 0xFF5E:
				// A full-width form of an ASCII character.
				c = byte(r - 0xFEE0)
			case unicode.IsLetter(r):
				c = 'a'
			default:
				if d, ok := digitValue(r); ok {
					p.digit(d)
					continue
				}
				c = ' ' // punctuation, symbols, spaces, marks, format characters
			}
		}
		var last4 string
		var ok bool
		switch {
		case c >= '0' && c <= '9':
			p.digit(c - '0')
			continue
		case c == ':' || c|0x20 >= 'a' && c|0x20 <= 'z':
			last4, ok = p.end()
		default:
			last4, ok = p.separator()
		}
		if ok {
			return last4, true
		}
	}
	return p.end()
}

func (p *panScanner) digit(d byte) {
	if p.n == 0 || p.sep {
		if p.ns == len(p.starts) {
			copy(p.starts[:], p.starts[1:])
			p.ns--
		}
		p.starts[p.ns] = p.n
		p.ns++
		p.sep = false
	}
	if p.n == len(p.digits) {
		// Keep only the digits a window can still use.
		drop := p.n - maxKeep
		copy(p.digits[:], p.digits[drop:p.n])
		p.n = maxKeep
		k := 0
		for _, st := range p.starts[:p.ns] {
			if st-drop >= 0 {
				p.starts[k] = st - drop
				k++
			}
		}
		p.ns = k
	}
	p.digits[p.n] = d
	p.n++
}

// separator ends a group: windows ending here are checked, and the run goes on.
func (p *panScanner) separator() (string, bool) {
	if p.n == 0 || p.sep {
		return "", false
	}
	p.sep = true
	return p.check()
}

// end ends the run of digits.
func (p *panScanner) end() (string, bool) {
	var last4 string
	var ok bool
	if p.n > 0 && !p.sep {
		last4, ok = p.check()
	}
	p.n, p.ns, p.sep = 0, 0, false
	return last4, ok
}

// check looks at every window of whole groups ending at the last digit.
func (p *panScanner) check() (string, bool) {
	for _, st := range p.starts[:p.ns] {
		w := p.digits[st:p.n]
		if len(w) < 13 || len(w) > 19 {
			continue
		}
		if issuerPrefix(w) && luhn(w) {
			b := make([]byte, 4)
			for i := range b {
				b[i] = '0' + w[len(w)-4+i]
			}
			return string(b), true
		}
	}
	return "", false
}

// issuerPrefix reports whether digits start the way a card number does:
// 3–6 (American Express, Diners, JCB, Visa, Mastercard, Discover, UnionPay,
// Maestro), Mastercard's 2221–2720, or 1 for a 15-digit UATP number. Unix
// times in milliseconds and nanoseconds start with 1 (and with 2000–2220
// until 2040) and are therefore never taken for card numbers.
func issuerPrefix(w []byte) bool {
	switch w[0] {
	case 3, 4, 5, 6:
		return true
	case 2:
		p := int(w[1])*100 + int(w[2])*10 + int(w[3])
		return p >= 221 && p <= 720
	case 1:
		return len(w) == 15
	}
	return false
}

// digitValue gives the value of a non-ASCII decimal digit (Unicode category
// Nd, whose digits come in contiguous blocks of ten starting at zero) or of a
// numeric character whose compatibility form is one digit (①, ², …).
func digitValue(r rune) (byte, bool) {
	if unicode.Is(unicode.Nd, r) {
		for _, rg := range unicode.Nd.R16 {
			if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
				return byte((r - rune(rg.Lo)) % 10), true
			}
		}
		for _, rg := range unicode.Nd.R32 {
			if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
				return byte((r - rune(rg.Lo)) % 10), true
			}
		}
	}
	if unicode.Is(unicode.No, r) {
		var buf [utf8.UTFMax]byte
		k := norm.NFKC.Append(nil, buf[:utf8.EncodeRune(buf[:], r)]...)
		// One digit, alone or with punctuation around it: circled ④ is
		// "4", parenthesized ⑷ is "(4)", ⒋ is "4.".
		d, n := byte(0), 0
		for _, c := range k {
			switch {
			case c >= '0' && c <= '9':
				d, n = c-'0', n+1
			case c >= utf8.RuneSelf || c|0x20 >= 'a' && c|0x20 <= 'z':
				n = 2
			}
		}
		if n == 1 {
			return d, true
		}
	}
	return 0, false
}

// percentDecode decodes every valid %XX escape in s and leaves the rest.
func percentDecode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func ishex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// redactPANs returns s unchanged when it holds no card number. Otherwise
// each word that holds one is replaced by a mention of its last four digits
// (an amount quoted back: "got (a card number ending in 1111)."), and if a
// card number still reads across words (4111 1111 …), the whole text is
// replaced by one saying a card number was removed. Used on every message an
// error or a log line carries, which may quote a caller's input.
func redactPANs(s string) string {
	if !containsPAN(s) {
		return s
	}
	words := strings.Split(s, " ")
	for i, w := range words {
		if last4, ok := scanPAN(w); ok {
			words[i] = "(a card number ending in " + last4 + ")"
		}
	}
	out := strings.Join(words, " ")
	if last4, ok := scanPAN(out); ok {
		return "(a message quoting a card number ending in " + last4 + " was removed)"
	}
	return out
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}
