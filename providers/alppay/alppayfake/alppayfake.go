// Package alppayfake is an in-process alppay server for tests: POST
// /v2/payment with API-KEY and X-HMAC (hex HMAC-SHA256 of the raw body,
// verified), answering the documented payment object, and GET
// /v2/payment/{id} as the alppay adapter assumes. PayInvoice records
// incoming confirmed transfers (partial receipts); ReceiveUnconfirmed
// records transfers seen but not confirmed, which leave the status OPEN as
// in the document's example, until ConfirmReceived. Its books count only
// confirmed money as received. It embeds a fakekit.Kit so tests can make
// it misbehave.
package alppayfake

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/alppay"
	"github.com/paymentd/paymentd/providers/fakekit"
)

// Assets the fake accepts: short → networks.
var Assets = map[string][]string{"USDT": {"tron", "ethereum", "bsc"}, "USDC": {"ethereum", "solana"}, "BTC": {"bitcoin"}}

// ConfirmsNeeded and Timeout are what the fake answers (the document's example).
const (
	ConfirmsNeeded = 30
	Timeout        = 9000
)

// Server is a fake alppay.
type Server struct {
	*fakekit.Kit
	srv         *httptest.Server
	key, secret string

	mu        sync.Mutex
	payments  map[string]*payment
	addresses map[string]string // clientId → address
}

type payment struct {
	id, short, network, invoice, clientID, checkoutURL, address, status string
	amount                                                              int64
	customer                                                            map[string]any
	txns                                                                []txn
	created                                                             time.Time
}

type txn struct {
	id        string
	amount    int64
	at        time.Time
	confirmed bool // counted by alppay (confirmsNeeded reached)
}

// New starts a fake alppay with the API key and HMAC secret. Close it when done.
func New(apiKey, secret string) *Server {
	s := &Server{key: apiKey, secret: secret, payments: map[string]*payment{}, addresses: map[string]string{}}
	s.Kit = fakekit.New(renderError)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v2/payment", s.auth(s.create))
	mux.HandleFunc("GET /v2/payment/{id}", s.auth(s.get))
	s.srv = httptest.NewServer(s.Wrap(mux))
	return s
}

// URL is the fake's base URL.
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

func renderError(w http.ResponseWriter, status int) {
	writeError(w, status, fakekit.StatusText(status))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	raw, _ := json.Marshal(map[string]any{"message": msg, "statusCode": status})
	fakekit.WriteJSON(w, status, raw)
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body := readBody(r)
		want := alppay.Sign([]byte(s.secret), body)
		if r.Header.Get("API-KEY") != s.key || !hmac.Equal([]byte(r.Header.Get("X-HMAC")), []byte(want)) {
			writeError(w, http.StatusUnauthorized, "Invalid API key or HMAC signature")
			return
		}
		h(w, r)
	}
}

func readBody(r *http.Request) []byte {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(raw))
	return raw
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func newAddress() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return fmt.Sprintf("0x%X", b)
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Amount      string         `json:"amount"`
		Asset       map[string]any `json:"asset"`
		Customer    map[string]any `json:"customer"`
		ClientID    string         `json:"clientId"`
		Invoice     string         `json:"invoice"`
		CheckoutURL string         `json:"checkoutUrl"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		writeError(w, http.StatusBadRequest, "Malformed JSON: "+err.Error())
		return
	}
	short, _ := b.Asset["short"].(string)
	network, _ := b.Asset["network"].(string)
	exp, ok := providers.CurrencyExponent(short)
	if !ok || !contains(Assets[short], network) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Asset %s on %s is not supported", short, network))
		return
	}
	amount, err := providers.ParseDecimal(b.Amount, exp)
	if err != nil || amount <= 0 {
		writeError(w, http.StatusBadRequest, "amount must be a positive decimal string")
		return
	}
	if _, isNum := b.Customer["id"].(float64); !isNum {
		writeError(w, http.StatusBadRequest, "customer.id must be an integer")
		return
	}
	if s.TakeDecline() {
		writeError(w, http.StatusBadRequest, "The merchant account cannot accept "+short+" right now")
		return
	}
	s.mu.Lock()
	addr := s.addresses[b.ClientID]
	if addr == "" {
		addr = newAddress()
		if b.ClientID != "" {
			s.addresses[b.ClientID] = addr
		}
	}
	p := &payment{id: newUUID(), short: short, network: network, invoice: b.Invoice, clientID: b.ClientID, checkoutURL: b.CheckoutURL,
		address: addr, status: "OPEN", amount: amount, customer: b.Customer, created: time.Now().UTC()}
	s.payments[p.id] = p
	out := s.json(p)
	s.mu.Unlock()
	s.Book(p.id, "invoice", short, func(m *fakekit.Money) { m.Status = p.status })
	s.Alias(p.id, p.invoice)
	raw, _ := json.Marshal(out)
	fakekit.WriteJSON(w, http.StatusOK, raw)
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p := s.payments[r.PathValue("id")]
	var out map[string]any
	if p != nil {
		out = s.json(p)
	}
	s.mu.Unlock()
	if p == nil {
		writeError(w, http.StatusNotFound, "Payment not found")
		return
	}
	raw, _ := json.Marshal(out)
	fakekit.WriteJSON(w, http.StatusOK, raw)
}

func (s *Server) json(p *payment) map[string]any {
	exp, _ := providers.CurrencyExponent(p.short)
	dec := func(v int64) string { return providers.FormatDecimalTrim(v, exp, 2) }
	short := s.Currency(p.short)
	assetJSON := map[string]any{"short": short, "name": map[string]string{"USDT": "Tether", "USDC": "USD Coin", "BTC": "Bitcoin"}[p.short],
		"logoUrl": "https://cryptologos.cc/logos/" + strings.ToLower(p.short) + ".png", "network": p.network}
	txns := []map[string]any{}
	var received int64
	for _, t := range p.txns {
		received += t.amount
		txns = append(txns, map[string]any{"paymentId": p.id, "txnId": t.id, "receivedAmount": dec(t.amount), "asset": assetJSON,
			"destTag": nil, "addressFrom": "0x5D8D9C7f68A46634BCEaD2a6FF166A0BdFb08540", "addressTo": p.address,
			"date": t.at.UTC().Format(time.RFC3339)})
	}
	return map[string]any{"id": p.id, "transactions": txns, "amount": dec(s.Amount(p.amount)), "totalReceivedAmount": dec(received),
		"asset": assetJSON, "addressTo": p.address, "confirmsNeeded": ConfirmsNeeded, "timeout": Timeout, "checkoutUrl": p.checkoutURL,
		"status": p.status, "displayStatus": p.status, "customer": p.customer,
		"merchant": map[string]any{"id": "285d8dce-7663-4580-ba7f-8afb2f2d3292", "name": "Your Company"}, "invoice": p.invoice,
		"paymentRedirectUrl": s.srv.URL + "/en/invoice?id=" + p.id, "createdAt": p.created.Format(time.RFC3339),
		"updatedAt": time.Now().UTC().Format(time.RFC3339)}
}

// PayInvoice records an incoming transfer of amount minor units of the
// payment's asset to the payment with the id, already confirmed: alppay
// counts it and its status becomes PARTIALLY_PAID or PAID.
func (s *Server) PayInvoice(reference string, amount int64) error {
	return s.receive(reference, amount, true)
}

// ReceiveUnconfirmed records a transfer alppay has seen but not confirmed
// yet: it is listed and in totalReceivedAmount, but the status stays as it
// was (OPEN, as in the document's example of a received transaction beside
// confirmsNeeded 30) and the books do not count it as received.
// ConfirmReceived confirms it.
func (s *Server) ReceiveUnconfirmed(reference string, amount int64) error {
	return s.receive(reference, amount, false)
}

// ConfirmReceived confirms every transfer of the payment seen so far.
func (s *Server) ConfirmReceived(reference string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.payments[reference]
	if p == nil {
		return fmt.Errorf("alppayfake: no payment %q", reference)
	}
	var newly int64
	for i := range p.txns {
		if !p.txns[i].confirmed {
			p.txns[i].confirmed = true
			newly += p.txns[i].amount
		}
	}
	s.settle(p, newly)
	return nil
}

func (s *Server) receive(reference string, amount int64, confirmed bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.payments[reference]
	if p == nil {
		return fmt.Errorf("alppayfake: no payment %q", reference)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	p.txns = append(p.txns, txn{id: fmt.Sprintf("0x%x", b), amount: amount, at: time.Now(), confirmed: confirmed})
	if confirmed {
		s.settle(p, amount)
	}
	return nil
}

// settle sets p's status from its confirmed transfers and books newly
// confirmed money as received. s.mu is held.
func (s *Server) settle(p *payment, newly int64) {
	var confirmed int64
	for _, t := range p.txns {
		if t.confirmed {
			confirmed += t.amount
		}
	}
	switch {
	case confirmed >= p.amount:
		p.status = "PAID"
	case confirmed > 0:
		p.status = "PARTIALLY_PAID"
	}
	status := p.status
	s.Book(p.id, "invoice", p.short, func(m *fakekit.Money) { m.Received += newly; m.Status = status })
}

// Expire marks a payment as timed out.
func (s *Server) Expire(reference string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.payments[reference]; p != nil {
		p.status = "EXPIRED"
		s.Book(p.id, "invoice", p.short, func(m *fakekit.Money) { m.Status = "EXPIRED" })
	}
}

// ClientID returns the clientId a payment was created with.
func (s *Server) ClientID(reference string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.payments[reference]; p != nil {
		return p.clientID
	}
	return ""
}
