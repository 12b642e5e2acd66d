package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/store"
)

// maxProviderWebhookBody bounds an inbound provider webhook's body.
const maxProviderWebhookBody = 64 << 10

// Outcomes of an inbound provider webhook, as answered and recorded.
const (
	webhookApplied   = "applied"   // the confirmed state was applied
	webhookIgnored   = "ignored"   // nothing to change: object unknown, already settled, or not confirmed
	webhookDuplicate = "duplicate" // this provider event was handled before
)

// webhookProvider returns the configured provider (a connection of
// paymentd.yaml, or the default test or live provider) called name, if it
// parses webhooks.
func (s *Service) webhookProvider(name string) (providers.WebhookParser, any) {
	if c, ok := s.cfg.Router.Connection(name); ok {
		parser, ok := c.Client.(providers.WebhookParser)
		if !ok {
			return nil, nil
		}
		return parser, c.Client
	}
	for _, prov := range []providers.Payments{s.cfg.TestProvider, s.cfg.LiveProvider} {
		if prov == nil || providerName(prov) != name {
			continue
		}
		if parser, ok := prov.(providers.WebhookParser); ok {
			return parser, prov
		}
	}
	return nil, nil
}

// providerWebhook serves POST /v1/provider-webhooks/{provider}. The
// provider's adapter verifies and parses the raw body; a duplicate answers
// 200 and changes nothing; otherwise the state the webhook claims is never
// trusted as such: the provider is asked for the object's state (as the
// providers' own documentation advises), and only a confirmed settlement of
// an unsettled object is applied, so an out-of-order webhook cannot move an
// object backwards. The change and the record of the provider's event id
// are written together.
func (s *Service) providerWebhook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("provider")
	parser, prov := s.webhookProvider(name)
	if parser == nil {
		writeRESTError(w, http.StatusNotFound, restErrorBody{Type: "invalid_request_error", Code: "provider_not_found",
			Message: "No configured provider called " + truncate(name, 64) + " accepts webhooks here."})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxProviderWebhookBody))
	if err != nil {
		writeRESTError(w, http.StatusRequestEntityTooLarge, restErrorBody{Type: "invalid_request_error", Code: "body_too_large",
			Message: "The webhook body could not be read or is larger than 64 KiB."})
		return
	}
	log := s.log.With("provider", name)
	ev, err := parser.ParseWebhook(r.Header, body, time.Now())
	if err != nil {
		if errors.Is(err, providers.ErrWebhookSignature) {
			log.Warn("provider webhook: signature refused", "error", err.Error())
			writeRESTError(w, http.StatusUnauthorized, restErrorBody{Type: "authentication_error", Code: "signature_invalid",
				Message: "The webhook's signature does not verify."})
			return
		}
		log.Warn("provider webhook: unreadable", "error", err.Error())
		writeRESTError(w, http.StatusBadRequest, restErrorBody{Type: "invalid_request_error", Code: "webhook_invalid",
			Message: "The webhook could not be parsed: " + truncate(err.Error(), 200)})
		return
	}
	if ev.ID == "" {
		writeRESTError(w, http.StatusBadRequest, restErrorBody{Type: "invalid_request_error", Code: "webhook_invalid",
			Message: "The webhook has no event id."})
		return
	}
	log = log.With("provider_event", ev.ID, "type", ev.Type)
	outcome, objectID, err := s.handleProviderEvent(r.Context(), name, prov, ev)
	if err != nil {
		// Nothing was recorded: the provider's retry will be handled afresh.
		log.Warn("provider webhook: not handled", "error", err.Error())
		writeRESTError(w, http.StatusServiceUnavailable, restErrorBody{Type: "api_error", Code: "provider_unavailable",
			Message: "The webhook could not be confirmed with the provider yet; send it again later."})
		return
	}
	log.Info("provider webhook", "outcome", outcome, "object", objectID)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"received": true, "outcome": outcome, "object_id": objectID})
}

// handleProviderEvent applies one verified provider event and reports what
// it did. An error means nothing was recorded and the provider should retry.
func (s *Service) handleProviderEvent(ctx context.Context, provider string, prov any, ev providers.WebhookEvent) (outcome, objectID string, err error) {
	seen, err := s.store.ProviderEventSeen(ctx, provider, ev.ID)
	if err != nil {
		return "", "", err
	}
	if seen {
		return webhookDuplicate, "", nil
	}
	// Invoices and payouts: add a case with a prepare function of the same
	// shape (find the unsettled object, confirm with the provider outside the
	// write, return the change to apply inside it). Other kinds are recorded
	// as ignored.
	var apply providerEventApply
	switch ev.ObjectKind {
	case "payment":
		apply, objectID, err = s.preparePaymentEvent(ctx, provider, prov, ev)
	}
	if err != nil {
		return "", "", err
	}
	outcome = webhookIgnored
	err = s.store.Write(ctx, func(tx *store.Tx) error {
		if apply != nil {
			o, err := apply(tx)
			if err != nil {
				return err
			}
			outcome = o
		}
		return tx.InsertProviderEvent(provider, ev.ID, ev.Type, objectID, outcome)
	})
	if errors.Is(err, store.ErrConflict) {
		return webhookDuplicate, "", nil // the same event, handled concurrently
	}
	if err != nil {
		return "", "", err
	}
	return outcome, objectID, nil
}

// providerEventApply makes the change a provider event calls for, inside
// the write that also records the event, and says what it did
// (webhookApplied or webhookIgnored).
type providerEventApply func(tx *store.Tx) (string, error)

// preparePaymentEvent finds the unsettled payment a provider event is about
// and asks the provider for its state; the returned function settles it
// from that state. A payment that is not found (settled already, or not
// ours) gets no function: nothing to change.
func (s *Service) preparePaymentEvent(ctx context.Context, provider string, prov any, ev providers.WebhookEvent) (providerEventApply, string, error) {
	p, err := s.store.UnsettledPayment(ctx, provider, ev.MerchantReference, ev.Reference)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	getter, ok := prov.(providers.PaymentStatusGetter)
	if !ok {
		return nil, p.ID, nil // cannot be confirmed: the reconciler will ask when it can
	}
	ref := p.ProviderRef
	if ref == "" {
		ref = p.ID
	}
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ProviderTimeout)
	state, err := getter.GetPayment(pctx, ref)
	cancel()
	if err != nil {
		return nil, "", err
	}
	pr := &Principal{AccountID: p.AccountID, Livemode: p.Livemode}
	return func(tx *store.Tx) (string, error) {
		err := settlePaymentTx(tx, pr, p.ID, state)
		switch {
		case err == nil:
			return webhookApplied, nil
		case errors.Is(err, errAlreadySettled), errors.Is(err, errNotSettled):
			return webhookIgnored, nil
		}
		return "", err
	}, p.ID, nil
}
