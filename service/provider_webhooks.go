package service

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/service/paypage"
	"github.com/paymentd/paymentd/store"
)

// storableText reports whether s can be an id paymentd stores: UTF-8
// without U+0000 (PostgreSQL refuses either as a query parameter).
func storableText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// inboundHooks serves what providers send paymentd: their webhooks (POST
// /v1/provider-webhooks/{provider}) and the customers they send back (GET).
// It is a type of its own so that these handlers are not methods of
// Service; it reaches the store and the providers through the Service it
// embeds.
type inboundHooks struct{ *Service }

// maxProviderWebhookBody bounds an inbound provider webhook's body.
const maxProviderWebhookBody = 64 << 10

// Outcomes of an inbound provider webhook, as answered and recorded.
const (
	webhookApplied = "applied" // the provider confirmed a change, which was applied
	// webhookIgnored: nothing to change: the object is not ours, or already
	// records what the provider confirms (a late or out-of-order event).
	webhookIgnored   = "ignored"
	webhookDuplicate = "duplicate" // this provider event was handled before
	// webhookUnconfirmed: the provider's own answer does not bear the
	// webhook's claim out, so nothing changed. The event is not recorded as
	// handled: the same event sent again is checked again.
	webhookUnconfirmed = "unconfirmed"
)

// webhookProvider returns the configured provider called name, if it
// parses webhooks: a connection of paymentd.yaml by its name, or the
// default test or live provider (the sandbox is "sandbox"). A sandbox
// connection is the service's own sandbox, as for payments (routing.go).
func (s inboundHooks) webhookProvider(name string) (providers.WebhookParser, any) {
	if c, ok := s.cfg.Router.Connection(name); ok {
		if c.Provider == sandboxName {
			parser, _ := s.cfg.TestProvider.(providers.WebhookParser)
			return parser, s.cfg.TestProvider
		}
		parser, ok := c.Client.(providers.WebhookParser)
		if !ok {
			return nil, nil
		}
		return parser, c.Client
	}
	if prov := s.cfg.TestProvider; providerName(prov) == name {
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
func (s inboundHooks) providerWebhook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("provider")
	parser, prov := s.webhookProvider(name)
	verdict := "unknown_connection"
	defer func() {
		conn := name
		if parser == nil {
			conn = "unknown" // never a label value the caller chose
		}
		s.metrics.providerWebhooks.WithLabelValues(conn, verdict).Inc()
	}()
	if parser == nil {
		writeRESTError(w, http.StatusNotFound, restErrorBody{Type: "invalid_request_error", Code: "provider_not_found",
			Message: "No configured provider connection of this name accepts webhooks here; the path's last segment must be a connection name of paymentd.yaml."})
		return
	}
	verdict = "invalid"
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
			verdict = "signature_invalid"
			log.WarnContext(r.Context(), "provider webhook: signature refused", "error", err.Error())
			writeRESTError(w, http.StatusUnauthorized, restErrorBody{Type: "authentication_error", Code: "signature_invalid",
				Message: "The webhook's signature does not verify."})
			return
		}
		log.WarnContext(r.Context(), "provider webhook: unreadable", "error", err.Error())
		writeRESTError(w, http.StatusBadRequest, restErrorBody{Type: "invalid_request_error", Code: "webhook_invalid",
			Message: "The webhook could not be parsed: " + truncate(err.Error(), 200)})
		return
	}
	if ev.ID == "" {
		writeRESTError(w, http.StatusBadRequest, restErrorBody{Type: "invalid_request_error", Code: "webhook_invalid",
			Message: "The webhook has no event id."})
		return
	}
	// U+0000 is in no id paymentd or a provider gives, and PostgreSQL
	// refuses it as a query parameter (which would be a 503, retried forever).
	for _, v := range []string{ev.ID, ev.Type, ev.ObjectKind, ev.Reference, ev.Status, ev.MerchantReference} {
		if strings.IndexByte(v, 0) >= 0 {
			log.WarnContext(r.Context(), "provider webhook: NUL character in the event")
			writeRESTError(w, http.StatusBadRequest, restErrorBody{Type: "invalid_request_error", Code: "webhook_invalid",
				Message: "The webhook holds a NUL character (U+0000) in its id, type, status or an object's id."})
			return
		}
	}
	log = log.With("provider_event", ev.ID, "type", ev.Type)
	outcome, objectID, err := s.handleProviderEvent(r.Context(), name, prov, ev)
	verdict = outcome
	if err != nil {
		verdict = "unavailable"
		// Nothing was recorded: the provider's retry will be handled afresh.
		log.WarnContext(r.Context(), "provider webhook: not handled", "error", err.Error())
		writeRESTError(w, http.StatusServiceUnavailable, restErrorBody{Type: "api_error", Code: "provider_unavailable",
			Message: "The webhook could not be confirmed with the provider yet; send it again later."})
		return
	}
	log.InfoContext(r.Context(), "provider webhook", "outcome", outcome, "object", objectID)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"received": true, "outcome": outcome, "object_id": objectID})
}

// handleProviderEvent applies one verified provider event and reports what
// it did. An error means nothing was recorded and the provider should retry.
func (s inboundHooks) handleProviderEvent(ctx context.Context, provider string, prov any, ev providers.WebhookEvent) (outcome, objectID string, err error) {
	seen, err := s.store.ProviderEventSeen(ctx, provider, ev.ID)
	if err != nil {
		return "", "", err
	}
	if seen {
		return webhookDuplicate, "", nil
	}
	// Each kind finds our object, confirms with the provider outside the
	// write, and returns the change to apply inside it. Objects that are not
	// ours are recorded as ignored.
	var apply providerEventApply
	switch ev.ObjectKind {
	case "payment":
		apply, objectID, err = s.preparePaymentEvent(ctx, provider, prov, ev)
	case "invoice":
		apply, objectID, err = s.prepareInvoiceEvent(ctx, provider, ev)
	case "payout":
		apply, objectID, err = s.preparePayoutEvent(ctx, provider, ev)
	default:
		s.log.WarnContext(ctx, "provider webhook: object kind not handled", "provider", provider, "kind", ev.ObjectKind, "type", ev.Type)
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
		if outcome == webhookUnconfirmed {
			return nil // nothing changed; the same event is checked afresh if it comes again
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
func (s inboundHooks) preparePaymentEvent(ctx context.Context, provider string, prov any, ev providers.WebhookEvent) (providerEventApply, string, error) {
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
	pctx, done := s.providerCall(ctx, getter, "get_payment")
	state, err := getter.GetPayment(pctx, ref)
	done(err)
	if err != nil {
		return nil, "", err
	}
	pr := &Principal{AccountID: p.AccountID, Livemode: p.Livemode}
	return func(tx *store.Tx) (string, error) {
		err := settlePaymentTx(tx, pr, p.ID, state)
		switch {
		case err == nil:
			return webhookApplied, nil
		case errors.Is(err, errAlreadySettled):
			return webhookIgnored, nil
		case errors.Is(err, errNotSettled):
			return webhookUnconfirmed, nil // the provider has not settled it either
		}
		return "", err
	}, p.ID, nil
}

// prepareInvoiceEvent finds the provider-served invoice an event is about
// (by the provider's invoice id, else by transaction reference) and asks
// the provider for its state (aspayds: GET /payment/{id}; its webhooks are
// unsigned). The returned function records, through the same write path
// as GET /v1/invoices/{id} (applyInvoiceStateTx), what that answer adds:
// only what the provider itself reports, never the webhook's claim, and
// never a step backwards.
func (s inboundHooks) prepareInvoiceEvent(ctx context.Context, provider string, ev providers.WebhookEvent) (providerEventApply, string, error) {
	inv, err := s.store.ProviderInvoice(ctx, provider, ev.Reference, ev.MerchantReference)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	st, err := s.invoiceProviderState(ctx, inv)
	if errors.Is(err, errProviderMismatch) {
		s.log.ErrorContext(ctx, "provider webhook: the provider reports another amount or currency; nothing recorded",
			"invoice", inv.ID, "provider", provider, "error", err.Error())
		return unconfirmed, inv.ID, nil
	}
	if err != nil {
		return nil, "", err
	}
	confirmed := st.Status == ev.Status
	return func(tx *store.Tx) (string, error) {
		_, changed, err := applyInvoiceStateTx(tx, inv, st)
		return webhookOutcome(changed, confirmed), err
	}, inv.ID, nil
}

// preparePayoutEvent is prepareInvoiceEvent for payouts (aspayds: GET
// /payout/{id}; applied like GET /v1/payouts/{id}, by applyPayoutStateTx).
func (s inboundHooks) preparePayoutEvent(ctx context.Context, provider string, ev providers.WebhookEvent) (providerEventApply, string, error) {
	p, err := s.store.ProviderPayout(ctx, provider, ev.Reference, ev.MerchantReference)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	st, err := s.payoutProviderState(ctx, p)
	if errors.Is(err, errProviderMismatch) {
		s.log.ErrorContext(ctx, "provider webhook: the provider reports another amount; nothing recorded",
			"payout", p.ID, "provider", provider, "error", err.Error())
		return unconfirmed, p.ID, nil
	}
	if err != nil {
		return nil, "", err
	}
	confirmed := st.Status == ev.Status
	return func(tx *store.Tx) (string, error) {
		_, changed, err := applyPayoutStateTx(tx, p, st)
		return webhookOutcome(changed, confirmed), err
	}, p.ID, nil
}

// unconfirmed is the change of an event the provider does not bear out.
func unconfirmed(*store.Tx) (string, error) { return webhookUnconfirmed, nil }

// webhookOutcome names what an event did: applied when the provider's
// answer changed the object; ignored when the object already records the
// status the provider confirms; unconfirmed when the provider's answer does
// not confirm the webhook's claim and changed nothing.
func webhookOutcome(changed, confirmed bool) string {
	switch {
	case changed:
		return webhookApplied
	case confirmed:
		return webhookIgnored
	}
	return webhookUnconfirmed
}

// providerReturn serves GET /v1/provider-webhooks/{provider}: the customer
// coming back from a provider's payment page. aspayds sends its webhooks to
// an invoice's callback_url and also redirects the customer's browser there
// (with ?status=success|cancel&invoice_id=…&transaction_reference=…), so
// with the connection option invoice_callback_url set to paymentd's webhook
// URL both arrive here: webhooks by POST (providerWebhook), customers by
// GET. The customer's query is only a hint: paymentd asks the provider for
// the invoice's state (as aspayds' document requires), records what is new,
// and sends the customer on to the invoice's own callback_url with
// paymentd's invoice id, as the sandbox's payment page does.
func (s inboundHooks) providerReturn(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("provider")
	if _, ok := s.conns.routedInvoices(name); !ok {
		s.pages.NotFound(w)
		return
	}
	q := r.URL.Query()
	ref, reference := q.Get("invoice_id"), q.Get("transaction_reference")
	if len(ref) > maxReference*4 || len(reference) > maxReference || (ref == "" && reference == "") ||
		!storableText(ref) || !storableText(reference) {
		s.pages.NotFound(w)
		return
	}
	inv, err := s.store.ProviderInvoice(r.Context(), name, ref, reference)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.pages.NotFound(w)
		return
	case err != nil:
		s.pages.Failure(w, r, err)
		return
	}
	inv = s.conns.syncRoutedInvoice(r.Context(), inv) // confirmed with the provider, never taken from the query
	status := paypage.RedirectCancel
	if q.Get("status") == paypage.RedirectSuccess {
		status = paypage.RedirectSuccess
	}
	s.pages.Redirect(w, r, inv, status)
}
