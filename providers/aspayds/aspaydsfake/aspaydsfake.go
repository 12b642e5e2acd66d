// Package aspaydsfake is an in-process aspayds server for tests, following
// its document: invoices (create, get by id or reference, batch status),
// payouts (methods, request, get by id or reference, batch status), the
// x-api-key/x-api-secret headers, its field limits, and webhooks with
// X-Webhook-Event/X-Webhook-Timestamp. Error bodies follow the shape the
// aspayds adapter assumes ({"status":"error","message","errors"}). It embeds
// a fakekit.Kit so tests can make it misbehave. Amounts are kept in minor
// units of BDT and written as major-unit numbers, as aspayds does.
package aspaydsfake

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
	"unicode/utf8"

	"github.com/paymentd/paymentd/providers"
	"github.com/paymentd/paymentd/providers/fakekit"
)

const exp = 2 // BDT

// Method is a payout method the fake store has configured; amounts are in
// minor units, the fee is FeeBasisPoints of the amount.
type Method struct {
	ID                  int
	Name, Type, Account string
	Min, Max            int64
	FeeBasisPoints      int64
}

// DefaultMethods are the fake store's payout methods: the document's bKash
// example (min 100, max 50000 BDT, no fee) and a Nagad wallet with a 1% fee.
var DefaultMethods = []Method{
	{ID: 1, Name: "bKash", Type: "mobile_banking", Account: "Personal", Min: 100_00, Max: 50000_00},
	{ID: 2, Name: "Nagad", Type: "mobile_banking", Account: "Personal", Min: 50_00, Max: 25000_00, FeeBasisPoints: 100},
}

// Server is a fake aspayds.
type Server struct {
	*fakekit.Kit
	// Webhooks delivers the fake's webhooks; tests inject lost, duplicated
	// and out-of-order deliveries through it.
	fakekit.Webhooks
	srv         *httptest.Server
	key, secret string

	mu       sync.Mutex
	methods  []Method
	invoices map[string]*invoice // by id and by reference
	payouts  map[string]*payout  // by id and by reference
	// Webhooks, when set, are POSTed to each object's callback_url when it
	// changes (the document's webhooks).
	deliver bool
}

type invoice struct {
	id, ref, customer, callback, status string
	amount, paid                        int64
	paidAt                              time.Time
}

type payout struct {
	id, ref, status, name, account, callback, description string
	method                                                int
	amount, fee                                           int64
	created, processed                                    time.Time
}

// New starts a fake aspayds accepting the key pair. Close it when done.
func New(apiKey, apiSecret string) *Server {
	s := &Server{key: apiKey, secret: apiSecret, methods: DefaultMethods,
		invoices: map[string]*invoice{}, payouts: map[string]*payout{}}
	s.Kit = fakekit.New(renderError)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /payment/create", s.auth(s.createInvoice))
	mux.HandleFunc("POST /payment/batch/status", s.auth(s.batchInvoices))
	mux.HandleFunc("GET /payment/{id}", s.auth(s.getInvoice))
	mux.HandleFunc("GET /payout/methods", s.auth(s.listMethods))
	mux.HandleFunc("POST /payout/request", s.auth(s.createPayout))
	mux.HandleFunc("POST /payout/batch/status", s.auth(s.batchPayouts))
	mux.HandleFunc("GET /payout/{id}", s.auth(s.getPayout))
	s.srv = httptest.NewServer(s.Wrap(mux))
	return s
}

// URL is the fake's base URL (the documented .../api).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// DeliverWebhooks makes the fake POST its webhooks to callback URLs.
func (s *Server) DeliverWebhooks(on bool) { s.mu.Lock(); s.deliver = on; s.mu.Unlock() }

func renderError(w http.ResponseWriter, status int) {
	writeError(w, status, fakekit.StatusText(status), nil)
}

func writeError(w http.ResponseWriter, status int, msg string, errs map[string][]string) {
	body := map[string]any{"status": "error", "message": msg}
	if errs != nil {
		body["errors"] = errs
	}
	raw, _ := json.Marshal(body)
	fakekit.WriteJSON(w, status, raw)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	raw, _ := json.Marshal(v)
	fakekit.WriteJSON(w, status, raw)
}

func fieldError(w http.ResponseWriter, field, msg string) {
	writeError(w, http.StatusUnprocessableEntity, "The given data was invalid.", map[string][]string{field: {msg}})
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("x-api-key") != s.key || r.Header.Get("x-api-secret") != s.secret {
			writeError(w, http.StatusUnauthorized, "Invalid API credentials.", nil)
			return
		}
		h(w, r)
	}
}

func num(v int64) json.Number { return json.Number(providers.FormatDecimalTrim(v, exp, 0)) }

func (s *Server) amount(v int64) json.Number { return num(s.Amount(v)) }

func newID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s%d%x", prefix, time.Now().Unix(), b)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "Malformed JSON body: "+err.Error(), nil)
		return false
	}
	return true
}

func parseAmount(w http.ResponseWriter, n json.Number) (int64, bool) {
	v, err := providers.ParseDecimal(string(n), exp)
	if n == "" || err != nil || v <= 0 {
		fieldError(w, "amount", "The amount must be a positive number.")
		return 0, false
	}
	return v, true
}

func (s *Server) createInvoice(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Amount               json.Number `json:"amount"`
		CustomerName         string      `json:"customer_name"`
		TransactionReference string      `json:"transaction_reference"`
		CallbackURL          string      `json:"callback_url"`
	}
	if !decode(w, r, &b) {
		return
	}
	amount, ok := parseAmount(w, b.Amount)
	switch {
	case !ok:
		return
	case b.CustomerName == "" || utf8.RuneCountInString(b.CustomerName) > 255:
		fieldError(w, "customer_name", "The customer name is required and may not be greater than 255 characters.")
		return
	case b.TransactionReference == "" || utf8.RuneCountInString(b.TransactionReference) > 20:
		fieldError(w, "transaction_reference", "The transaction reference is required and may not be greater than 20 characters.")
		return
	case b.CallbackURL == "":
		fieldError(w, "callback_url", "The callback url field is required.")
		return
	case s.TakeDecline():
		fieldError(w, "amount", "This store cannot accept payments right now.")
		return
	}
	s.mu.Lock()
	if s.invoices[b.TransactionReference] != nil {
		s.mu.Unlock()
		fieldError(w, "transaction_reference", "The transaction reference has already been taken.")
		return
	}
	inv := &invoice{id: newID("ATINV"), ref: b.TransactionReference, customer: b.CustomerName, callback: b.CallbackURL,
		status: "pending", amount: amount}
	s.invoices[inv.id], s.invoices[inv.ref] = inv, inv
	s.mu.Unlock()
	s.Book(inv.id, "invoice", "BDT", func(m *fakekit.Money) { m.Status = inv.status })
	s.Alias(inv.id, inv.ref)
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "invoice_id": inv.id,
		"payment_url": s.srv.URL + "/methods/" + inv.id})
}

func (s *Server) invoiceJSON(inv *invoice) map[string]any {
	out := map[string]any{"invoice_id": inv.id, "status": inv.status, "amount_paid": num(inv.paid)}
	if !inv.paidAt.IsZero() {
		out["paid_at"] = inv.paidAt.UTC().Format(time.RFC3339)
	}
	return out
}

func (s *Server) getInvoice(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	inv := s.invoices[r.PathValue("id")]
	var out map[string]any
	if inv != nil {
		out = s.invoiceJSON(inv)
	}
	s.mu.Unlock()
	if inv == nil {
		writeError(w, http.StatusNotFound, "Payment not found.", nil)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) batchInvoices(w http.ResponseWriter, r *http.Request) {
	var b struct {
		IDs []string `json:"ids"`
	}
	if !decode(w, r, &b) {
		return
	}
	if len(b.IDs) == 0 {
		fieldError(w, "ids", "The ids field is required.")
		return
	}
	found, missing := []map[string]any{}, []string{}
	s.mu.Lock()
	for _, id := range b.IDs {
		inv := s.invoices[id]
		if inv == nil {
			missing = append(missing, id)
			continue
		}
		found = append(found, map[string]any{"invoice_id": inv.id, "transaction_reference": inv.ref, "status": inv.status,
			"amount": s.amount(inv.amount), "amount_paid": num(inv.paid)})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "total_requested": len(b.IDs), "total_found": len(found),
		"invoices": found, "not_found_ids": missing})
}

// PayInvoice records a customer's payment of amount minor units (part or
// all of what is due) towards the invoice with the id or reference; the
// invoice is paid once the amount is covered.
func (s *Server) PayInvoice(reference string, amount int64) error {
	s.mu.Lock()
	inv := s.invoices[reference]
	if inv == nil {
		s.mu.Unlock()
		return fmt.Errorf("aspaydsfake: no invoice %q", reference)
	}
	inv.paid += amount
	if inv.paid >= inv.amount {
		inv.status, inv.paidAt = "paid", time.Now()
	}
	id, status := inv.id, inv.status
	s.Book(id, "invoice", "BDT", func(m *fakekit.Money) { m.Received += amount; m.Status = status })
	paid, deliver, callback := inv.status == "paid", s.deliver, inv.callback
	var body []byte
	if paid {
		body, _ = json.Marshal(map[string]any{"event": "payment.completed", "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
			"data": map[string]any{"invoice_id": inv.id, "transaction_reference": inv.ref, "status": "completed",
				"amount": json.Number(providers.FormatDecimal(inv.amount, exp)), "amount_paid": json.Number(providers.FormatDecimal(inv.paid, exp)),
				"currency": "BDT", "customer_name": inv.customer, "paid_at": inv.paidAt.UTC().Format(time.RFC3339Nano)}})
	}
	s.mu.Unlock()
	if paid && deliver {
		return s.post(callback, "payment.completed", body)
	}
	return nil
}

// Webhook returns the headers and body of the webhook aspayds sends for an
// object's event (payment.completed or payout.*), timestamped at.
func (s *Server) Webhook(event, reference string, at time.Time) (http.Header, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var data map[string]any
	if event == "payment.completed" {
		inv := s.invoices[reference]
		if inv == nil {
			return nil, nil, fmt.Errorf("aspaydsfake: no invoice %q", reference)
		}
		data = map[string]any{"invoice_id": inv.id, "transaction_reference": inv.ref, "status": "completed",
			"amount": json.Number(providers.FormatDecimal(inv.amount, exp)), "amount_paid": json.Number(providers.FormatDecimal(inv.paid, exp)),
			"currency": "BDT", "customer_name": inv.customer, "paid_at": at.UTC().Format(time.RFC3339Nano)}
	} else {
		po := s.payouts[reference]
		if po == nil {
			return nil, nil, fmt.Errorf("aspaydsfake: no payout %q", reference)
		}
		data = s.payoutWebhookData(po)
	}
	body, _ := json.Marshal(map[string]any{"event": event, "timestamp": at.UTC().Format(time.RFC3339Nano), "data": data})
	h := http.Header{"Content-Type": {"application/json"}, "X-Webhook-Event": {event},
		"X-Webhook-Timestamp": {strconv.FormatInt(at.Unix(), 10)}}
	return h, body, nil
}

func (s *Server) payoutWebhookData(po *payout) map[string]any {
	return map[string]any{"payout_id": po.id, "transaction_reference": po.ref, "status": po.status,
		"amount": json.Number(providers.FormatDecimal(po.amount, exp)), "fee": json.Number(providers.FormatDecimal(po.fee, exp)),
		"recipient_name": po.name, "recipient_account": po.account, "processed_at": po.processed.UTC().Format(time.RFC3339Nano)}
}

// post sends a webhook through the fake's Webhooks, so injected webhook
// faults apply.
func (s *Server) post(url, event string, body []byte) error {
	h := http.Header{"Content-Type": {"application/json"}, "X-Webhook-Event": {event},
		"X-Webhook-Timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}}
	return s.Send(url, h, body)
}

func (s *Server) listMethods(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	data := []map[string]any{}
	for _, m := range s.methods {
		data = append(data, map[string]any{"id": m.ID, "name": m.Name, "type": m.Type, "account_type": m.Account, "currency": "BDT",
			"min_amount": num(m.Min), "max_amount": num(m.Max), "logo": s.srv.URL + "/storage/payout/" + strings.ToLower(m.Name) + ".png"})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "data": data})
}

func (s *Server) createPayout(w http.ResponseWriter, r *http.Request) {
	var b struct {
		PayoutMethodID       json.Number `json:"payout_method_id"`
		Amount               json.Number `json:"amount"`
		RecipientName        string      `json:"recipient_name"`
		RecipientAccount     string      `json:"recipient_account"`
		TransactionReference string      `json:"transaction_reference"`
		Description          string      `json:"description"`
		CallbackURL          string      `json:"callback_url"`
	}
	if !decode(w, r, &b) {
		return
	}
	amount, ok := parseAmount(w, b.Amount)
	if !ok {
		return
	}
	id, _ := strconv.Atoi(string(b.PayoutMethodID))
	s.mu.Lock()
	var m *Method
	for i := range s.methods {
		if s.methods[i].ID == id {
			m = &s.methods[i]
		}
	}
	dup := s.payouts[b.TransactionReference] != nil
	s.mu.Unlock()
	switch {
	case m == nil:
		fieldError(w, "payout_method_id", "The selected payout method id is invalid.")
		return
	case amount < m.Min || amount > m.Max:
		fieldError(w, "amount", fmt.Sprintf("The amount must be between %s and %s.", num(m.Min), num(m.Max)))
		return
	case b.RecipientName == "":
		fieldError(w, "recipient_name", "The recipient name field is required.")
		return
	case b.RecipientAccount == "":
		fieldError(w, "recipient_account", "The recipient account field is required.")
		return
	case b.TransactionReference == "" || utf8.RuneCountInString(b.TransactionReference) > 50:
		fieldError(w, "transaction_reference", "The transaction reference is required and may not be greater than 50 characters.")
		return
	case dup:
		fieldError(w, "transaction_reference", "The transaction reference has already been taken.")
		return
	}
	po := &payout{id: newID("ATPAY"), ref: b.TransactionReference, status: "pending", name: b.RecipientName,
		account: b.RecipientAccount, callback: b.CallbackURL, description: b.Description, method: m.ID,
		amount: amount, fee: amount * m.FeeBasisPoints / 10000, created: time.Now()}
	if s.TakeDecline() {
		po.status = "rejected" // accepted, then rejected by the store's admin
	}
	s.mu.Lock()
	s.payouts[po.id], s.payouts[po.ref] = po, po
	s.mu.Unlock()
	s.Book(po.id, "payout", "BDT", func(m *fakekit.Money) {
		m.Status = po.status
		if po.status == "pending" {
			m.Pending = po.amount
		}
	})
	s.Alias(po.id, po.ref)
	// The document's answer repeats "status": the envelope's, then the payout's.
	amt := s.amount(po.amount)
	raw := fmt.Sprintf(`{"status":"success","message":"Payout request created successfully","payout_id":%q,"transaction_reference":%q,"amount":%s,"fee":%s,"total_amount":%s,"status":"pending"}`,
		po.id, po.ref, amt, num(po.fee), s.amount(po.amount+po.fee))
	fakekit.WriteJSON(w, http.StatusCreated, []byte(raw))
}

func (s *Server) payoutJSON(po *payout) map[string]any {
	out := map[string]any{"payout_id": po.id, "transaction_reference": po.ref, "status": po.status,
		"amount": s.amount(po.amount), "fee": num(po.fee), "total_amount": s.amount(po.amount + po.fee),
		"recipient_name": po.name, "recipient_account": po.account, "created_at": po.created.UTC().Format(time.RFC3339)}
	if !po.processed.IsZero() {
		out["processed_at"] = po.processed.UTC().Format(time.RFC3339)
	}
	return out
}

func (s *Server) getPayout(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	po := s.payouts[r.PathValue("id")]
	var out map[string]any
	if po != nil {
		out = s.payoutJSON(po)
	}
	s.mu.Unlock()
	if po == nil {
		writeError(w, http.StatusNotFound, "Payout not found.", nil)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) batchPayouts(w http.ResponseWriter, r *http.Request) {
	var b struct {
		IDs []string `json:"ids"`
	}
	if !decode(w, r, &b) {
		return
	}
	found, missing := []map[string]any{}, []string{}
	s.mu.Lock()
	for _, id := range b.IDs {
		po := s.payouts[id]
		if po == nil {
			missing = append(missing, id)
			continue
		}
		found = append(found, map[string]any{"payout_id": po.id, "transaction_reference": po.ref, "status": po.status,
			"amount": s.amount(po.amount)})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"status": "success", "total_requested": len(b.IDs), "total_found": len(found),
		"payouts": found, "not_found_ids": missing})
}

// SettlePayout moves a payout (by id or reference) to status, as the store's
// admin would, and sends its webhook when webhooks are delivered.
func (s *Server) SettlePayout(reference, status string) error {
	s.mu.Lock()
	po := s.payouts[reference]
	if po == nil {
		s.mu.Unlock()
		return fmt.Errorf("aspaydsfake: no payout %q", reference)
	}
	po.status = status
	if status == "completed" || status == "rejected" || status == "cancelled" {
		po.processed = time.Now()
	}
	amount, id := po.amount, po.id
	s.Book(id, "payout", "BDT", func(m *fakekit.Money) {
		m.Status, m.Pending, m.PaidOut = status, 0, 0
		switch status {
		case "completed":
			m.PaidOut = amount
		case "rejected", "cancelled":
		default:
			m.Pending = amount
		}
	})
	deliver, callback := s.deliver, po.callback
	body, _ := json.Marshal(map[string]any{"event": "payout." + status, "timestamp": time.Now().UTC().Format(time.RFC3339Nano),
		"data": s.payoutWebhookData(po)})
	s.mu.Unlock()
	if deliver && status != "pending" {
		return s.post(callback, "payout."+status, body)
	}
	return nil
}
