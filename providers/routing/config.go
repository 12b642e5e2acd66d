// Package routing reads paymentd's provider configuration (paymentd.yaml)
// and routes each operation to the configured provider connections.
//
// A connection is one provider account: its provider (aslan, aikdata,
// aspayds, asyncpay, alppay or sandbox), its mode (test or live), its base
// URL, and its credentials — given in the file only as the NAMES of
// environment variables, read once at start, never logged and never
// returned by the API. Routes map an operation (payments, invoices,
// payouts), a mode and a currency (or "*") to an ordered list of
// connections: the first is used, and the next only when the one before
// failed in a way that proves no money moved (providers.Unavailable:
// refused connections, 429/503, refused credentials), never after an
// ambiguous failure.
//
// Example:
//
//	connections:
//	  - name: aslan-live
//	    provider: aslan
//	    mode: live
//	    base_url: https://aslanpay.xyz
//	    credentials:
//	      api_key: ASLAN_LIVE_KEY        # the environment variable holding ak_live_…
//	  - name: aikdata-live
//	    provider: aikdata
//	    mode: live
//	    credentials:
//	      token: AIKDATA_TOKEN
//	routes:
//	  - operation: payments
//	    mode: live
//	    currency: USD
//	    connections: [aslan-live, aikdata-live]
package routing

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is the content of paymentd.yaml.
type File struct {
	Connections []ConnectionConfig `yaml:"connections"`
	Routes      []RouteConfig      `yaml:"routes"`
}

// ConnectionConfig is one provider connection.
type ConnectionConfig struct {
	// Name identifies the connection: payments record it as their
	// provider, /v1/status lists it, and inbound webhooks are posted to
	// /v1/provider-webhooks/{name}.
	Name     string `yaml:"name"`
	Provider string `yaml:"provider"`
	Mode     string `yaml:"mode"` // test | live
	// BaseURL overrides the provider's documented base URL (e.g. its
	// sandbox host, or a fake in tests). Live connections need https,
	// except to a loopback address.
	BaseURL string `yaml:"base_url"`
	// Credentials maps each credential the provider needs to the NAME of
	// the environment variable that holds it.
	Credentials map[string]string `yaml:"credentials"`
	// Options are provider-specific settings (see docs/providers.md).
	Options map[string]string `yaml:"options"`
	// Timeout bounds one call, retries included (default: paymentd's
	// provider timeout, 20s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts bounds the attempts of one call (default 4).
	MaxAttempts int `yaml:"max_attempts"`
	// MaxResponseBytes caps response bodies (default 1 MiB).
	MaxResponseBytes int64 `yaml:"max_response_bytes"`
}

// RouteConfig sends one operation of one mode and currency to connections,
// in order of preference.
type RouteConfig struct {
	Operation   string   `yaml:"operation"` // payments | invoices | payouts
	Mode        string   `yaml:"mode"`      // test | live
	Currency    string   `yaml:"currency"`  // e.g. USD, or "*" for any (the default)
	Connections []string `yaml:"connections"`
}

// Operation is what a route routes.
type Operation string

// The routed operations.
const (
	Payments Operation = "payments"
	Invoices Operation = "invoices"
	Payouts  Operation = "payouts"
)

// Mode names.
const (
	ModeTest = "test"
	ModeLive = "live"
)

// ParseFile decodes paymentd.yaml, refusing unknown keys so that a typo is
// an error rather than a silently ignored setting.
func ParseFile(data []byte) (*File, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("provider configuration: %w", err)
	}
	return &f, nil
}

// ReadFile reads and decodes the configuration file at path.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("provider configuration: %w", err)
	}
	f, err := ParseFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	envVarRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)
)

// credentialNames are the credentials each provider needs.
var credentialNames = map[string][]string{
	"aslan":    {"api_key"},
	"aikdata":  {"token"},
	"aspayds":  {"api_key", "api_secret"},
	"asyncpay": {"secret_key"},
	"alppay":   {"api_key", "hmac_secret"},
	"sandbox":  {},
}

// optionNames are the options each provider takes.
var optionNames = map[string][]string{
	"aslan":    {"purchase_url", "one_shot", "agent_id"},
	"aikdata":  {},
	"aspayds":  {"currency", "invoice_callback_url", "payout_callback_url", "webhook_tolerance"},
	"asyncpay": {"path_create_payment", "path_get_payment", "path_create_refund", "path_payout_methods", "path_create_payout", "path_get_payout"},
	"alppay":   {"create_path", "get_path"},
	"sandbox":  {},
}

// validate checks a connection's static settings (not its secrets).
func (c *ConnectionConfig) validate() error {
	if !nameRE.MatchString(c.Name) {
		return fmt.Errorf("connection name %q: use 1–64 lower-case letters, digits, - and _", c.Name)
	}
	need, ok := credentialNames[c.Provider]
	if !ok {
		return fmt.Errorf("connection %s: unknown provider %q; use one of aslan, aikdata, aspayds, asyncpay, alppay, sandbox", c.Name, c.Provider)
	}
	if c.Mode != ModeTest && c.Mode != ModeLive {
		return fmt.Errorf("connection %s: mode must be test or live, not %q", c.Name, c.Mode)
	}
	if c.Provider == "sandbox" && (c.Mode != ModeTest || c.Name != "sandbox") {
		return fmt.Errorf("connection %s: the sandbox is a test-mode connection named sandbox", c.Name)
	}
	if c.Provider != "sandbox" && c.Name == "sandbox" {
		return fmt.Errorf("connection sandbox: the name is reserved for the built-in sandbox")
	}
	if c.BaseURL != "" {
		if err := checkBaseURL(c.BaseURL, c.Mode == ModeLive); err != nil {
			return fmt.Errorf("connection %s: base_url: %w", c.Name, err)
		}
	}
	for key, env := range c.Credentials {
		if !contains(need, key) {
			return fmt.Errorf("connection %s: %s takes no credential %q; it takes %s", c.Name, c.Provider, key, list(need))
		}
		if !envVarRE.MatchString(env) {
			// Never echo the value: it may be a secret pasted by mistake.
			return fmt.Errorf("connection %s: credentials.%s must be the NAME of an environment variable (upper-case letters, digits and _, e.g. %s), never the secret itself",
				c.Name, key, strings.ToUpper(strings.ReplaceAll(c.Name, "-", "_")+"_"+key))
		}
	}
	for _, key := range need {
		if c.Credentials[key] == "" {
			return fmt.Errorf("connection %s: credentials.%s is required: the name of the environment variable that holds it", c.Name, key)
		}
	}
	for key := range c.Options {
		if !contains(optionNames[c.Provider], key) {
			return fmt.Errorf("connection %s: %s has no option %q; its options are %s", c.Name, c.Provider, key, list(optionNames[c.Provider]))
		}
	}
	if c.Timeout < 0 || c.MaxAttempts < 0 || c.MaxResponseBytes < 0 {
		return fmt.Errorf("connection %s: timeout, max_attempts and max_response_bytes cannot be negative", c.Name)
	}
	return nil
}

func checkBaseURL(raw string, live bool) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("must be an absolute http(s) URL")
	}
	if u.User != nil {
		return errors.New("must not carry credentials; they come from environment variables")
	}
	if live && u.Scheme != "https" && !isLoopback(u.Hostname()) {
		return errors.New("a live connection must use https (plain http is allowed only to a loopback address)")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func list(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}
