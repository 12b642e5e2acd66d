// Package aikdatafake is an in-process aikdata Payments API server for
// tests, following its OpenAPI document (charge, get, list with
// limit/offset/status, full or partial refund, bearer auth, 400
// {"error":{code,message}} with card_declined, 401) and embedding a
// fakekit.Kit so tests can make it misbehave.
package aikdatafake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/paymentd/paymentd/providers/fakekit"
)

// Server is a fake aikdata.
type Server struct {
	*fakekit.Kit
	srv   *httptest.Server
	token string

	mu      sync.Mutex
	charges []*charge // in creation order
	byID    map[string]*charge
}

type charge struct {
	id, currency, status, description string
	amount, refunded                  int64
	created                           time.Time
	metadata                          map[string]string
}

// New starts a fake aikdata accepting the bearer token. Close it when done.
func New(token string) *Server {
	s := &Server{token: token, byID: map[string]*charge{}}
	s.Kit = fakekit.New(renderError)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /charge", s.auth(s.createCharge))
	mux.HandleFunc("GET /charge/{id}", s.auth(s.getCharge))
	mux.HandleFunc("GET /charges", s.auth(s.listCharges))
	mux.HandleFunc("POST /refund", s.auth(s.refund))
	s.srv = httptest.NewServer(s.Wrap(mux))
	return s
}

// URL is the fake's base URL (the OpenAPI server URL's equivalent).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Metadata returns the metadata a charge was created with.
func (s *Server) Metadata(id string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch := s.byID[id]; ch != nil {
		return ch.metadata
	}
	return nil
}

// Plant changes a charge behind paymentd's back, as a provider-side
// difference for reconciliation tests: its status (when not empty) and its
// amount (when positive) become these, in what the fake answers and in its
// books. A charge that does not exist is created, as one paymentd never
// asked for, with metadata.paymentd_id set to paymentdID when given.
func (s *Server) Plant(id, status string, amount int64, currency, paymentdID string) {
	s.mu.Lock()
	ch := s.byID[id]
	if ch == nil {
		ch = &charge{id: id, currency: currency, status: "succeeded", created: time.Now(), metadata: map[string]string{}}
		if paymentdID != "" {
			ch.metadata["paymentd_id"] = paymentdID
		}
		s.charges = append(s.charges, ch)
		s.byID[id] = ch
	}
	if status != "" {
		ch.status = status
	}
	if amount > 0 {
		ch.amount = amount
	}
	st, amt, cur := ch.status, ch.amount, ch.currency
	s.mu.Unlock()
	s.Book(id, "payment", cur, func(m *fakekit.Money) {
		m.Status = st
		if st == "succeeded" {
			m.Captured = amt
		} else {
			m.Captured = 0
		}
	})
	s.Alias(id, paymentdID)
}

func renderError(w http.ResponseWriter, status int) {
	code := "api_error"
	switch {
	case status == http.StatusUnauthorized:
		code = "unauthorized"
	case status == http.StatusTooManyRequests:
		code = "rate_limited"
	case status < 500:
		code = "invalid_request"
	}
	writeError(w, status, code, fakekit.StatusText(status))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": msg}})
	fakekit.WriteJSON(w, status, body)
}

func writeOK(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v)
	fakekit.WriteJSON(w, http.StatusOK, body)
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+s.token {
			writeError(w, http.StatusUnauthorized, "unauthorized", "Unauthorized")
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

func (s *Server) chargeJSON(ch *charge) map[string]any {
	return map[string]any{"id": ch.id, "amount": s.Amount(ch.amount), "currency": s.Currency(ch.currency),
		"status": ch.status, "created_at": ch.created.UTC().Format(time.RFC3339)}
}

func (s *Server) createCharge(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Amount      *int64            `json:"amount"`
		Currency    string            `json:"currency"`
		Description string            `json:"description"`
		Metadata    map[string]string `json:"metadata"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "Invalid JSON body: "+err.Error())
		return
	}
	if b.Amount == nil || *b.Amount <= 0 {
		writeError(w, http.StatusBadRequest, "invalid_amount", "amount must be a positive integer number of cents.")
		return
	}
	if len(b.Currency) != 3 || strings.ToUpper(b.Currency) != b.Currency {
		writeError(w, http.StatusBadRequest, "invalid_currency", "currency must be an ISO 4217 code such as USD.")
		return
	}
	if s.TakeDecline() {
		writeError(w, http.StatusBadRequest, "card_declined", "The card was declined.")
		return
	}
	ch := &charge{id: newID("ch_"), amount: *b.Amount, currency: b.Currency, status: "succeeded",
		description: b.Description, created: time.Now(), metadata: b.Metadata}
	s.mu.Lock()
	s.charges = append(s.charges, ch)
	s.byID[ch.id] = ch
	s.mu.Unlock()
	s.Book(ch.id, "payment", ch.currency, func(m *fakekit.Money) { m.Captured, m.Status = ch.amount, ch.status })
	s.Alias(ch.id, b.Metadata["paymentd_id"])
	writeOK(w, s.chargeJSON(ch))
}

func (s *Server) getCharge(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ch := s.byID[r.PathValue("id")]
	s.mu.Unlock()
	if ch == nil {
		writeError(w, http.StatusNotFound, "resource_missing", "No such charge: "+r.PathValue("id"))
		return
	}
	out := s.chargeJSON(ch)
	delete(out, "created_at")
	writeOK(w, out)
}

func (s *Server) listCharges(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, offset := 20, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			writeError(w, http.StatusBadRequest, "invalid_request", "limit must be a positive integer.")
			return
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "invalid_request", "offset must be a non-negative integer.")
			return
		}
		offset = n
	}
	s.mu.Lock()
	var match []*charge
	for i := len(s.charges) - 1; i >= 0; i-- {
		if st := q.Get("status"); st == "" || s.charges[i].status == st {
			match = append(match, s.charges[i])
		}
	}
	s.mu.Unlock()
	data := []map[string]any{}
	for i := offset; i < len(match) && i < offset+limit; i++ {
		data = append(data, map[string]any{"id": match[i].id, "amount": s.Amount(match[i].amount), "status": match[i].status,
			"metadata": match[i].metadata})
	}
	writeOK(w, map[string]any{"data": data, "total": len(match), "limit": limit, "offset": offset})
}

func (s *Server) refund(w http.ResponseWriter, r *http.Request) {
	var b struct {
		ChargeID string            `json:"charge_id"`
		Amount   *int64            `json:"amount"`
		Reason   string            `json:"reason"`
		Metadata map[string]string `json:"metadata"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "Invalid JSON body: "+err.Error())
		return
	}
	s.mu.Lock()
	ch := s.byID[b.ChargeID]
	if ch == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "resource_missing", "No such charge: "+b.ChargeID)
		return
	}
	amount := ch.amount - ch.refunded
	if b.Amount != nil {
		amount = *b.Amount
	}
	if amount <= 0 || amount > ch.amount-ch.refunded {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "amount_too_large", fmt.Sprintf("Refund amount %d exceeds the %d refundable.", amount, ch.amount-ch.refunded))
		return
	}
	ch.refunded += amount
	s.mu.Unlock()
	s.Book(ch.id, "payment", ch.currency, func(m *fakekit.Money) { m.Refunded += amount })
	writeOK(w, map[string]any{"id": newID("rf_"), "charge_id": ch.id, "amount": s.Amount(amount), "status": "succeeded"})
}
