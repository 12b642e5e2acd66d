package service

import (
	"context"
	"crypto/rand"
	"errors"
	"regexp"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/paymentd/paymentd"
	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store"
)

// EventsServer implements paymentd.v1.EventsService: events, webhook
// endpoints and the account's default signing secret.
type EventsServer struct {
	pb.UnimplementedEventsServiceServer
	*Service
}

// Webhook limits.
const (
	// maxWebhookEndpoints bounds an account's endpoints per mode, and so the
	// deliveries one event can cause.
	maxWebhookEndpoints = 16
	maxEventTypes       = 50
	// secretOverlap is how long a rotated secret keeps signing beside its successor.
	secretOverlap = 24 * time.Hour
)

// newWebhookSecret makes a signing secret: whsec_ and 32 random base62
// characters (190 bits).
func newWebhookSecret() string { return randomSecret("whsec_") }

// randomSecret is prefix and 32 random base62 characters (190 bits), each
// equally likely: API keys and webhook signing secrets.
func randomSecret(prefix string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := []byte(prefix)
	var r [1]byte
	for len(b) < len(prefix)+32 {
		_, _ = rand.Read(r[:])
		if r[0] < 248 { // 248 = 4×62: reject the rest so every character is equally likely
			b = append(b, alphabet[r[0]%62])
		}
	}
	return string(b)
}

var eventTypePattern = regexp.MustCompile(`^(\*|[a-z][a-z0-9_]*(\.[a-z0-9_]+)*(\.\*)?)$`)

func checkEventTypes(types []string) ([]string, error) {
	if len(types) > maxEventTypes {
		return nil, Invalid("event_types", "parameter_invalid", "event_types may list at most %d types; got %d. Use a pattern such as payment.* instead.", maxEventTypes, len(types))
	}
	var out []string
	for _, t := range types {
		if len(t) > 100 || !eventTypePattern.MatchString(t) {
			return nil, Invalid("event_types", "event_type_invalid",
				"event_types entry %q is not an event type; use names such as payment.succeeded, patterns such as payment.*, or leave event_types empty for all events.", truncate(t, 100))
		}
		if !matchesSomeEventType(t) {
			return nil, Invalid("event_types", "event_type_invalid",
				"event_types entry %q matches no event paymentd sends, so the endpoint would never receive one; use names such as payment.succeeded (docs/webhooks.md lists them all), patterns such as payment.*, refund.*, invoice.* or payout.*, or leave event_types empty for all events.", truncate(t, 100))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

// matchesSomeEventType reports whether the subscription pattern p (a name,
// a prefix pattern such as payment.*, or *) matches one of the event types
// paymentd writes, by the rule deliveries are matched with.
func matchesSomeEventType(p string) bool {
	sub := store.WebhookTarget{EventTypes: []string{p}}
	for _, typ := range paymentd.EventTypes {
		if sub.Wants(string(typ)) {
			return true
		}
	}
	return false
}

// endpointProto is e for the API. With withSecret it carries the secret as
// stored (sealed when the server has a secrets key), so that an idempotent
// replay saved with it holds no plain secret; openEndpointSecret opens it
// just before the answer goes out.
func endpointProto(e *store.WebhookEndpoint, withSecret bool) *pb.WebhookEndpoint {
	out := &pb.WebhookEndpoint{Id: e.ID, Url: e.URL, EventTypes: e.EventTypes, Description: e.Description,
		Livemode: e.Livemode, CreatedAt: timestamppb.New(e.Created), Deleted: !e.Deleted.IsZero()}
	if withSecret {
		out.Secret = e.Secret
	}
	if !e.PreviousExpires.IsZero() && e.PreviousSecret != "" {
		out.PreviousSecretExpiresAt = timestamppb.New(e.PreviousExpires)
	}
	return out
}

// secretProto is w for the API, its secret as stored (see endpointProto and
// openAccountSecret).
func secretProto(w *store.WebhookSecret) *pb.WebhookSecret {
	out := &pb.WebhookSecret{Secret: w.Secret, Livemode: w.Livemode, CreatedAt: timestamppb.New(w.Created)}
	if !w.PreviousExpires.IsZero() && w.PreviousSecret != "" {
		out.PreviousSecretExpiresAt = timestamppb.New(w.PreviousExpires)
	}
	return out
}

// CreateWebhookEndpoint registers an endpoint and returns it with its secret.
func (s *EventsServer) CreateWebhookEndpoint(ctx context.Context, req *pb.CreateWebhookEndpointRequest) (*pb.CreateWebhookEndpointResponse, error) {
	pr := mustPrincipal(ctx)
	if err := s.checkWebhookURL(ctx, "url", req.Url, pr.Livemode); err != nil {
		return nil, err
	}
	types, err := checkEventTypes(req.EventTypes)
	if err != nil {
		return nil, err
	}
	if err := checkLen("description", req.Description, maxDescription); err != nil {
		return nil, err
	}
	resp := &pb.CreateWebhookEndpointResponse{}
	err = s.idem.run(ctx, "CreateWebhookEndpoint", req, resp, func(ik *idemKey) error {
		e := &store.WebhookEndpoint{ID: NewID(PrefixWebhookEndpoint), AccountID: pr.AccountID, Livemode: pr.Livemode,
			URL: req.Url, EventTypes: types, Description: req.Description}
		e.Secret = s.secrets.seal(newWebhookSecret(), secretOwner(e.ID, "", false))
		err := s.store.Write(ctx, func(tx *store.Tx) error {
			n, err := tx.CountWebhookEndpoints(pr.AccountID, pr.Livemode)
			if err != nil {
				return err
			}
			if n >= maxWebhookEndpoints {
				return Errorf(KindConflict, "webhook_endpoint_limit",
					"This account already has %d webhook endpoints in %s mode, the most allowed; delete one first, or subscribe one endpoint to more event types.", n, pr.Mode())
			}
			e.Created = tx.Now()
			if err := tx.InsertWebhookEndpoint(e); err != nil {
				return err
			}
			resp.WebhookEndpoint = endpointProto(e, true)
			return ik.save(tx, resp, nil)
		})
		s.store.InvalidateWebhookTargets(pr.AccountID, pr.Livemode)
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := s.openEndpointSecret(resp.WebhookEndpoint); err != nil {
		return nil, err
	}
	return resp, nil
}

// openEndpointSecret opens the secret of an endpoint answered (see
// endpointProto).
func (s *EventsServer) openEndpointSecret(e *pb.WebhookEndpoint) error {
	plain, err := s.secrets.open(e.GetSecret(), secretOwner(e.GetId(), "", false))
	if err != nil {
		return err
	}
	e.Secret = plain
	return nil
}

// openAccountSecret opens the account's default secret answered.
func (s *EventsServer) openAccountSecret(pr *Principal, w *pb.WebhookSecret) error {
	plain, err := s.secrets.open(w.GetSecret(), secretOwner("", pr.AccountID, pr.Livemode))
	if err != nil {
		return err
	}
	w.Secret = plain
	return nil
}

// ListWebhookEndpoints returns a page of the account's endpoints, without secrets.
func (s *EventsServer) ListWebhookEndpoints(ctx context.Context, req *pb.ListWebhookEndpointsRequest) (*pb.ListWebhookEndpointsResponse, error) {
	pr := mustPrincipal(ctx)
	f, err := pageFilter(pr, req.PageSize, req.PageToken, PrefixWebhookEndpoint)
	if err != nil {
		return nil, err
	}
	es, err := s.store.ListWebhookEndpoints(ctx, f)
	if err != nil {
		return nil, err
	}
	resp := &pb.ListWebhookEndpointsResponse{}
	es, resp.NextPageToken = nextPage(es, f, func(x *store.WebhookEndpoint) string { return x.ID })
	resp.WebhookEndpoints = make([]*pb.WebhookEndpoint, len(es))
	for i, e := range es {
		resp.WebhookEndpoints[i] = endpointProto(e, false)
	}
	return resp, nil
}

func endpointNotFound(pr *Principal, id string) error {
	return &Error{Kind: KindNotFound, Code: "resource_missing", Param: "id",
		Message: "No such webhook endpoint: '" + truncate(id, 64) + "' in " + pr.Mode() + " mode."}
}

// DeleteWebhookEndpoint stops deliveries to an endpoint; its pending
// deliveries are marked failed when they come due.
func (s *EventsServer) DeleteWebhookEndpoint(ctx context.Context, req *pb.DeleteWebhookEndpointRequest) (*pb.DeleteWebhookEndpointResponse, error) {
	pr := mustPrincipal(ctx)
	if !validID(req.Id, PrefixWebhookEndpoint) {
		return nil, endpointNotFound(pr, req.Id)
	}
	resp := &pb.DeleteWebhookEndpointResponse{}
	err := s.idem.run(ctx, "DeleteWebhookEndpoint", req, resp, func(ik *idemKey) error {
		err := s.store.Write(ctx, func(tx *store.Tx) error {
			err := tx.DeleteWebhookEndpoint(pr.AccountID, pr.Livemode, req.Id)
			if errors.Is(err, store.ErrNotFound) {
				return endpointNotFound(pr, req.Id)
			}
			if err != nil {
				return err
			}
			e, err := tx.GetWebhookEndpoint(pr.AccountID, pr.Livemode, req.Id)
			if err != nil {
				return err
			}
			resp.WebhookEndpoint = endpointProto(e, false)
			return ik.save(tx, resp, nil)
		})
		s.store.InvalidateWebhookTargets(pr.AccountID, pr.Livemode)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// RotateWebhookSecret gives an endpoint a new secret; the old one keeps
// signing beside it for 24 hours, so receivers can switch without losing
// deliveries.
func (s *EventsServer) RotateWebhookSecret(ctx context.Context, req *pb.RotateWebhookSecretRequest) (*pb.RotateWebhookSecretResponse, error) {
	pr := mustPrincipal(ctx)
	if !validID(req.Id, PrefixWebhookEndpoint) {
		return nil, endpointNotFound(pr, req.Id)
	}
	resp := &pb.RotateWebhookSecretResponse{}
	err := s.idem.run(ctx, "RotateWebhookSecret", req, resp, func(ik *idemKey) error {
		return s.store.Write(ctx, func(tx *store.Tx) error {
			secret := s.secrets.seal(newWebhookSecret(), secretOwner(req.Id, "", false))
			err := tx.RotateWebhookEndpointSecret(pr.AccountID, pr.Livemode, req.Id, secret, tx.Now().Add(secretOverlap))
			if errors.Is(err, store.ErrNotFound) {
				return endpointNotFound(pr, req.Id)
			}
			if err != nil {
				return err
			}
			e, err := tx.GetWebhookEndpoint(pr.AccountID, pr.Livemode, req.Id)
			if err != nil {
				return err
			}
			resp.WebhookEndpoint = endpointProto(e, true)
			return ik.save(tx, resp, nil)
		})
	})
	if err != nil {
		return nil, err
	}
	if err := s.openEndpointSecret(resp.WebhookEndpoint); err != nil {
		return nil, err
	}
	return resp, nil
}

// GetAccountWebhookSecret returns the account's default secret, which signs
// deliveries to objects' callback_url; it is made on first use.
func (s *EventsServer) GetAccountWebhookSecret(ctx context.Context, _ *pb.GetAccountWebhookSecretRequest) (*pb.GetAccountWebhookSecretResponse, error) {
	pr := mustPrincipal(ctx)
	ws, err := s.accountSecret(ctx, pr.AccountID, pr.Livemode)
	if err != nil {
		return nil, err
	}
	out := secretProto(ws)
	if err := s.openAccountSecret(pr, out); err != nil {
		return nil, err
	}
	return &pb.GetAccountWebhookSecretResponse{WebhookSecret: out}, nil
}

// RotateAccountWebhookSecret replaces the default secret; the old one keeps
// signing beside it for 24 hours.
func (s *EventsServer) RotateAccountWebhookSecret(ctx context.Context, req *pb.RotateAccountWebhookSecretRequest) (*pb.RotateAccountWebhookSecretResponse, error) {
	pr := mustPrincipal(ctx)
	resp := &pb.RotateAccountWebhookSecretResponse{}
	err := s.idem.run(ctx, "RotateAccountWebhookSecret", req, resp, func(ik *idemKey) error {
		return s.store.Write(ctx, func(tx *store.Tx) error {
			secret := s.secrets.seal(newWebhookSecret(), secretOwner("", pr.AccountID, pr.Livemode))
			ws, err := tx.RotateWebhookSecret(pr.AccountID, pr.Livemode, secret, tx.Now().Add(secretOverlap))
			if err != nil {
				return err
			}
			resp.WebhookSecret = secretProto(ws)
			return ik.save(tx, resp, nil)
		})
	})
	if err != nil {
		return nil, err
	}
	if err := s.openAccountSecret(pr, resp.WebhookSecret); err != nil {
		return nil, err
	}
	return resp, nil
}
