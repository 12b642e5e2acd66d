// Package aslanfake is an in-process Aslan server for tests. It follows
// Aslan's API reference (authorize, confirm, refund, one-shot purchase,
// status; Bearer key auth; {"error":{type,code,message,param}} errors with
// the documented statuses) and the assumptions the aslan adapter documents,
// and embeds a fakekit.Kit so tests can make it misbehave.
//
// The one-shot purchase answers status "authorized", as the document's only
// example does, and keeps the money held, not captured: "authorized" is the
// word of an authorization, which only a confirm charges. Its transaction
// id can then be confirmed like an authorization's id (the adapter's
// assumption). SetPurchaseStatus("succeeded") makes purchases charge at once
// and say so, for tests of a purchase Aslan completes.
package aslanfake

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/paymentd/paymentd/providers/fakekit"
)

// Server is a fake Aslan.
type Server struct {
	*fakekit.Kit
	srv *httptest.Server
	key string

	mu       sync.Mutex
	auths    map[string]*authz
	payments map[string]*payment
	// loseConfirms is how many of the next confirmations are applied (the
	// payment is charged) and then never answered.
	loseConfirms int
	// purchaseStatus is the status purchases answer: "authorized" (the
	// document's example; the money is held) or "succeeded" (charged).
	purchaseStatus string
}

// SetPurchaseStatus sets the status the one-shot purchase answers with and
// books: "authorized" (the default and the document's example: the money is
// held until confirmed) or "succeeded" (charged at once).
func (s *Server) SetPurchaseStatus(status string) {
	s.mu.Lock()
	s.purchaseStatus = status
	s.mu.Unlock()
}

// Held returns the authorized money not confirmed (charged) yet, keyed by
// authorization or purchase id.
func (s *Server) Held() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int64{}
	for id, a := range s.auths {
		if a.paymentID == "" {
			out[id] = a.amount
		}
	}
	return out
}

// LoseConfirmAnswers makes the next n confirmations charge the payment and
// then hang until the client gives up, as a provider whose answer is lost
// after it moved the money.
func (s *Server) LoseConfirmAnswers(n int) { s.mu.Lock(); s.loseConfirms += n; s.mu.Unlock() }

// Captured returns the payments Aslan made (confirmed authorizations and
// purchases that charged) and their amounts, keyed by payment id.
func (s *Server) Captured() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int64{}
	for id, p := range s.payments {
		out[id] = p.amount
	}
	return out
}

type authz struct {
	id          string
	amount      int64
	description string
	paymentID   string
	confirmKey  string // the Idempotency-Key of the confirm that made paymentID
}

type payment struct {
	id, authID, description string
	amount, refunded        int64
	created                 int64
}

// New starts a fake Aslan that accepts apiKey. Close it when done.
func New(apiKey string) *Server {
	s := &Server{key: apiKey, auths: map[string]*authz{}, payments: map[string]*payment{}}
	s.Kit = fakekit.New(renderError)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/authorize", s.auth(s.authorize))
	mux.HandleFunc("POST /api/v1/confirm", s.auth(s.confirm))
	mux.HandleFunc("POST /api/v1/refund", s.auth(s.refund))
	mux.HandleFunc("POST /v1/purchase", s.auth(s.purchase))
	mux.HandleFunc("GET /api/status", s.status)
	s.srv = httptest.NewServer(s.Wrap(mux))
	return s
}

// URL is the fake's base URL (for both /api/… and /v1/purchase).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Refunded returns how much of a payment was refunded.
func (s *Server) Refunded(paymentID string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.payments[paymentID]; p != nil {
		return p.refunded
	}
	return -1
}

func renderError(w http.ResponseWriter, status int) {
	typ, code := "api_error", "internal_error"
	switch {
	case status == http.StatusTooManyRequests:
		typ, code = "rate_limit_error", "rate_limited"
	case status == http.StatusUnauthorized:
		typ, code = "authentication_error", "invalid_api_key"
	case status == http.StatusForbidden:
		typ, code = "permission_error", "insufficient_permissions"
	case status == http.StatusNotFound:
		typ, code = "invalid_request_error", "resource_missing"
	case status < 500:
		typ, code = "invalid_request_error", "parameter_invalid"
	}
	writeError(w, status, typ, code, fakekit.StatusText(status), "")
}

func writeError(w http.ResponseWriter, status int, typ, code, msg, param string) {
	body, _ := json.Marshal(map[string]any{"error": map[string]string{"type": typ, "code": code, "message": msg, "param": param}})
	fakekit.WriteJSON(w, status, body)
}

func writeOK(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v)
	fakekit.WriteJSON(w, http.StatusOK, body)
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+s.key {
			writeError(w, http.StatusUnauthorized, "authentication_error", "invalid_api_key", "Invalid API key provided.", "")
			return
		}
		h(w, r)
	}
}

func newID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s%x", prefix, b)
}

type amountBody struct {
	Amount          *int64 `json:"amount"`
	Description     string `json:"description"`
	AgentID         string `json:"agent_id"`
	AuthorizationID string `json:"authorizationId"`
	PaymentID       string `json:"paymentId"`
	Reason          string `json:"reason"`
}

func decode(w http.ResponseWriter, r *http.Request) (amountBody, bool) {
	var b amountBody
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "The body is not valid JSON: "+err.Error(), "")
		return b, false
	}
	return b, true
}

func checkAmount(w http.ResponseWriter, amount *int64) bool {
	switch {
	case amount == nil:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "parameter_missing", "Missing required param: amount.", "amount")
	case *amount < 50:
		writeError(w, http.StatusBadRequest, "invalid_request_error", "amount_too_small", "Amount must be at least $0.50 USD", "amount")
	default:
		return true
	}
	return false
}

func (s *Server) decline(w http.ResponseWriter) bool {
	if !s.TakeDecline() {
		return false
	}
	writeError(w, http.StatusPaymentRequired, "card_error", "card_declined", "Your card was declined.", "")
	return true
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	b, ok := decode(w, r)
	if !ok || !checkAmount(w, b.Amount) || s.decline(w) {
		return
	}
	a := &authz{id: newID("auth_"), amount: *b.Amount, description: b.Description}
	s.mu.Lock()
	s.auths[a.id] = a
	s.mu.Unlock()
	s.Book(a.id, "payment", "USD", func(m *fakekit.Money) { m.Authorized, m.Status = a.amount, "authorized" })
	s.Alias(a.id, r.Header.Get("Idempotency-Key"))
	writeOK(w, map[string]any{"id": a.id, "object": "authorization", "amount": s.Amount(a.amount),
		"currency": s.Currency("usd"), "description": a.description, "status": "authorized", "created": time.Now().Unix()})
}

func (s *Server) paymentJSON(p *payment) map[string]any {
	return map[string]any{"id": p.id, "object": "payment", "amount": s.Amount(p.amount), "currency": s.Currency("usd"),
		"description": p.description, "status": "succeeded", "authorizationId": p.authID, "created": p.created,
		"receiptUrl": "https://pay.stripe.com/receipts/" + p.id}
}

func (s *Server) confirm(w http.ResponseWriter, r *http.Request) {
	b, ok := decode(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	a := s.auths[b.AuthorizationID]
	var p *payment
	fresh := false // a new payment, as opposed to the answer of one already made
	switch {
	case a == nil:
	case a.paymentID != "" && a.confirmKey != "" && r.Header.Get("Idempotency-Key") == a.confirmKey:
		// The same confirmation again (a client retrying after a lost
		// answer): answer the payment it made, charge nothing more.
		p = s.payments[a.paymentID]
	case a.paymentID != "":
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "invalid_request_error", "authorization_already_confirmed",
			"This authorization has already been confirmed.", "authorizationId")
		return
	default:
		p = &payment{id: newID("pay_"), authID: a.id, description: a.description, amount: a.amount, created: time.Now().Unix()}
		a.paymentID, a.confirmKey = p.id, r.Header.Get("Idempotency-Key")
		s.payments[p.id] = p
		fresh = true
	}
	lose := a != nil && s.loseConfirms > 0
	if lose {
		s.loseConfirms--
	}
	s.mu.Unlock()
	if fresh {
		// Confirm captures the whole authorization (the document has no
		// amount on confirm).
		s.Book(a.id, "payment", "USD", func(m *fakekit.Money) {
			m.Captured, m.Authorized, m.Status = m.Authorized, 0, "succeeded"
		})
		s.Alias(a.id, p.id)
	}
	if a == nil {
		writeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "No such authorization: "+b.AuthorizationID, "authorizationId")
		return
	}
	if lose {
		<-r.Context().Done()
		return
	}
	writeOK(w, s.paymentJSON(p))
}

func (s *Server) purchase(w http.ResponseWriter, r *http.Request) {
	b, ok := decode(w, r)
	if !ok || !checkAmount(w, b.Amount) {
		return
	}
	if s.TakeDecline() {
		writeError(w, http.StatusPaymentRequired, "card_error", "card_declined", "Your card was declined.", "")
		return
	}
	id := newID("txn_")
	s.mu.Lock()
	status := s.purchaseStatus
	if status == "" {
		status = "authorized"
	}
	if status == "succeeded" {
		s.payments[id] = &payment{id: id, description: b.Description, amount: *b.Amount, created: time.Now().Unix()}
	} else {
		// Held, as an authorization: only a confirm of it charges.
		s.auths[id] = &authz{id: id, amount: *b.Amount, description: b.Description}
	}
	s.mu.Unlock()
	amount := *b.Amount
	s.Book(id, "payment", "USD", func(m *fakekit.Money) {
		if status == "succeeded" {
			m.Captured, m.Status = amount, "succeeded"
		} else {
			m.Authorized, m.Status = amount, "authorized"
		}
	})
	s.Alias(id, r.Header.Get("Idempotency-Key"))
	writeOK(w, map[string]any{"success": true, "transaction_id": id, "status": status, "amount": s.Amount(amount),
		"description": b.Description, "latency_ms": 3, "timestamp": time.Now().UTC().Format(time.RFC3339)})
}

func (s *Server) refund(w http.ResponseWriter, r *http.Request) {
	b, ok := decode(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	p := s.payments[b.PaymentID]
	if p == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "invalid_request_error", "resource_missing", "No such payment: "+b.PaymentID, "paymentId")
		return
	}
	amount := p.amount - p.refunded
	if b.Amount != nil {
		amount = *b.Amount
	}
	if amount <= 0 || amount > p.amount-p.refunded {
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "invalid_request_error", "amount_too_large",
			fmt.Sprintf("Refund amount %d is more than the %d left on the payment.", amount, p.amount-p.refunded), "amount")
		return
	}
	p.refunded += amount
	book := p.id
	if p.authID != "" {
		book = p.authID
	}
	s.mu.Unlock()
	s.Book(book, "payment", "USD", func(m *fakekit.Money) { m.Refunded += amount })
	writeOK(w, map[string]any{"id": newID("re_"), "object": "refund", "amount": s.Amount(amount), "currency": s.Currency("usd"),
		"paymentId": p.id, "reason": b.Reason, "status": "succeeded", "created": time.Now().Unix()})
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) {
	writeOK(w, map[string]any{"service": "Aslan Payment Infrastructure", "status": "operational",
		"timestamp": time.Now().UTC().Format(time.RFC3339Nano), "version": "1.0.0", "environment": "test", "uptime": 1.5,
		"components": map[string]any{"database": map[string]string{"status": "operational", "responseTime": "1ms"},
			"stripe": map[string]string{"status": "operational"}, "authentication": map[string]string{"status": "operational"},
			"api": map[string]string{"status": "operational"}}})
}
