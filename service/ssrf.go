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
	prefixNAT64      = netip.MustParsePrefix("64:ff9b::/96")
	prefixBroadcast4 = netip.MustParsePrefix("255.255.255.255/32")
)

// blockedReason says why a webhook may not be delivered to ip, or "" if it may.
func blockedReason(ip netip.Addr) string {
	if prefixNAT64.Contains(ip) {
		// The IPv4 address embedded in a NAT64 address is the real destination.
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	ip = ip.Unmap()
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
	case prefixBenchmark.Contains(ip) || prefixIETF.Contains(ip):
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
	if s.cfg.AllowPrivateWebhooks {
		return nil
	}
	refuse := func(what string) error {
		return Invalid(param, "url_not_allowed", "%s points to %s; webhooks are only delivered to public addresses.", param, what)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
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
		// form such as 127.1 or 0x7f000001 that resolvers may still accept.
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
