package routing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/aikdata"
	"github.com/paymentd/paymentd/providers/alppay"
	"github.com/paymentd/paymentd/providers/aslan"
	"github.com/paymentd/paymentd/providers/aspayds"
	"github.com/paymentd/paymentd/providers/asyncpay"
	"github.com/paymentd/paymentd/providers/sandbox"
)

// Connection is one configured provider connection and its health.
type Connection struct {
	Name     string
	Provider string // aslan, aikdata, …
	Mode     string // test | live
	// Client is the adapter; it implements the capability interfaces of
	// package providers that its provider offers.
	Client providers.Provider

	mu     sync.Mutex
	health Health
}

// Livemode reports whether the connection serves live-mode keys.
func (c *Connection) Livemode() bool { return c.Mode == ModeLive }

// Health is what /v1/status shows of a connection.
type Health struct {
	// State is operational or degraded.
	State string
	// Latency of the last upstream call (or status check); At when it ended.
	Latency time.Duration
	At      time.Time
	// Message says why the connection is degraded.
	Message string
}

// Health returns the connection's last known health.
func (c *Connection) Health() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health
}

// observe records the outcome of every upstream call.
func (c *Connection) observe(o providers.Observation) {
	h := Health{State: "operational", Latency: o.Latency, At: o.At}
	switch {
	case o.Kind == providers.Unknown:
		h.State, h.Message = "degraded", "the last call got no usable answer in time"
	case o.Kind == providers.Unavailable && o.Status == 0:
		h.State, h.Message = "degraded", "the last call could not connect"
	case o.Kind == providers.Unavailable:
		h.State, h.Message = "degraded", fmt.Sprintf("the last call was refused with HTTP %d", o.Status)
	case o.Status == 401 || o.Status == 403:
		h.State, h.Message = "degraded", "the provider refused the connection's credentials"
	}
	c.mu.Lock()
	c.health = h
	c.mu.Unlock()
}

// Router routes operations to connections.
type Router struct {
	conns  []*Connection
	byName map[string]*Connection
	routes map[routeKey][]*Connection
	log    *slog.Logger
}

type routeKey struct {
	op       Operation
	live     bool
	currency string
}

// Options tune how connections are made.
type Options struct {
	// Getenv reads the credentials' environment variables (default os.Getenv).
	Getenv func(string) string
	// Timeout is the default per-call timeout of connections that set none.
	Timeout time.Duration
	// Logger gets one line per connection at start (names and modes only).
	Logger *slog.Logger
	// Transport, if set, sends every connection's HTTP requests (e.g. one
	// that adds a trace span and traceparent); default http.DefaultTransport.
	Transport http.RoundTripper
}

// New builds a Router from a configuration: every connection is validated,
// its credentials are read from the environment, and its adapter is made;
// every route must name connections of its mode that offer its operation.
// Error messages never contain credentials.
func New(f *File, o Options) (*Router, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Router{byName: map[string]*Connection{}, routes: map[routeKey][]*Connection{}, log: o.Logger}
	for i := range f.Connections {
		cc := &f.Connections[i]
		if err := cc.validate(); err != nil {
			return nil, err
		}
		if r.byName[cc.Name] != nil {
			return nil, fmt.Errorf("connection %s is configured twice", cc.Name)
		}
		conn := &Connection{Name: cc.Name, Provider: cc.Provider, Mode: cc.Mode, health: Health{State: "operational"}}
		client, err := newClient(cc, o, conn.observe)
		if err != nil {
			return nil, err
		}
		conn.Client = client
		r.conns = append(r.conns, conn)
		r.byName[cc.Name] = conn
	}
	for i, rc := range f.Routes {
		op := Operation(rc.Operation)
		if op != Payments && op != Invoices && op != Payouts {
			return nil, fmt.Errorf("route %d: operation must be payments, invoices or payouts, not %q", i+1, rc.Operation)
		}
		if rc.Mode != ModeTest && rc.Mode != ModeLive {
			return nil, fmt.Errorf("route %d (%s): mode must be test or live, not %q", i+1, op, rc.Mode)
		}
		cur := strings.ToUpper(strings.TrimSpace(rc.Currency))
		if cur == "" {
			cur = "*"
		}
		if len(rc.Connections) == 0 {
			return nil, fmt.Errorf("route %d (%s %s %s): list at least one connection", i+1, rc.Mode, op, cur)
		}
		key := routeKey{op, rc.Mode == ModeLive, cur}
		if r.routes[key] != nil {
			return nil, fmt.Errorf("route %d: %s %s in %s is routed twice", i+1, rc.Mode, op, cur)
		}
		var list []*Connection
		for _, name := range rc.Connections {
			c := r.byName[name]
			switch {
			case c == nil:
				return nil, fmt.Errorf("route %d (%s %s %s): no connection named %q", i+1, rc.Mode, op, cur, name)
			case c.Mode != rc.Mode:
				return nil, fmt.Errorf("route %d (%s %s %s): connection %s is a %s-mode connection; test and live never meet",
					i+1, rc.Mode, op, cur, name, c.Mode)
			case !offers(c.Client, op):
				return nil, fmt.Errorf("route %d (%s %s %s): %s (%s) does not offer %s", i+1, rc.Mode, op, cur, name, c.Provider, op)
			}
			list = append(list, c)
		}
		r.routes[key] = list
	}
	for _, c := range r.conns {
		o.Logger.Info("provider connection", "name", c.Name, "provider", c.Provider, "mode", c.Mode)
	}
	return r, nil
}

// Load reads the file at path and builds its Router.
func Load(path string, o Options) (*Router, error) {
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := New(f, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

func offers(client providers.Provider, op Operation) bool {
	switch op {
	case Payments:
		_, ok := client.(providers.Payments)
		return ok
	case Invoices:
		_, ok := client.(providers.Invoices)
		return ok
	case Payouts:
		_, ok := client.(providers.Payouts)
		return ok
	}
	return false
}

// newClient makes a connection's adapter, reading its credentials.
func newClient(cc *ConnectionConfig, o Options, observe func(providers.Observation)) (providers.Provider, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	cred := map[string]string{}
	for key, env := range cc.Credentials {
		v := getenv(env)
		if v == "" {
			return nil, fmt.Errorf("connection %s: credentials.%s names the environment variable %s, which is not set", cc.Name, key, env)
		}
		cred[key] = v
	}
	timeout := cc.Timeout
	if timeout == 0 {
		timeout = o.Timeout
	}
	hopts := providers.HTTPOptions{Timeout: timeout, MaxAttempts: cc.MaxAttempts, MaxResponseBytes: cc.MaxResponseBytes, Observe: observe}
	if o.Transport != nil {
		hopts.Client = &http.Client{Transport: o.Transport,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	opt := func(k string) string { return cc.Options[k] }
	wrap := func(c providers.Provider, err error) (providers.Provider, error) {
		if err != nil {
			// Adapter errors never contain credentials.
			return nil, fmt.Errorf("connection %s: %w", cc.Name, err)
		}
		return c, nil
	}
	switch cc.Provider {
	case "sandbox":
		return sandbox.New(), nil
	case "aslan":
		oneShot, err := parseBool(cc, "one_shot")
		if err != nil {
			return nil, err
		}
		live := strings.HasPrefix(cred["api_key"], "ak_live_")
		if live != (cc.Mode == ModeLive) && strings.HasPrefix(cred["api_key"], "ak_") {
			return nil, fmt.Errorf("connection %s: a %s-mode connection needs an ak_%s_ key, and %s holds another kind",
				cc.Name, cc.Mode, cc.Mode, cc.Credentials["api_key"])
		}
		return wrap(aslan.New(aslan.Options{Name: cc.Name, BaseURL: cc.BaseURL, PurchaseURL: opt("purchase_url"),
			APIKey: cred["api_key"], OneShot: oneShot, AgentID: opt("agent_id"), HTTP: hopts}))
	case "aikdata":
		return wrap(aikdata.New(aikdata.Options{Name: cc.Name, BaseURL: cc.BaseURL, Token: cred["token"], HTTP: hopts}))
	case "aspayds":
		var tol time.Duration
		if v := opt("webhook_tolerance"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("connection %s: options.webhook_tolerance must be a positive duration such as 5m", cc.Name)
			}
			tol = d
		}
		return wrap(aspayds.New(aspayds.Options{Name: cc.Name, BaseURL: cc.BaseURL, APIKey: cred["api_key"], APISecret: cred["api_secret"],
			Currency: opt("currency"), InvoiceCallbackURL: opt("invoice_callback_url"), PayoutCallbackURL: opt("payout_callback_url"),
			WebhookTolerance: tol, HTTP: hopts}))
	case "asyncpay":
		return wrap(asyncpay.New(asyncpay.Options{Name: cc.Name, BaseURL: cc.BaseURL, SecretKey: cred["secret_key"], HTTP: hopts,
			Paths: asyncpay.Paths{CreatePayment: opt("path_create_payment"), GetPayment: opt("path_get_payment"),
				CreateRefund: opt("path_create_refund"), PayoutMethods: opt("path_payout_methods"),
				CreatePayout: opt("path_create_payout"), GetPayout: opt("path_get_payout")}}))
	case "alppay":
		return wrap(alppay.New(alppay.Options{Name: cc.Name, BaseURL: cc.BaseURL, APIKey: cred["api_key"], Secret: cred["hmac_secret"],
			CreatePath: opt("create_path"), GetPath: opt("get_path"), HTTP: hopts}))
	}
	return nil, fmt.Errorf("connection %s: unknown provider %q", cc.Name, cc.Provider)
}

func parseBool(cc *ConnectionConfig, key string) (bool, error) {
	v := cc.Options[key]
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("connection %s: options.%s must be true or false", cc.Name, key)
	}
	return b, nil
}

// Route returns the connections for op in the mode and currency, in order
// of preference: those of the route for the currency, else of the mode's
// "*" route. It returns nil when no route applies; the caller then uses its
// default (the sandbox in test mode).
func (r *Router) Route(op Operation, livemode bool, currency string) []*Connection {
	if r == nil {
		return nil
	}
	if list := r.routes[routeKey{op, livemode, strings.ToUpper(currency)}]; list != nil {
		return list
	}
	return r.routes[routeKey{op, livemode, "*"}]
}

// Routed reports whether any route exists for op in the mode.
func (r *Router) Routed(op Operation, livemode bool) bool {
	if r == nil {
		return false
	}
	for k := range r.routes {
		if k.op == op && k.live == livemode {
			return true
		}
	}
	return false
}

// Connection returns the connection called name.
func (r *Router) Connection(name string) (*Connection, bool) {
	if r == nil {
		return nil, false
	}
	c, ok := r.byName[name]
	return c, ok
}

// Connections returns every connection, in configuration order.
func (r *Router) Connections() []*Connection {
	if r == nil {
		return nil
	}
	return r.conns
}

// Monitor checks every connection that has a status check (Aslan's
// /api/status, or an authenticated read) right away and then every
// interval until ctx ends; the outcomes update each connection's health,
// which /v1/status reports without calling providers itself.
func (r *Router) Monitor(ctx context.Context, interval time.Duration) {
	if r == nil || len(r.conns) == 0 {
		return
	}
	if interval <= 0 {
		interval = time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for _, c := range r.conns {
			chk, ok := c.Client.(providers.StatusChecker)
			if !ok {
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			start := time.Now()
			err := chk.CheckStatus(cctx)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if _, inProcess := c.Client.(*sandbox.Provider); inProcess {
				c.observe(providers.Observation{Latency: time.Since(start), At: time.Now()})
			}
			if err != nil {
				c.mu.Lock()
				c.health.State, c.health.Message = "degraded", "status check: "+err.Error()
				c.mu.Unlock()
				r.log.Warn("provider status check failed", "connection", c.Name, "error", err.Error())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
