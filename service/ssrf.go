package service

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/idna"
	"golang.org/x/text/width"
)

// Webhook URLs are chosen by API callers, and paymentd POSTs to them from
// inside the operator's network, so by default deliveries refuse every
// destination that is not a public address: a caller must not be able to
// make paymentd reach a metadata service, an admin port on loopback or a
// host on the private network. The check runs at dial time on the address
// actually connected to, after DNS resolution, so a hostname that resolves
// (or re-resolves) to a private address is refused too; redirects are never
// followed. Config.AllowPrivateWebhooks (--allow-private-webhooks) turns it
// off for local development and tests.

var (
	prefixCGNAT      = netip.MustParsePrefix("100.64.0.0/10")
	prefixThisNet    = netip.MustParsePrefix("0.0.0.0/8")
	prefixBenchmark  = netip.MustParsePrefix("198.18.0.0/15")
	prefixIETF       = netip.MustParsePrefix("192.0.0.0/24")
	prefixBroadcast4 = netip.MustParsePrefix("255.255.255.255/32")
	prefixReserved4  = netip.MustParsePrefix("240.0.0.0/4")
	prefixDoc6       = netip.MustParsePrefix("2001:db8::/32")
	prefixDiscard6   = netip.MustParsePrefix("100::/64")

	// IPv6 forms that carry an IPv4 address, which is where a packet to
	// them ends up: NAT64 (well-known and local-use), IPv4-compatible
	// (deprecated, ::a.b.c.d), IPv4-translated (::ffff:0:a.b.c.d, prefix ::ffff:0:0:0/96), 6to4 and
	// Teredo. IPv4-mapped (::ffff:a.b.c.d) is handled by Unmap.
	prefixNAT64      = netip.MustParsePrefix("64:ff9b::/96")
	prefixNAT64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	prefixV4Compat   = netip.MustParsePrefix("::/96")
	prefixV4Transl   = netip.MustParsePrefix("::ffff:0:0:0/96")
	prefix6to4       = netip.MustParsePrefix("2002::/16")
	prefixTeredo     = netip.MustParsePrefix("2001::/32")
)

// embeddedIPv4 returns the IPv4 addresses an IPv6 address stands for (see
// the prefixes above), or none.
func embeddedIPv4(ip netip.Addr) []netip.Addr {
	if !ip.Is6() || ip.Is4In6() {
		return nil
	}
	b := ip.As16()
	v4 := func(p []byte) netip.Addr { return netip.AddrFrom4([4]byte{p[0], p[1], p[2], p[3]}) }
	switch {
	case prefixNAT64.Contains(ip), prefixNAT64Local.Contains(ip), prefixV4Transl.Contains(ip):
		return []netip.Addr{v4(b[12:16])}
	case prefixV4Compat.Contains(ip):
		if ip == netip.IPv6Unspecified() || ip == netip.IPv6Loopback() {
			return nil
		}
		return []netip.Addr{v4(b[12:16])}
	case prefix6to4.Contains(ip):
		return []netip.Addr{v4(b[2:6])}
	case prefixTeredo.Contains(ip):
		// The Teredo server's address, and the client's, stored inverted.
		client := [4]byte{^b[12], ^b[13], ^b[14], ^b[15]}
		return []netip.Addr{v4(b[4:8]), netip.AddrFrom4(client)}
	}
	return nil
}

// blockedReason says why a webhook may not be delivered to ip, or "" if it
// may. An IPv6 address that embeds IPv4 addresses is judged by them.
func blockedReason(ip netip.Addr) string {
	ip = ip.WithZone("").Unmap()
	for _, v4 := range embeddedIPv4(ip) {
		if r := blockedReason(v4); r != "" {
			return r + " (embedded in " + ip.String() + ")"
		}
	}
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsUnspecified() || prefixThisNet.Contains(ip):
		return "an unspecified address"
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return "a link-local address"
	case ip.IsPrivate():
		if ip.Is6() {
			return "a unique-local address"
		}
		return "a private address"
	case prefixCGNAT.Contains(ip):
		return "a shared (CGNAT) address"
	case ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || prefixBroadcast4.Contains(ip):
		return "a multicast or broadcast address"
	case prefixBenchmark.Contains(ip) || prefixIETF.Contains(ip) || prefixReserved4.Contains(ip) ||
		prefixDoc6.Contains(ip) || prefixDiscard6.Contains(ip):
		return "a reserved address"
	}
	return ""
}

// blockedDestError is the error a refused dial returns.
type blockedDestError struct {
	addr   netip.Addr
	reason string
}

func (e *blockedDestError) Error() string {
	return fmt.Sprintf("destination %s is %s; webhooks are only delivered to public addresses (start paymentd with --allow-private-webhooks for local development)", e.addr, e.reason)
}

// guardedControl is a net.Dialer Control function refusing non-public
// destinations. allow, if not nil, admits particular addresses (tests).
func guardedControl(allow func(netip.AddrPort) bool) func(network, address string, c syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("webhook destination %q: %w", address, err)
		}
		if allow != nil && allow(ap) {
			return nil
		}
		if reason := blockedReason(ap.Addr()); reason != "" {
			return &blockedDestError{addr: ap.Addr().Unmap(), reason: reason}
		}
		return nil
	}
}

// newWebhookClient returns the HTTP client deliveries are made with: the
// dial-time guard unless allowPrivate, no proxy (a proxy would be dialed
// instead of the destination), no redirects, and timeout on the whole
// attempt.
func newWebhookClient(allowPrivate bool, timeout time.Duration, allow func(netip.AddrPort) bool) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = guardedControl(allow)
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    4,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// numericTLD matches host names whose last label is a number.
var numericTLD = regexp.MustCompile(`(^|\.)(0x[0-9a-f]*|[0-9]+)$`)

// maxWebhookURL bounds a webhook URL's length.
const maxWebhookURL = 2048

// checkWebhookURL validates a webhook URL given by a caller (an endpoint's
// url, or an object's callback_url): absolute http(s), https in live mode,
// and, unless private destinations are allowed, not naming or resolving to a
// non-public address. The dial-time guard still applies to every delivery;
// this check only reports the mistake at once.
func (s *Service) checkWebhookURL(ctx context.Context, param, raw string, livemode bool) error {
	if raw == "" {
		return Invalid(param, "parameter_missing", "%s is required: the https URL that should receive events.", param)
	}
	if len(raw) > maxWebhookURL {
		return Invalid(param, "parameter_too_long", "%s must be at most %d characters; got %d.", param, maxWebhookURL, len(raw))
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return Invalid(param, "url_invalid", "%s must be an absolute URL such as https://example.com/webhooks.", param)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if livemode && !s.cfg.AllowPrivateWebhooks {
			return Invalid(param, "url_insecure", "%s must use https in live mode.", param)
		}
	default:
		return Invalid(param, "url_invalid", "%s must be an http or https URL; got scheme %q.", param, u.Scheme)
	}
	if u.Fragment != "" {
		return Invalid(param, "url_invalid", "%s must not have a #fragment.", param)
	}
	if u.User != nil {
		return Invalid(param, "url_invalid", "%s must not contain a user name or password; send credentials in no URL (deliveries are signed instead).", param)
	}
	return s.checkPublicHost(ctx, param, u)
}

// hostProfile maps a host name the way resolvers and browsers do (UTS 46:
// full-width and other compatibility forms, case, IDNA A-labels), without
// refusing the underscores some real host names carry.
var hostProfile = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.StrictDomainName(false))

// normalizeHost gives the host name a URL reaches: percent-escapes decoded
// (url.Parse did that), full-width forms folded, IDNA-mapped to ASCII,
// lower case, no trailing dot.
func normalizeHost(h string) (string, error) {
	h = width.Fold.String(h)
	if ip, err := netip.ParseAddr(h); err == nil {
		return ip.String(), nil // an IPv6 literal, which IDNA would refuse
	}
	a, err := hostProfile.ToASCII(h)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.ToLower(a), "."), nil
}

// checkPublicHost refuses, unless private destinations are allowed, a URL
// whose host names or resolves to a non-public address (see blockedReason),
// after normalizing it the way a resolver would read it. It is the one rule
// for every URL paymentd will send requests to: webhook endpoints and the
// callback_url of invoices and payouts.
func (s *Service) checkPublicHost(ctx context.Context, param string, u *url.URL) error {
	if s.cfg.AllowPrivateWebhooks {
		return nil
	}
	refuse := func(what string) error {
		return Invalid(param, "url_not_allowed", "%s points to %s; paymentd only sends requests to public addresses (start paymentd with --allow-private-webhooks for local development).", param, what)
	}
	host, err := normalizeHost(u.Hostname())
	if err != nil || host == "" {
		return Invalid(param, "url_invalid", "%s has a host that is not a valid host name or IP address.", param)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if reason := blockedReason(ip); reason != "" {
			return refuse(reason + " (" + ip.String() + ")")
		}
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return refuse("a loopback address (" + host + ")")
	}
	if numericTLD.MatchString(host) {
		// No top-level domain is numeric: this is an address written in a
		// form such as 127.1, 2130706433 or 0x7f000001 that resolvers may
		// still accept.
		return refuse("an IP address in a non-standard form (" + host + ")")
	}
	// Resolve now to catch names of private hosts early; a name that does
	// not resolve yet is accepted (the dial-time guard decides later).
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(lctx, "ip", host)
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if reason := blockedReason(a); reason != "" {
			return refuse(reason + " (" + host + " resolves to " + a.Unmap().String() + ")")
		}
	}
	return nil
}
