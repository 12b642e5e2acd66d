package paypage

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/language"

	"github.com/paymentd/paymentd"
)

// The hosted page speaks English and Bengali (the language of aspayds' BDT
// market). Every string it shows is in pageCatalogue, keyed by a short name,
// with {name} placeholders that each language places where its grammar
// wants them; amounts, numbers and dates are formatted per language (Bengali
// digits, and South Asian grouping: ১,২৩,৪৫৬.৭৮). The language comes from
// ?lang= when it names one, else from Accept-Language, else English.

// pageLanguages are the page's languages, the first the default.
var pageLanguages = []language.Tag{language.English, language.Bengali}

var pageLanguageMatcher = language.NewMatcher(pageLanguages)

// pageLocale is one language of the page.
type pageLocale struct {
	Tag      string // BCP 47, for <html lang>
	Name     string // the language's own name, for the language switch
	text     map[string]string
	digits   []rune // 0-9 in the locale's script; nil for ASCII digits
	lakh     bool   // group thousands, then pairs (1,23,456)
	months   [12]string
	timeZone string
}

var pageLocales = map[string]*pageLocale{
	"en": {Tag: "en", Name: "English", text: textEnglish, timeZone: "UTC",
		months: [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}},
	"bn": {Tag: "bn", Name: "বাংলা", text: textBengali, timeZone: "UTC", lakh: true,
		digits: []rune("০১২৩৪৫৬৭৮৯"),
		months: [12]string{"জানুয়ারি", "ফেব্রুয়ারি", "মার্চ", "এপ্রিল", "মে", "জুন", "জুলাই", "আগস্ট", "সেপ্টেম্বর", "অক্টোবর", "নভেম্বর", "ডিসেম্বর"}},
}

// pickLocale chooses the page's language for a request.
func pickLocale(r *http.Request) *pageLocale {
	if r == nil {
		return pageLocales["en"]
	}
	if l, ok := pageLocales[strings.ToLower(r.URL.Query().Get("lang"))]; ok {
		return l
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return pageLocales["en"]
	}
	_, i, conf := pageLanguageMatcher.Match(tags...)
	if conf == language.No {
		return pageLocales["en"]
	}
	base, _ := pageLanguages[i].Base()
	if l, ok := pageLocales[base.String()]; ok {
		return l
	}
	return pageLocales["en"]
}

// T is the catalogue's text for key with {name} placeholders filled from
// args, given as name, value pairs. A key missing from the catalogue shows
// as ⟦key⟧, which the catalogue's test looks for on every page state.
func (l *pageLocale) T(key string, args ...string) string {
	s, ok := l.text[key]
	if !ok {
		return "⟦" + key + "⟧"
	}
	for i := 0; i+1 < len(args); i += 2 {
		s = strings.ReplaceAll(s, "{"+args[i]+"}", args[i+1])
	}
	return s
}

// Digits writes ASCII digits in the locale's script.
func (l *pageLocale) Digits(s string) string {
	if l.digits == nil {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(l.digits[r-'0'])
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Int writes a count in the locale.
func (l *pageLocale) Int(n int) string { return l.Digits(l.group(strconv.Itoa(n))) }

// Amount writes minor units in the currency's display precision, grouped
// and in the locale's digits.
func (l *pageLocale) Amount(minor int64, c paymentd.Currency) string {
	s := displayAmount(minor, c)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	whole, frac, _ := strings.Cut(s, ".")
	out := l.group(whole)
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return l.Digits(out)
}

// group inserts thousands separators into a string of digits.
func (l *pageLocale) group(d string) string {
	if len(d) <= 3 {
		return d
	}
	head, tail := d[:len(d)-3], d[len(d)-3:]
	size := 3
	if l.lakh {
		size = 2
	}
	var parts []string
	for len(head) > size {
		parts = append([]string{head[len(head)-size:]}, parts...)
		head = head[:len(head)-size]
	}
	parts = append([]string{head}, parts...)
	return strings.Join(append(parts, tail), ",")
}

// Time writes a moment as a date and time in UTC, e.g. "2 Dec 2026, 15:04 UTC".
func (l *pageLocale) Time(t time.Time) string {
	t = t.UTC()
	return l.Digits(strconv.Itoa(t.Day())+" "+l.months[t.Month()-1]+" "+strconv.Itoa(t.Year())+", "+t.Format("15:04")) + " " + l.timeZone
}

// Clock writes a moment's time of day in UTC with seconds, e.g. "15:04:05 UTC".
func (l *pageLocale) Clock(t time.Time) string {
	return l.Digits(t.UTC().Format("15:04:05")) + " " + l.timeZone
}

// Remaining writes a duration left in whole minutes (seconds under two
// minutes), as the countdown starts before its script takes over.
func (l *pageLocale) Remaining(d time.Duration) string {
	switch {
	case d <= 0:
		return l.T("countdown_over")
	case d < 2*time.Minute:
		return l.T("countdown_seconds", "s", l.Int(int(d/time.Second)))
	case d < 2*time.Hour:
		return l.T("countdown_minutes", "m", l.Int(int(d/time.Minute)))
	case d < 48*time.Hour:
		return l.T("countdown_hours", "h", l.Int(int(d/time.Hour)), "m", l.Int(int(d%time.Hour/time.Minute)))
	}
	return l.T("countdown_days", "d", l.Int(int(d/(24*time.Hour))))
}

// displayAmount is paymentd.FormatAmount in the currency's display precision: crypto
// assets, whose tokens have more decimals than anyone reads, show at least
// two and drop trailing zeros (25.00 USDT, 20.5 not 20.500000, and every
// digit that is not zero: 0.000123 BTC), so no amount is ever rounded.
func displayAmount(minor int64, c paymentd.Currency) string {
	s := paymentd.FormatAmount(minor, c)
	if c.Exponent <= 2 {
		return s
	}
	cut := len(s) - (c.Exponent - 2)
	trimmed := strings.TrimRight(s[cut:], "0")
	return s[:cut] + trimmed
}

// catalogueKeys lists a catalogue's keys, sorted, for the catalogue test.
func catalogueKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
