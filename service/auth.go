package service

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/paymentd/paymentd/store"
)

// Scopes an API key can hold. Write implies read.
const (
	ScopeRead    = "read"
	ScopeWrite   = "write"
	ScopePayouts = "payouts"
)

// AllScopes lists the valid scopes.
var AllScopes = []string{ScopeRead, ScopeWrite, ScopePayouts}

// Principal is the authenticated caller: an account acting in one mode.
type Principal struct {
	AccountID string
	KeyID     string
	Livemode  bool
	Scopes    []string
}

// Has reports whether the principal holds scope (write implies read).
func (p *Principal) Has(scope string) bool {
	return slices.Contains(p.Scopes, scope) || (scope == ScopeRead && slices.Contains(p.Scopes, ScopeWrite))
}

// Mode is "live" or "test".
func (p *Principal) Mode() string {
	if p.Livemode {
		return "live"
	}
	return "test"
}

type principalKey struct{}

// PrincipalFrom returns the authenticated caller stored in ctx by the auth interceptor.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

func withPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// NewAPIKey makes a new key secret for the mode: `ak_test_` or `ak_live_`
// followed by 32 random base62 characters (190 bits).
func NewAPIKey(livemode bool) string {
	if livemode {
		return randomSecret("ak_live_")
	}
	return randomSecret("ak_test_")
}

// HashAPIKey is how keys are stored and looked up.
func HashAPIKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// authenticator checks bearer keys against the store, caching lookups for
// ttl so that authentication is not a database read per call. A revoked key
// stops working within ttl.
type authenticator struct {
	store *store.Store
	ttl   time.Duration

	mu    sync.RWMutex
	cache map[[sha256.Size]byte]authEntry
}

type authEntry struct {
	key       *store.APIKey // nil: no such key
	principal *Principal    // key's principal, shared by its calls and never changed
	expires   time.Time
}

func newAuthenticator(s *store.Store, ttl time.Duration) *authenticator {
	return &authenticator{store: s, ttl: ttl, cache: map[[sha256.Size]byte]authEntry{}}
}

var errNoKey = &Error{Kind: KindUnauthenticated, Code: "api_key_missing",
	Message: "No API key provided. Send it as `authorization: Bearer ak_test_…` (gRPC metadata) or the HTTP header `Authorization: Bearer ak_test_…`."}

var errBadKey = &Error{Kind: KindUnauthenticated, Code: "api_key_invalid",
	Message: "The API key is not valid: it is unknown, revoked, or mistyped. Create one with `paymentd keys create`."}

// authenticate returns the principal for the call's bearer key.
func (a *authenticator) authenticate(ctx context.Context) (*Principal, error) {
	// ValueFromIncomingContext reads without copying the whole metadata.
	vals := metadata.ValueFromIncomingContext(ctx, "authorization")
	if len(vals) == 0 || strings.TrimSpace(vals[0]) == "" {
		return nil, errNoKey
	}
	if len(vals) > 1 {
		// Which one would count is a guess a proxy and paymentd may make
		// differently: refuse rather than pick.
		return nil, &Error{Kind: KindUnauthenticated, Code: "api_key_invalid",
			Message: fmt.Sprintf("The request carries %d authorization headers; send exactly one, `Bearer <key>`.", len(vals))}
	}
	scheme, token, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return nil, &Error{Kind: KindUnauthenticated, Code: "api_key_invalid",
			Message: "The authorization header must be `Bearer <key>`, e.g. `Bearer ak_test_…`."}
	}
	token = strings.TrimSpace(token)
	if !strings.HasPrefix(token, "ak_test_") && !strings.HasPrefix(token, "ak_live_") {
		return nil, &Error{Kind: KindUnauthenticated, Code: "api_key_invalid",
			Message: "API keys start with ak_test_ or ak_live_; check that the whole key was sent."}
	}
	sum := sha256.Sum256([]byte(token))
	e, err := a.lookup(ctx, sum)
	if err != nil {
		return nil, err
	}
	// The lookup was by hash; compare again in constant time so that no
	// code path compares secrets byte by byte.
	if e.key == nil || subtle.ConstantTimeCompare(e.key.Hash, sum[:]) != 1 || !e.key.Revoked.IsZero() {
		return nil, errBadKey
	}
	return e.principal, nil
}

// lookup returns the cache entry for a key's hash, reading the key from the
// store when it is missing or expired. The entry's principal is made once
// per lookup, not per call.
func (a *authenticator) lookup(ctx context.Context, sum [sha256.Size]byte) (authEntry, error) {
	now := time.Now()
	a.mu.RLock()
	e, ok := a.cache[sum]
	a.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e, nil
	}
	key, err := a.store.APIKeyByHash(ctx, sum[:])
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return authEntry{}, err
	}
	e = authEntry{key: key, expires: now.Add(a.ttl)}
	if key != nil {
		e.principal = &Principal{AccountID: key.AccountID, KeyID: key.ID, Livemode: key.Livemode, Scopes: key.Scopes}
	}
	a.mu.Lock()
	if len(a.cache) > 100_000 { // bound the cache against floods of bogus keys
		clear(a.cache)
	}
	a.cache[sum] = e
	a.mu.Unlock()
	return e, nil
}
