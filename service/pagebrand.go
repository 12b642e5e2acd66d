package service

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/paymentd/paymentd/store"
)

// An account's brand is what its customers see of it on the hosted payment
// page: a display name instead of the operator's name for the account, a
// logo, an accent colour and a way to reach support. Brand settings are
// typed by the operator (`paymentd accounts update`), so every one is checked
// here before it is stored, and the page renders each only in a form that
// cannot become markup, script or a request anywhere but the logo's origin.

// Limits on brand settings.
const (
	maxDisplayName = 100
	maxBrandURL    = 2048
	maxEmail       = 254
)

// hexColour matches #rgb and #rrggbb.
var hexColour = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// BrandChecks tunes CheckBrand.
type BrandChecks struct {
	// Param names a brand field for error messages; nil names it as the
	// store does (display_name, logo_url, accent_color, support_email,
	// support_url). The CLI names them by its flags.
	Param func(field string) string
	// AllowPrivate accepts URLs on private or loopback hosts, for local
	// development and tests, as --allow-private-webhooks does for webhooks.
	AllowPrivate bool
	// Resolver, if set, resolves host names so that a name of a private host
	// is refused too; nil skips resolution (the name is checked as written).
	Resolver *net.Resolver
}

// CheckBrand validates brand settings and returns them normalised (trimmed,
// the colour as lowercase #rrggbb). An error names the setting and says
// what to change.
func CheckBrand(ctx context.Context, b store.Brand, c BrandChecks) (store.Brand, error) {
	param := c.Param
	if param == nil {
		param = func(f string) string { return f }
	}
	b.DisplayName = strings.TrimSpace(b.DisplayName)
	if n := utf8.RuneCountInString(b.DisplayName); n > maxDisplayName {
		return b, Invalid(param("display_name"), "parameter_too_long", "%s must be at most %d characters; got %d.", param("display_name"), maxDisplayName, n)
	}
	if !utf8.ValidString(b.DisplayName) || strings.IndexFunc(b.DisplayName, unicode.IsControl) >= 0 {
		return b, Invalid(param("display_name"), "parameter_invalid", "%s must be plain text on one line, without control characters.", param("display_name"))
	}
	var err error
	if b.LogoURL, err = checkBrandURL(ctx, param("logo_url"), b.LogoURL, c); err != nil {
		return b, err
	}
	if b.SupportURL, err = checkBrandURL(ctx, param("support_url"), b.SupportURL, c); err != nil {
		return b, err
	}
	b.AccentColor = strings.TrimSpace(b.AccentColor)
	if b.AccentColor != "" {
		if !hexColour.MatchString(b.AccentColor) {
			return b, Invalid(param("accent_color"), "parameter_invalid",
				"%s must be a hex colour such as #1d4ed8 or #c0f; got %q.", param("accent_color"), truncate(b.AccentColor, 20))
		}
		col := strings.ToLower(b.AccentColor)
		if len(col) == 4 {
			col = string([]byte{'#', col[1], col[1], col[2], col[2], col[3], col[3]})
		}
		b.AccentColor = col
	}
	b.SupportEmail = strings.TrimSpace(b.SupportEmail)
	if b.SupportEmail != "" {
		a, perr := mail.ParseAddress(b.SupportEmail)
		if perr != nil || a.Address != b.SupportEmail || len(b.SupportEmail) > maxEmail || strings.ContainsAny(b.SupportEmail, "<>\"' ") {
			return b, Invalid(param("support_email"), "parameter_invalid",
				"%s must be a plain e-mail address such as help@shop.example (no name, no angle brackets), at most %d characters.", param("support_email"), maxEmail)
		}
	}
	return b, nil
}

// checkBrandURL checks a URL the page links to or loads: absolute https,
// no credentials or fragment, a host that is not (and, with a resolver, does
// not resolve to) a private, loopback or otherwise non-public address.
// Customers' browsers fetch these URLs, so a private target would point
// them at their own network; the rules are those of webhook URLs
// (checkWebhookURL), minus plain http, which the page never loads.
func checkBrandURL(ctx context.Context, param, raw string, c BrandChecks) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	if len(raw) > maxBrandURL {
		return raw, Invalid(param, "parameter_too_long", "%s must be at most %d characters; got %d.", param, maxBrandURL, len(raw))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return raw, Invalid(param, "url_invalid", "%s must be an absolute https URL such as https://shop.example/logo.png; got %q.", param, truncate(raw, 100))
	}
	if u.Scheme != "https" {
		return raw, Invalid(param, "url_insecure", "%s must use https, so that the payment page never loads or links to anything unencrypted; got scheme %q.", param, u.Scheme)
	}
	if u.User != nil {
		return raw, Invalid(param, "url_invalid", "%s must not contain a user name or password.", param)
	}
	if u.Fragment != "" {
		return raw, Invalid(param, "url_invalid", "%s must not have a #fragment.", param)
	}
	if callbackOrigin(u.Scheme+"://"+u.Host) == "" {
		return raw, Invalid(param, "url_invalid", "%s must have a plain host name or address, such as https://cdn.shop.example/logo.png.", param)
	}
	if c.AllowPrivate {
		return u.String(), nil
	}
	refuse := func(what string) error {
		return Invalid(param, "url_not_allowed", "%s points to %s; it must be on a public host that customers' browsers can reach.", param, what)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		if reason := blockedReason(ip); reason != "" {
			return raw, refuse(reason + " (" + ip.String() + ")")
		}
		return u.String(), nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return raw, refuse("a loopback address (" + host + ")")
	}
	if numericTLD.MatchString(host) {
		return raw, refuse("an IP address in a non-standard form (" + host + ")")
	}
	if !strings.Contains(host, ".") {
		return raw, refuse(fmt.Sprintf("a single-label host name (%s), which only resolves on a private network", host))
	}
	if c.Resolver != nil {
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if addrs, err := c.Resolver.LookupNetIP(lctx, "ip", host); err == nil {
			for _, a := range addrs {
				if reason := blockedReason(a); reason != "" {
					return raw, refuse(reason + " (" + host + " resolves to " + a.Unmap().String() + ")")
				}
			}
		}
	}
	return u.String(), nil
}

// brandView is how the page shows an account: its display name (falling
// back to the account's name, then to "Merchant"), and the brand settings
// that passed CheckBrand when they were stored, checked again here so that
// a row written by anything else never reaches the page unchecked.
type brandView struct {
	Name         string
	LogoURL      string
	LogoOrigin   string // for the page's img-src
	Accent       string // #rrggbb, or "" for the page's own colours
	AccentText   string // #ffffff or #000000, whichever contrasts more with Accent
	SupportEmail string
	SupportURL   string
}

func newBrandView(a *store.Account) brandView {
	v := brandView{Name: "Merchant"}
	if a == nil {
		return v
	}
	if a.Name != "" {
		v.Name = a.Name
	}
	b, err := CheckBrand(context.Background(), a.Brand, BrandChecks{AllowPrivate: true})
	if err != nil {
		return v // a stored value that no longer passes: show none of the brand rather than part of it
	}
	if b.DisplayName != "" {
		v.Name = b.DisplayName
	}
	if b.LogoURL != "" {
		if u, err := url.Parse(b.LogoURL); err == nil {
			v.LogoURL, v.LogoOrigin = b.LogoURL, callbackOrigin(u.Scheme+"://"+u.Host)
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
