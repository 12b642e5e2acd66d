package paypage

import (
	"fmt"
	"image"
	"image/color"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	qrcode "github.com/yeqown/go-qrcode/v2"

	"github.com/paymentd/paymentd"
	"github.com/paymentd/paymentd/store"
)

// TestPageCatalogue checks that both languages have every string, with the
// same placeholders.
func TestPageCatalogue(t *testing.T) {
	en, bn := catalogueKeys(textEnglish), catalogueKeys(textBengali)
	if !slices.Equal(en, bn) {
		t.Fatalf("catalogue keys differ:\n en %v\n bn %v", en, bn)
	}
	for _, k := range en {
		for _, ph := range []string{"{merchant}", "{amount}", "{currency}", "{network}", "{confirmations}", "{time}", "{s}", "{m}", "{h}", "{d}"} {
			if strings.Contains(textEnglish[k], ph) != strings.Contains(textBengali[k], ph) {
				t.Errorf("%s: placeholder %s in one language only:\n en %q\n bn %q", k, ph, textEnglish[k], textBengali[k])
			}
		}
	}
}

func TestPageAmounts(t *testing.T) {
	usd, _ := paymentd.LookupCurrency("USD")
	usdt, _ := paymentd.LookupCurrency("USDT")
	btc, _ := paymentd.LookupCurrency("BTC")
	jpy, _ := paymentd.LookupCurrency("JPY")
	en, bn := pageLocales["en"], pageLocales["bn"]
	for _, tc := range []struct {
		l      *pageLocale
		minor  int64
		c      paymentd.Currency
		want   string
		reason string
	}{
		{en, 2500, usd, "25.00", ""},
		{en, 123456789, usd, "1,234,567.89", "thousands"},
		{bn, 123456789, usd, "১২,৩৪,৫৬৭.৮৯", "lakh grouping, Bengali digits"},
		{bn, 99999, usd, "৯৯৯.৯৯", ""},
		{en, 25_000_000, usdt, "25.00", "display precision"},
		{en, 20_500_000, usdt, "20.50", ""},
		{en, 20_123_456, usdt, "20.123456", "every digit that is not zero"},
		{en, 12_300, btc, "0.000123", ""},
		{en, 1_000_000, jpy, "1,000,000", "no decimals"},
		{en, -150, usd, "-1.50", ""},
	} {
		if got := tc.l.Amount(tc.minor, tc.c); got != tc.want {
			t.Errorf("%s Amount(%d %s) = %q; want %q %s", tc.l.Tag, tc.minor, tc.c.Code, got, tc.want, tc.reason)
		}
	}
	at := time.Date(2026, 12, 2, 15, 4, 5, 0, time.UTC)
	if got := bn.Time(at); got != "২ ডিসেম্বর ২০২৬, ১৫:০৪ UTC" {
		t.Errorf("bn Time = %q", got)
	}
	if got := en.Time(at); got != "2 Dec 2026, 15:04 UTC" {
		t.Errorf("en Time = %q", got)
	}
	if got := en.Remaining(90 * time.Minute); got != "90 min left" {
		t.Errorf("Remaining(90m) = %q", got)
	}
	if got := bn.Remaining(26 * time.Hour); got != "আর ২৬ ঘণ্টা ০ মিনিট বাকি" {
		t.Errorf("bn Remaining(26h) = %q", got)
	}
}

func TestPickLocale(t *testing.T) {
	for _, tc := range []struct{ query, accept, want string }{
		{"", "", "en"},
		{"", "bn", "bn"},
		{"", "bn-BD,bn;q=0.9", "bn"},
		{"", "fr, bn;q=0.5", "bn"},
		{"", "de-DE", "en"},
		{"?lang=bn", "en", "bn"},
		{"?lang=en", "bn", "en"},
		{"?lang=xx", "bn", "bn"},
		{"", "not a header;;;", "en"},
	} {
		r := httptest.NewRequest("GET", "/pay/inv_x"+tc.query, nil)
		r.Header.Set("Accept-Language", tc.accept)
		if got := pickLocale(r).Tag; got != tc.want {
			t.Errorf("query %q Accept-Language %q: %s; want %s", tc.query, tc.accept, got, tc.want)
		}
	}
}

// TestBrandColours checks that the Pay button's text colour always reaches
// AA contrast on the merchant's accent colour.
func TestBrandColours(t *testing.T) {
	for r := 0; r < 256; r += 17 {
		for g := 0; g < 256; g += 17 {
			for b := 0; b < 256; b += 17 {
				bg := "#" + hex2(r) + hex2(g) + hex2(b)
				if ratio := contrastRatio(bg, textOn(bg)); ratio < 4.5 {
					t.Fatalf("text %s on %s: contrast %.2f; want at least 4.5", textOn(bg), bg, ratio)
				}
			}
		}
	}
	v := newBrandView("ops", store.Brand{DisplayName: "Tea", AccentColor: "#aabbcc"})
	if v.Name != "Tea" || v.Accent != "#aabbcc" || v.AccentText != "#000000" {
		t.Errorf("brand view: %+v; want the display name and the colour with black text", v)
	}
	if v := newBrandView("", store.Brand{}); v.Name != "Merchant" || v.Accent != "" {
		t.Errorf("brand view of no brand: %+v; want Merchant and the page's own colours", v)
	}
}

func hex2(v int) string { return string("0123456789abcdef"[v>>4]) + string("0123456789abcdef"[v&15]) }

// TestDepositURI checks what the QR code holds per network.
func TestDepositURI(t *testing.T) {
	btc, _ := paymentd.LookupCurrency("BTC")
	usdt, _ := paymentd.LookupCurrency("USDT")
	if got := depositURI("bitcoin", "tb1qxyz", 12_300, btc); got != "bitcoin:tb1qxyz?amount=0.000123" {
		t.Errorf("bitcoin: %q", got)
	}
	if got := depositURI("bitcoin", "tb1qxyz", 100_000_000, btc); got != "bitcoin:tb1qxyz?amount=1" {
		t.Errorf("bitcoin 1 BTC: %q", got)
	}
	if got := depositURI("tron", "TXYZ", 25_000_000, usdt); got != "TXYZ" {
		t.Errorf("tron: %q", got)
	}
	svg, err := qrSVG("TXYZ", `<b>"label"</b>`)
	if err != nil || !strings.HasPrefix(string(svg), "<svg ") || strings.Contains(string(svg), "<b>") || strings.Contains(string(svg), "style") {
		t.Errorf("qrSVG: %v\n%s", err, svg)
	}
}

// depositAddressLike returns the i-th of many address-shaped strings of
// network (tron base58, ethereum hex, bitcoin bech32), as long as real ones.
func depositAddressLike(network string, i int) string {
	const base58, bech32 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	pick := func(alphabet string, n int) string {
		b := make([]byte, n)
		for j := range b {
			b[j] = alphabet[(i*31+j*17+j*j)%len(alphabet)]
		}
		return string(b)
	}
	switch network {
	case "tron":
		return "T" + pick(base58, 33)
	case "bitcoin":
		return "bc1q" + pick(bech32, 38)
	}
	return fmt.Sprintf("0x%040x", uint64(i)*0x9e3779b97f4a7c15)
}

// TestQRDecodes draws the QR codes of many deposit addresses at the page's
// 4 pixels a module and reads each back with an independent decoder.
func TestQRDecodes(t *testing.T) {
	for i := range 60 {
		network := []string{"tron", "ethereum", "bitcoin"}[i%3]
		addr := depositAddressLike(network, i)
		btc, _ := paymentd.LookupCurrency("BTC")
		text := depositURI(network, addr, int64(1000+i), btc)
		qr, err := qrcode.NewWith(text, qrcode.WithErrorCorrectionLevel(qrcode.ErrorCorrectionMedium))
		if err != nil {
			t.Fatal(err)
		}
		var m qrMatrix
		if err := qr.Save(&m); err != nil {
			t.Fatal(err)
		}
		const px, quiet = 4, 4
		size := (len(m.bits) + 2*quiet) * px
		img := image.NewGray(image.Rect(0, 0, size, size))
		for y := range size {
			for x := range size {
				my, mx := y/px-quiet, x/px-quiet
				dark := my >= 0 && mx >= 0 && my < len(m.bits) && mx < len(m.bits) && m.bits[my][mx]
				if dark {
					img.SetGray(x, y, color.Gray{0})
				} else {
					img.SetGray(x, y, color.Gray{255})
				}
			}
		}
		bmp, err := gozxing.NewBinaryBitmapFromImage(img)
		if err != nil {
			t.Fatal(err)
		}
		res, err := zxqr.NewQRCodeReader().Decode(bmp, nil)
		if err != nil || res.GetText() != text {
			t.Errorf("QR of %q: read %v, %v", text, res, err)
		}
	}
}
