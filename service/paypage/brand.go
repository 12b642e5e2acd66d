package paypage

import (
	"fmt"
	"math"
	"net/url"

	"github.com/paymentd/paymentd/store"
)

// brandView is how the page shows an account: its display name (falling
// back to the account's name, then to "Merchant"), and the brand settings
// the backend checked (Backend.Merchant).
type brandView struct {
	Name         string
	LogoURL      string
	LogoOrigin   string // for the page's img-src
	Accent       string // #rrggbb, or "" for the page's own colours
	AccentText   string // #ffffff or #000000, whichever contrasts more with Accent
	SupportEmail string
	SupportURL   string
}

func newBrandView(name string, b store.Brand) brandView {
	v := brandView{Name: "Merchant"}
	if name != "" {
		v.Name = name
	}
	if b.DisplayName != "" {
		v.Name = b.DisplayName
	}
	if b.LogoURL != "" {
		if u, err := url.Parse(b.LogoURL); err == nil {
			v.LogoURL, v.LogoOrigin = b.LogoURL, Origin(u.Scheme+"://"+u.Host)
		}
	}
	if b.AccentColor != "" {
		v.Accent = b.AccentColor
		v.AccentText = textOn(b.AccentColor)
	}
	v.SupportEmail, v.SupportURL = b.SupportEmail, b.SupportURL
	return v
}

// textOn picks the text colour for a background: whichever of white
// and black has the higher WCAG contrast ratio. One of the two always
// reaches 4.5:1 (AA for normal text) on any colour.
func textOn(bg string) string {
	l := relativeLuminance(bg)
	if (1.05)/(l+0.05) >= (l+0.05)/(luminanceDark+0.05) {
		return "#ffffff"
	}
	return "#000000"
}

// luminanceDark is the relative luminance of black.
var luminanceDark = relativeLuminance("#000000")

// relativeLuminance is WCAG 2's relative luminance of a #rrggbb colour.
func relativeLuminance(hex string) float64 {
	var rgb [3]float64
	for i := range rgb {
		var v int
		_, _ = fmt.Sscanf(hex[1+2*i:3+2*i], "%02x", &v)
		c := float64(v) / 255
		if c <= 0.04045 {
			rgb[i] = c / 12.92
		} else {
			rgb[i] = math.Pow((c+0.055)/1.055, 2.4)
		}
	}
	return 0.2126*rgb[0] + 0.7152*rgb[1] + 0.0722*rgb[2]
}

// contrastRatio is WCAG 2's contrast ratio of two #rrggbb colours.
func contrastRatio(a, b string) float64 {
	la, lb := relativeLuminance(a), relativeLuminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}
