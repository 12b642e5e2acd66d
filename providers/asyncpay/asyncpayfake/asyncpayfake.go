// Package asyncpayfake is an in-process Asyncpay server for tests. It
// follows what Asyncpay documents — bearer secret key, JSON, the {status,
// message, data} envelope with "success"/"failed" — and, for the endpoints
// the document leaves unspecified, the shapes the asyncpay adapter assumes,
// at configurable paths. It embeds a fakekit.Kit so tests can make it
// misbehave.
package asyncpayfake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/paymentd/paymentd/providers/asyncpay"
	"github.com/paymentd/paymentd/providers/fakekit"
)

// Channel is a payout channel of the fake.
type Channel struct {
	ID, Name, Type, Currency, AccountFormat string
	Min, Max, FeeFixed, FeeBPS              int64
}

// DefaultChannels are the fake's payout channels.
var DefaultChannels = []Channel{
	{ID: "ch_ngn_bank", Name: "NGN bank transfer", Type: "bank_transfer", Currency: "NGN", AccountFormat: "10-digit NUBAN",
		Min: 1000_00, Max: 5_000_000_00, FeeFixed: 50_00},
	{ID: "ch_kes_mpesa", Name: "M-Pesa", Type: "mobile_banking", Currency: "KES", AccountFormat: "2547XXXXXXXX",
		Min: 100_00, Max: 150_000_00, FeeBPS: 100},
}

// Server is a fake Asyncpay.
type Server struct {
	*fakekit.Kit
	srv *httptest.Server
	key string

	mu       sync.Mutex
	payments map[string]*object // by id and reference
	payouts  map[string]*object
	channels []Channel
}

type object struct {
	id, reference, currency, status, reason string
	amount, fee, refunded                   int64
}

// New starts a fake Asyncpay accepting the secret key, serving paths
// (empty fields take asyncpay.DefaultPaths). Close it when done.
func New(secretKey string, paths asyncpay.Paths) *Server {
	d := asyncpay.DefaultPaths
	for _, f := range []struct {
		v   *string
		def string
	}{
		{&paths.CreatePayment, d.CreatePayment}, {&paths.GetPayment, d.GetPayment}, {&paths.CreateRefund, d.CreateRefund},
		{&paths.PayoutMethods, d.PayoutMethods}, {&paths.CreatePayout, d.CreatePayout}, {&paths.GetPayout, d.GetPayout},
	} {
		if *f.v == "" {
			*f.v = f.def
		}
	}
	s := &Server{key: secretKey, payments: map[string]*object{}, payouts: map[string]*object{}, channels: DefaultChannels}
	s.Kit = fakekit.New(renderError)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+paths.CreatePayment, s.auth(s.createPayment))
	mux.HandleFunc("GET "+paths.GetPayment, s.auth(s.getPayment))
	mux.HandleFunc("POST "+paths.CreateRefund, s.auth(s.createRefund))
	mux.HandleFunc("GET "+paths.PayoutMethods, s.auth(s.listChannels))
	mux.HandleFunc("POST "+paths.CreatePayout, s.auth(s.createPayout))
	mux.HandleFunc("GET "+paths.GetPayout, s.auth(s.getPayout))
	s.srv = httptest.NewServer(s.Wrap(mux))
	return s
}

// URL is the fake's base URL.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

func renderError(w http.ResponseWriter, status int) {
	writeEnvelope(w, status, "failed", fakekit.StatusText(status), nil)
}

func writeEnvelope(w http.ResponseWriter, status int, word, msg string, data any) {
	raw, _ := json.Marshal(map[string]any{"status": word, "message": msg, "data": data})
	fakekit.WriteJSON(w, status, raw)
}

func invalid(w http.ResponseWriter, field, msg string) {
	raw, _ := json.Marshal(map[string]any{"status": "failed", "message": msg, "data": nil, "errors": map[string][]string{field: {msg}}})
	fakekit.WriteJSON(w, http.StatusUnprocessableEntity, raw)
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+s.key {
			writeEnvelope(w, http.StatusUnauthorized, "failed", "Invalid secret key", nil)
			return
		}
		h(w, r)
	}
}

func newID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s%x", prefix, b)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeEnvelope(w, http.StatusBadRequest, "failed", "Malformed JSON: "+err.Error(), nil)
		return false
	}
	return true
}

func (s *Server) paymentJSON(o *object) map[string]any {
	return map[string]any{"id": o.id, "reference": o.reference, "amount": s.Amount(o.amount), "currency": s.Currency(o.currency),
		"status": o.status, "failure_reason": o.reason}
}

func (s *Server) createPayment(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Amount        int64  `json:"amount"`
		Currency      string `json:"currency"`
		Reference     string `json:"reference"`
		Description   string `json:"description"`
		PaymentMethod string `json:"payment_method"`
	}
	if !decode(w, r, &b) {
		return
	}
	switch {
	case b.Amount <= 0:
		invalid(w, "amount", "amount must be a positive integer in minor units")
		return
	case len(b.Currency) != 3:
		invalid(w, "currency", "currency must be a three-letter code")
		return
	case b.Reference == "":
		invalid(w, "reference", "reference is required")
		return
	}
	o := &object{id: newID("pmt_"), reference: b.Reference, currency: b.Currency, amount: b.Amount, status: "successful"}
	if s.TakeDecline() {
		o.status, o.reason = "failed", "card_declined"
	}
	s.mu.Lock()
	if s.payments[b.Reference] != nil {
		s.mu.Unlock()
		invalid(w, "reference", "reference has already been used")
		return
	}
	s.payments[o.id], s.payments[o.reference] = o, o
	data := s.paymentJSON(o)
	s.mu.Unlock()
	s.Book(o.id, "payment", o.currency, func(m *fakekit.Money) {
		m.Status = o.status
		if o.status == "successful" {
			m.Captured = o.amount
		}
	})
	s.Alias(o.id, o.reference)
	if o.status == "failed" {
		writeEnvelope(w, http.StatusOK, "failed", "Payment failed: card declined", data)
		return
	}
	writeEnvelope(w, http.StatusOK, "success", "Payment successful", data)
}

func (s *Server) getPayment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	o := s.payments[r.PathValue("id")]
	var data map[string]any
	if o != nil {
		data = s.paymentJSON(o)
	}
	s.mu.Unlock()
	if o == nil {
		writeEnvelope(w, http.StatusNotFound, "failed", "Payment not found", nil)
		return
	}
	writeEnvelope(w, http.StatusOK, "success", "Payment retrieved", data)
}

func (s *Server) createRefund(w http.ResponseWriter, r *http.Request) {
	var b struct {
		PaymentID string `json:"payment_id"`
		Amount    int64  `json:"amount"`
		Reference string `json:"reference"`
	}
	if !decode(w, r, &b) {
		return
	}
	s.mu.Lock()
	p := s.payments[b.PaymentID]
	if p == nil {
		s.mu.Unlock()
		writeEnvelope(w, http.StatusNotFound, "failed", "Payment not found", nil)
		return
	}
	if b.Amount <= 0 || b.Amount > p.amount-p.refunded {
		s.mu.Unlock()
		invalid(w, "amount", fmt.Sprintf("amount must be between 1 and %d", p.amount-p.refunded))
		return
	}
	p.refunded += b.Amount
	s.Book(p.id, "payment", p.currency, func(m *fakekit.Money) { m.Refunded += b.Amount })
	data := map[string]any{"id": newID("rfd_"), "payment_id": p.id, "reference": b.Reference, "amount": s.Amount(b.Amount),
		"currency": s.Currency(p.currency), "status": "successful"}
	s.mu.Unlock()
	writeEnvelope(w, http.StatusOK, "success", "Refund successful", data)
}

func (s *Server) listChannels(w http.ResponseWriter, _ *http.Request) {
	var data []map[string]any
	for _, c := range s.channels {
		data = append(data, map[string]any{"id": c.ID, "name": c.Name, "type": c.Type, "currency": c.Currency,
			"min_amount": c.Min, "max_amount": c.Max, "fee_fixed": c.FeeFixed, "fee_percent_bps": c.FeeBPS, "account_format": c.AccountFormat})
	}
	writeEnvelope(w, http.StatusOK, "success", "Payout channels retrieved", data)
}

func (s *Server) payoutJSON(o *object) map[string]any {
	return map[string]any{"id": o.id, "reference": o.reference, "amount": s.Amount(o.amount), "fee": o.fee,
		"currency": s.Currency(o.currency), "status": o.status, "reason": o.reason}
}

func (s *Server) createPayout(w http.ResponseWriter, r *http.Request) {
	var b struct {
		ChannelID   string            `json:"channel_id"`
		Amount      int64             `json:"amount"`
		Currency    string            `json:"currency"`
		Reference   string            `json:"reference"`
		Recipient   map[string]string `json:"recipient"`
		Description string            `json:"description"`
	}
	if !decode(w, r, &b) {
		return
	}
	var ch *Channel
	for i := range s.channels {
		if s.channels[i].ID == b.ChannelID {
			ch = &s.channels[i]
		}
	}
	switch {
	case ch == nil:
		invalid(w, "channel_id", "unknown payout channel")
		return
	case !strings.EqualFold(b.Currency, ch.Currency):
		invalid(w, "currency", "the channel pays out in "+ch.Currency)
		return
	case b.Amount < ch.Min || b.Amount > ch.Max:
		invalid(w, "amount", fmt.Sprintf("amount must be between %d and %d", ch.Min, ch.Max))
		return
	case b.Recipient["account"] == "" || b.Recipient["name"] == "":
		invalid(w, "recipient", "recipient name and account are required")
		return
	case b.Reference == "":
		invalid(w, "reference", "reference is required")
		return
	case s.TakeDecline():
		writeEnvelope(w, http.StatusPaymentRequired, "failed", "Insufficient balance for this payout", nil)
		return
	}
	o := &object{id: newID("po_"), reference: b.Reference, currency: ch.Currency, amount: b.Amount, status: "pending",
		fee: ch.FeeFixed + b.Amount*ch.FeeBPS/10000}
	s.mu.Lock()
	if s.payouts[b.Reference] != nil {
		s.mu.Unlock()
		invalid(w, "reference", "reference has already been used")
		return
	}
	s.payouts[o.id], s.payouts[o.reference] = o, o
	data := s.payoutJSON(o)
	s.mu.Unlock()
	s.Book(o.id, "payout", o.currency, func(m *fakekit.Money) { m.Pending, m.Status = o.amount, o.status })
	s.Alias(o.id, o.reference)
	writeEnvelope(w, http.StatusOK, "success", "Payout initiated", data)
}

func (s *Server) getPayout(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	o := s.payouts[r.PathValue("id")]
	var data map[string]any
	if o != nil {
		data = s.payoutJSON(o)
	}
	s.mu.Unlock()
	if o == nil {
		writeEnvelope(w, http.StatusNotFound, "failed", "Payout not found", nil)
		return
	}
	writeEnvelope(w, http.StatusOK, "success", "Payout retrieved", data)
}

// SettlePayout moves a payout (by id or reference) to status.
func (s *Server) SettlePayout(reference, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.payouts[reference]
	if o == nil {
		return fmt.Errorf("asyncpayfake: no payout %q", reference)
	}
	o.status = status
	if status == "rejected" {
		o.reason = "recipient account closed"
	}
	settleBook(s.Kit, o.id, o.currency, o.amount, status)
	return nil
}

// settleBook moves a payout's money in the books as its status says:
// completed money is paid out, rejected or cancelled money is back, and
// anything else is still pending.
func settleBook(k *fakekit.Kit, id, currency string, amount int64, status string) {
	k.Book(id, "payout", currency, func(m *fakekit.Money) {
		m.Status, m.Pending, m.PaidOut = status, 0, 0
		switch status {
		case "completed":
			m.PaidOut = amount
		case "rejected", "cancelled", "failed":
		default:
			m.Pending = amount
		}
	})
}
