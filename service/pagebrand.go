package service

import (
	"context"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/paymentd/paymentd/service/paypage"
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
	if paypage.Origin(u.Scheme+"://"+u.Host) == "" {
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

// checkedBrand is the name and brand the payment page shows for account a:
// its display name (falling back to the account's name), and the brand
// settings that passed CheckBrand when they were stored, checked again here
// so that a row written by anything else never reaches the page unchecked.
// A stored value that no longer passes shows none of the brand rather than
// part of it.
func checkedBrand(a *store.Account) (string, store.Brand) {
	if a == nil {
		return "", store.Brand{}
	}
	b, err := CheckBrand(context.Background(), a.Brand, BrandChecks{AllowPrivate: true})
	if err != nil {
		return a.Name, store.Brand{}
	}
	return a.Name, b
}
