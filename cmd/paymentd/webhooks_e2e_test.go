package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/providers/sandbox"
	"github.com/paymentd/paymentd/webhook"
)

// whFast are serve flags that make deliveries retry within
// milliseconds, and let them reach the tests' loopback receivers.
var whFast = []string{"--allow-private-webhooks", "--webhook-poll-interval", "20ms",
	"--webhook-retry-base", "20ms", "--webhook-retry-max-delay", "100ms", "--webhook-timeout", "5s"}

// whRequest is one POST a test receiver got.
type whRequest struct {
	header http.Header
	body   []byte
	status int // what the receiver answered
}

// whReceiver is a webhook receiver on loopback that answers 503 while down
// and 200 otherwise, and keeps every request.
type whReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	down     bool
	failNext int    // answer 503 to this many more requests even when up
	echo     string // added to every answer's body
	reqs     []whRequest
}

func whNewReceiver(t *testing.T) *whReceiver {
	t.Helper()
	r := &whReceiver{}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := http.StatusOK
		if r.down || r.failNext > 0 {
			status = http.StatusServiceUnavailable
			if r.failNext > 0 {
				r.failNext--
			}
		}
		r.reqs = append(r.reqs, whRequest{header: req.Header.Clone(), body: body, status: status})
		echo := r.echo
		r.mu.Unlock()
		w.WriteHeader(status)
		fmt.Fprintf(w, "answered %d%s", status, echo)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *whReceiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

func (r *whReceiver) requests() []whRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// whWait polls cond every 20ms until it holds or 20s pass.
func whWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func whEvents(s *testServer) pb.EventsServiceClient { return pb.NewEventsServiceClient(s.conn) }

// whCreateEndpoint registers a webhook endpoint over REST and returns its id and secret.
func whCreateEndpoint(t *testing.T, s *testServer, key, url string, types ...string) (id, secret string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"url": url, "event_types": types, "description": "test receiver"})
	code, out, _ := s.restDo(t, "POST", "/v1/webhook-endpoints", key, "", string(body))
	if code != http.StatusOK {
		t.Fatalf("POST /v1/webhook-endpoints %s: %d %v", url, code, out)
	}
	id, _ = out["id"].(string)
	secret, _ = out["secret"].(string)
	if !strings.HasPrefix(id, "we_") || !strings.HasPrefix(secret, "whsec_") || len(secret) != len("whsec_")+32 {
		t.Fatalf("created endpoint %v; want a we_ id and a whsec_ secret of 32 characters", out)
	}
	if out["url"] != url {
		t.Errorf("endpoint url %v; want %s", out["url"], url)
	}
	return id, secret
}

// whEventsOf lists the events of one object, oldest first.
func whEventsOf(t *testing.T, ctx context.Context, s *testServer, objectID string) []*pb.Event {
	t.Helper()
	resp, err := whEvents(s).ListEvents(ctx, &pb.ListEventsRequest{ObjectId: objectID, PageSize: 100})
	if err != nil {
		t.Fatalf("ListEvents(object_id=%s): %v", objectID, err)
	}
	evs := resp.Events
	slices.Reverse(evs)
	return evs
}

func whTypes(evs []*pb.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type
	}
	return out
}

func whGetEvent(t *testing.T, ctx context.Context, s *testServer, id string) *pb.Event {
	t.Helper()
	resp, err := whEvents(s).GetEvent(ctx, &pb.GetEventRequest{Id: id})
	if err != nil {
		t.Fatalf("GetEvent(%s): %v", id, err)
	}
	return resp.Event
}

// whCheckDelivered checks the requests a receiver got for one event: every
// one signed for secret and carrying the event, all answered 503 but the
// last, which was answered 200 (delivered exactly once).
func whCheckDelivered(t *testing.T, reqs []whRequest, secret string, ev *pb.Event, payment *pb.Payment) {
	t.Helper()
	if len(reqs) == 0 {
		t.Fatal("the receiver got no request")
	}
	delivered := 0
	for i, r := range reqs {
		if r.status == http.StatusOK {
			delivered++
			if i != len(reqs)-1 {
				t.Errorf("request %d of %d was answered 200, but more requests followed", i+1, len(reqs))
			}
		}
		if got := r.header.Get("X-Webhook-Id"); got != ev.Id {
			t.Errorf("request %d: X-Webhook-Id %q; want the event id %s", i+1, got, ev.Id)
		}
		if got := r.header.Get("X-Webhook-Event"); got != ev.Type {
			t.Errorf("request %d: X-Webhook-Event %q; want %s", i+1, got, ev.Type)
		}
		if got := r.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("request %d: Content-Type %q; want application/json", i+1, got)
		}
		sig := r.header.Get("X-Webhook-Signature")
		if err := webhook.Verify(secret, sig, r.body, 5*time.Minute); err != nil {
			t.Errorf("request %d: signature %q does not verify: %v", i+1, sig, err)
		}
		if ts := r.header.Get("X-Webhook-Timestamp"); !strings.HasPrefix(sig, "t="+ts+",") {
			t.Errorf("request %d: X-Webhook-Timestamp %q is not the signed t of %q", i+1, ts, sig)
		}
		if err := webhook.Verify("whsec_wrong", sig, r.body, 5*time.Minute); err == nil {
			t.Errorf("request %d: the signature verifies with a wrong secret", i+1)
		}
		var body struct {
			ID        string         `json:"id"`
			Event     string         `json:"event"`
			Timestamp string         `json:"timestamp"`
			Data      map[string]any `json:"data"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatalf("request %d: body is not JSON: %v: %s", i+1, err, r.body)
		}
		if body.ID != ev.Id || body.Event != ev.Type {
			t.Errorf("request %d: body id %q event %q; want %s %s", i+1, body.ID, body.Event, ev.Id, ev.Type)
		}
		if ts, err := time.Parse(time.RFC3339, body.Timestamp); err != nil || !ts.Equal(ev.CreatedAt.AsTime().Truncate(time.Millisecond)) {
			t.Errorf("request %d: timestamp %q (%v); want the event's created_at %s", i+1, body.Timestamp, err, ev.CreatedAt.AsTime())
		}
		if body.Data["id"] != payment.Id || body.Data["status"] != payment.Status ||
			body.Data["amount"] != fmt.Sprint(payment.Amount) || body.Data["currency"] != payment.Currency {
			t.Errorf("request %d: data %v; want payment %s %s amount %d %s", i+1, body.Data, payment.Id, payment.Status, payment.Amount, payment.Currency)
		}
	}
	if delivered != 1 {
		t.Errorf("the receiver answered 200 to %d requests; want exactly 1", delivered)
	}
}

// whCheckAttempts checks GetEvent's record of the one delivery of an event
// against the requests the receiver got.
func whCheckAttempts(t *testing.T, ev *pb.Event, url, endpointID string, reqs []whRequest) {
	t.Helper()
	if ev.DeliveryStatus != "delivered" || len(ev.Deliveries) != 1 {
		t.Fatalf("event %s: delivery_status %q with %d deliveries; want delivered with 1", ev.Id, ev.DeliveryStatus, len(ev.Deliveries))
	}
	d := ev.Deliveries[0]
	if d.Status != "delivered" || d.Url != url || d.EndpointId != endpointID || int(d.AttemptCount) != len(reqs) ||
		len(d.Attempts) != len(reqs) || !strings.HasPrefix(d.Id, "whd_") || d.NextAttemptAt != nil {
		t.Fatalf("delivery %v; want delivered to %s (%s) after %d attempts, none next", d, url, endpointID, len(reqs))
	}
	for i, a := range d.Attempts {
		want := int32(reqs[i].status)
		if a.Number != int32(i+1) || a.HttpStatus != want || a.Url != url || a.LatencyMs < 0 || a.AttemptedAt == nil {
			t.Errorf("attempt %d: %v; want number %d, status %d, url %s", i+1, a, i+1, want, url)
		}
		if (a.Error == "") != (want == http.StatusOK) {
			t.Errorf("attempt %d: error %q with status %d", i+1, a.Error, want)
		}
		if !strings.Contains(a.ResponseExcerpt, fmt.Sprintf("answered %d", want)) {
			t.Errorf("attempt %d: response excerpt %q; want the receiver's body", i+1, a.ResponseExcerpt)
		}
		if i > 0 && a.AttemptedAt.AsTime().Before(d.Attempts[i-1].AttemptedAt.AsTime()) {
			t.Errorf("attempt %d was made before attempt %d", i+1, i)
		}
	}
}

// TestWebhookAnswerStoredRedacted: a receiver whose answer quotes a card
// number and an API key has its answer kept and shown without them, and the
// database never holds them.
func TestWebhookAnswerStoredRedacted(t *testing.T) {
	s := newServer(t, whFast...)
	ctx := withKey(context.Background(), s.key)
	rcv := whNewReceiver(t)
	rcv.echo = " for card 4111111111111111 with key ak_live_Zx81SeCrEtZx81"
	whCreateEndpoint(t, s, s.key, rcv.URL+"/hooks", "payment.succeeded")
	p := mustCreate(t, ctx, s.payments, visa(2000))
	evs := whEventsOf(t, ctx, s, p.Id)
	if len(evs) != 1 {
		t.Fatalf("events of %s: %v; want one", p.Id, whTypes(evs))
	}
	whWait(t, "the delivery to be made", func() bool { return whGetEvent(t, ctx, s, evs[0].Id).DeliveryStatus == "delivered" })
	a := whGetEvent(t, ctx, s, evs[0].Id).Deliveries[0].Attempts[0]
	if !strings.HasPrefix(a.ResponseExcerpt, "answered 200 for card (a card number ending in 1111) with key ak_live_…") {
		t.Errorf("response excerpt %q; want the answer with the card number and the key removed", a.ResponseExcerpt)
	}
	s.stop()
	for _, f := range []string{s.db, s.db + "-wal"} {
		raw, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("4111111111111111")) || bytes.Contains(raw, []byte("SeCrEtZx81")) {
			t.Errorf("%s holds the card number or the key the receiver answered", f)
		}
	}
}

// TestWebhookDeliveredAfterReceiverComesUp: the receiver answers 503 to the
// first three attempts; the fourth is delivered, exactly once, every
// attempt signed, and GetEvent lists them all.
func TestWebhookDeliveredAfterReceiverComesUp(t *testing.T) {
	s := newServer(t, whFast...)
	ctx := withKey(context.Background(), s.key)

	// A payment before any endpoint exists has nowhere to go.
	before := mustCreate(t, ctx, s.payments, visa(1500))
	rcv := whNewReceiver(t)
	rcv.failNext = 3
	endpointID, secret := whCreateEndpoint(t, s, s.key, rcv.URL+"/hooks", "payment.succeeded")

	p := mustCreate(t, ctx, s.payments, visa(2000))
	evs := whEventsOf(t, ctx, s, p.Id)
	if len(evs) != 1 || evs[0].Type != "payment.succeeded" {
		t.Fatalf("events of %s: %v; want one payment.succeeded", p.Id, whTypes(evs))
	}
	ev := evs[0]
	whWait(t, "the delivery to be made", func() bool { return whGetEvent(t, ctx, s, ev.Id).DeliveryStatus == "delivered" })
	reqs := rcv.requests()
	if len(reqs) != 4 {
		t.Fatalf("the receiver got %d requests; want 4 (3 answered 503, then 200)", len(reqs))
	}
	whCheckDelivered(t, reqs, secret, ev, p)
	whCheckAttempts(t, whGetEvent(t, ctx, s, ev.Id), rcv.URL+"/hooks", endpointID, reqs)

	// The data of the event is the payment, over REST as over gRPC.
	code, out, _ := s.restDo(t, "GET", "/v1/events/"+ev.Id, s.key, "", "")
	data, _ := out["data"].(map[string]any)
	if code != http.StatusOK || out["type"] != "payment.succeeded" || out["delivery_status"] != "delivered" ||
		data["id"] != p.Id || data["@type"] != "type.googleapis.com/paymentd.v1.Payment" {
		t.Errorf("GET /v1/events/%s: %d %v", ev.Id, code, out)
	}

	// The earlier payment's event had no destination.
	if e := whEventsOf(t, ctx, s, before.Id); len(e) != 1 || e[0].DeliveryStatus != "none" {
		t.Errorf("event of the payment made before the endpoint: %v; want one with delivery_status none", e)
	}
	// Filters.
	list, err := whEvents(s).ListEvents(ctx, &pb.ListEventsRequest{DeliveryStatus: "delivered"})
	if err != nil || len(list.Events) != 1 || list.Events[0].Id != ev.Id {
		t.Errorf("ListEvents(delivery_status=delivered) = %v, %v; want only %s", list, err, ev.Id)
	}
	list, err = whEvents(s).ListEvents(ctx, &pb.ListEventsRequest{Type: "payment.*", PageSize: 1})
	if err != nil || len(list.Events) != 1 || list.Events[0].Id != ev.Id || list.NextPageToken == "" {
		t.Fatalf("ListEvents(type=payment.*, page_size=1) = %v, %v; want %s and a next page", list, err, ev.Id)
	}
	list, err = whEvents(s).ListEvents(ctx, &pb.ListEventsRequest{Type: "payment.*", PageSize: 1, PageToken: list.NextPageToken})
	if err != nil || len(list.Events) != 1 || list.Events[0].ObjectId != before.Id || list.NextPageToken != "" {
		t.Errorf("ListEvents second page = %v, %v; want the event of %s and no next page", list, err, before.Id)
	}
	code, out, _ = s.restDo(t, "GET", "/v1/events?type=refund.succeeded", s.key, "", "")
	if evl, _ := out["events"].([]any); code != http.StatusOK || len(evl) != 0 {
		t.Errorf("GET /v1/events?type=refund.succeeded: %d %v; want no events", code, out)
	}
	code, out, _ = s.restDo(t, "GET", "/v1/events?delivery_status=lost", s.key, "", "")
	if e := restError(t, code, out); e.httpStatus != 400 || e.param != "delivery_status" {
		t.Errorf("GET /v1/events?delivery_status=lost: %+v; want 400 about delivery_status", e)
	}

	// A refund is not a payment.succeeded event: the endpoint does not want it.
	if _, err := s.payments.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: p.Id, Amount: proto.Int64(500)}); err != nil {
		t.Fatal(err)
	}
	refundEvs, err := whEvents(s).ListEvents(ctx, &pb.ListEventsRequest{Type: "refund.succeeded"})
	if err != nil || len(refundEvs.Events) != 1 || refundEvs.Events[0].DeliveryStatus != "none" {
		t.Errorf("refund events: %v, %v; want one with delivery_status none", refundEvs, err)
	}

	// Nothing more arrives.
	time.Sleep(200 * time.Millisecond)
	if n := len(rcv.requests()); n != 4 {
		t.Errorf("the receiver got %d requests in all; want 4", n)
	}
}

// TestWebhookDeliveredAcrossRestart: attempts fail while the receiver is
// down; paymentd is stopped, the receiver comes up, and the paymentd started
// on the same database delivers the event, exactly once.
func TestWebhookDeliveredAcrossRestart(t *testing.T) {
	db := testDB(t)
	s := startServer(t, db, whFast...)
	key := s.key
	ctx := withKey(context.Background(), key)
	rcv := whNewReceiver(t)
	rcv.setDown(true)
	endpointID, secret := whCreateEndpoint(t, s, key, rcv.URL)
	p := mustCreate(t, ctx, s.payments, visa(4200))
	ev := whEventsOf(t, ctx, s, p.Id)[0]
	whWait(t, "two failed attempts", func() bool { return len(rcv.requests()) >= 2 })
	s.stop()
	failed := len(rcv.requests())
	rcv.setDown(false)
	time.Sleep(100 * time.Millisecond)
	if n := len(rcv.requests()); n != failed {
		t.Fatalf("the receiver got %d requests after paymentd stopped; want none", n-failed)
	}

	s2 := startServer(t, db, whFast...)
	whWait(t, "the delivery after the restart", func() bool { return whGetEvent(t, ctx, s2, ev.Id).DeliveryStatus == "delivered" })
	reqs := rcv.requests()
	if len(reqs) != failed+1 {
		t.Fatalf("the receiver got %d requests; want the %d failed ones and one more", len(reqs), failed)
	}
	whCheckDelivered(t, reqs, secret, ev, p)
	whCheckAttempts(t, whGetEvent(t, ctx, s2, ev.Id), rcv.URL, endpointID, reqs)
}

// TestWebhookEndpoints covers registering, listing, rotating and deleting
// endpoints, and redelivering an event.
func TestWebhookEndpoints(t *testing.T) {
	s := newServer(t, whFast...)
	ctx := withKey(context.Background(), s.key)
	rcv := whNewReceiver(t)
	id, secret := whCreateEndpoint(t, s, s.key, rcv.URL, "payment.*")

	// Bad requests.
	for _, tc := range []struct{ body, param, code string }{
		{`{"url":""}`, "url", "parameter_missing"},
		{`{"url":"ftp://example.com/x"}`, "url", "url_invalid"},
		{`{"url":"/relative"}`, "url", "url_invalid"},
		{`{"url":"https://example.com/x","event_types":["Payment Succeeded"]}`, "event_types", "event_type_invalid"},
		// Well-formed, but no event paymentd sends: the endpoint would never get one.
		{`{"url":"https://example.com/x","event_types":["paymnet.succeeded"]}`, "event_types", "event_type_invalid"},
		{`{"url":"https://example.com/x","event_types":["payment.*","payouts.*"]}`, "event_types", "event_type_invalid"},
		{`{"url":"https://example.com/x","event_types":["payment.succeeded.*"]}`, "event_types", "event_type_invalid"},
	} {
		code, out, _ := s.restDo(t, "POST", "/v1/webhook-endpoints", s.key, "", tc.body)
		if e := restError(t, code, out); e.httpStatus != 400 || e.param != tc.param || e.code != tc.code {
			t.Errorf("POST %s: %+v; want 400 %s about %s", tc.body, e, tc.code, tc.param)
		}
	}
	// A read-only key may list but not create, and never sees secrets.
	readKey, _ := createKey(t, s.db, "test", "read", "")
	code, out, _ := s.restDo(t, "POST", "/v1/webhook-endpoints", readKey, "", `{"url":"`+rcv.URL+`"}`)
	if e := restError(t, code, out); e.httpStatus != 403 {
		t.Errorf("create with a read key: %+v; want 403", e)
	}
	code, out, _ = s.restDo(t, "GET", "/v1/webhook-endpoints", readKey, "", "")
	list, _ := out["webhook_endpoints"].([]any)
	if code != http.StatusOK || len(list) != 1 {
		t.Fatalf("GET /v1/webhook-endpoints: %d %v; want one endpoint", code, out)
	}
	if e := list[0].(map[string]any); e["id"] != id || e["secret"] != "" || e["url"] != rcv.URL {
		t.Errorf("listed endpoint %v; want %s at %s without its secret", e, id, rcv.URL)
	}
	// Endpoints of another mode are not found.
	liveKey, _ := createKey(t, s.db, "live", "read,write", "")
	code, out, _ = s.restDo(t, "DELETE", "/v1/webhook-endpoints/"+id, liveKey, "", "")
	if e := restError(t, code, out); e.httpStatus != 404 {
		t.Errorf("delete with a live key: %+v; want 404", e)
	}

	// Rotation: both secrets sign for a while.
	code, out, _ = s.restDo(t, "POST", "/v1/webhook-endpoints/"+id+"/rotate-secret", s.key, "", "{}")
	newSecret, _ := out["secret"].(string)
	if code != http.StatusOK || !strings.HasPrefix(newSecret, "whsec_") || newSecret == secret || out["previous_secret_expires_at"] == nil {
		t.Fatalf("rotate-secret: %d %v; want a new whsec_ secret and when the old one expires", code, out)
	}
	expires, _ := time.Parse(time.RFC3339, out["previous_secret_expires_at"].(string))
	if d := time.Until(expires); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("previous secret expires in %s; want 24h", d)
	}
	p := mustCreate(t, ctx, s.payments, visa(900))
	whWait(t, "the delivery", func() bool { return len(rcv.requests()) == 1 })
	r := rcv.requests()[0]
	sig := r.header.Get("X-Webhook-Signature")
	if strings.Count(sig, "v1=") != 2 {
		t.Errorf("signature during rotation %q; want two v1 values", sig)
	}
	for _, sec := range []string{secret, newSecret} {
		if err := webhook.Verify(sec, sig, r.body, 0); err != nil {
			t.Errorf("signature during rotation does not verify with %s…: %v", sec[:10], err)
		}
	}

	// Redeliver: the event is sent again, signed afresh.
	ev := whEventsOf(t, ctx, s, p.Id)[0]
	whWait(t, "the delivery to be recorded", func() bool { return whGetEvent(t, ctx, s, ev.Id).DeliveryStatus == "delivered" })
	code, out, _ = s.restDo(t, "POST", "/v1/events/"+ev.Id+"/redeliver", s.key, "", "{}")
	if code != http.StatusOK || out["id"] != ev.Id {
		t.Fatalf("redeliver: %d %v", code, out)
	}
	whWait(t, "the redelivery", func() bool { return len(rcv.requests()) == 2 })
	whWait(t, "the redelivery to be recorded", func() bool {
		e := whGetEvent(t, ctx, s, ev.Id)
		return e.DeliveryStatus == "delivered" && e.Deliveries[0].AttemptCount == 2
	})
	if got := rcv.requests()[1]; got.header.Get("X-Webhook-Id") != ev.Id || !bytes.Equal(got.body, r.body) {
		t.Errorf("redelivery: id %q body %s; want the same event", got.header.Get("X-Webhook-Id"), got.body)
	}

	// A second endpoint can be sent a past event.
	rcv2 := whNewReceiver(t)
	id2, secret2 := whCreateEndpoint(t, s, s.key, rcv2.URL)
	if _, err := whEvents(s).RedeliverEvent(ctx, &pb.RedeliverEventRequest{Id: ev.Id, EndpointId: id2}); err != nil {
		t.Fatal(err)
	}
	whWait(t, "the past event at the new endpoint", func() bool { return len(rcv2.requests()) == 1 })
	if err := webhook.Verify(secret2, rcv2.requests()[0].header.Get("X-Webhook-Signature"), rcv2.requests()[0].body, 0); err != nil {
		t.Errorf("past event at the new endpoint: %v", err)
	}

	// Delete: later events are not sent to it.
	code, out, _ = s.restDo(t, "DELETE", "/v1/webhook-endpoints/"+id, s.key, "", "")
	if code != http.StatusOK || out["deleted"] != true {
		t.Fatalf("DELETE: %d %v", code, out)
	}
	code, out, _ = s.restDo(t, "DELETE", "/v1/webhook-endpoints/"+id, s.key, "", "")
	if e := restError(t, code, out); e.httpStatus != 404 {
		t.Errorf("second DELETE: %+v; want 404", e)
	}
	p2 := mustCreate(t, ctx, s.payments, visa(901))
	whWait(t, "the event at the remaining endpoint", func() bool { return len(rcv2.requests()) == 2 })
	if e := whEventsOf(t, ctx, s, p2.Id)[0]; len(whGetEvent(t, ctx, s, e.Id).Deliveries) != 1 {
		t.Errorf("event after the delete has %d deliveries; want 1 (the remaining endpoint)", len(whGetEvent(t, ctx, s, e.Id).Deliveries))
	}
	if n := len(rcv.requests()); n != 2 {
		t.Errorf("the deleted endpoint got %d requests; want still 2", n)
	}
}

// TestWebhookURLsRefused: with the guard on (the default), endpoints on
// loopback, private, link-local, CGNAT and unique-local addresses are
// refused when registered.
func TestWebhookURLsRefused(t *testing.T) {
	s := newServer(t)
	for _, u := range []string{
		"http://127.0.0.1:8080/hooks", "http://[::1]:8080/hooks", "http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/hooks", "http://192.168.1.10/hooks", "http://172.16.0.1/", "http://100.64.0.1/",
		"http://[fc00::1]/", "http://[fe80::1]/", "http://0.0.0.0/", "http://localhost:8080/hooks",
		"http://api.localhost/hooks", "http://[::ffff:127.0.0.1]/", "http://127.1/", "http://2130706433/",
		"http://0x7f.0.0.1/",
	} {
		code, out, _ := s.restDo(t, "POST", "/v1/webhook-endpoints", s.key, "", `{"url":"`+u+`"}`)
		if e := restError(t, code, out); e.httpStatus != 400 || e.code != "url_not_allowed" || e.param != "url" {
			t.Errorf("POST url %s: %+v; want 400 url_not_allowed", u, e)
		}
	}
	// Live mode wants https.
	liveKey, _ := createKey(t, s.db, "live", "read,write", "")
	code, out, _ := s.restDo(t, "POST", "/v1/webhook-endpoints", liveKey, "", `{"url":"http://example.com/hooks"}`)
	if e := restError(t, code, out); e.httpStatus != 400 || e.code != "url_insecure" {
		t.Errorf("live http endpoint: %+v; want 400 url_insecure", e)
	}
}

// TestWebhookGuardAtDialTime: endpoints registered while private
// destinations were allowed are refused at dial time once paymentd runs
// with the guard on (the default): loopback by address and by name, and a
// redirector on loopback; nothing reaches them, and the attempts say why.
func TestWebhookGuardAtDialTime(t *testing.T) {
	db := testDB(t)
	s := startServer(t, db, whFast...)
	key := s.key
	ctx := withKey(context.Background(), key)
	rcv := whNewReceiver(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, rcv.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	port := rcv.URL[strings.LastIndex(rcv.URL, ":"):]
	urls := []string{rcv.URL, "http://localhost" + port + "/by-name", redirector.URL}
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil { // IPv6 loopback exists here
		ln.Close()
		urls = append(urls, "http://[::1]"+port+"/v6")
	}
	for _, u := range urls {
		whCreateEndpoint(t, s, key, u)
	}
	s.stop()

	s2 := startServer(t, db, "--webhook-poll-interval", "20ms", "--webhook-retry-base", "1h")
	p := mustCreate(t, ctx, s2.payments, visa(1000))
	ev := whEventsOf(t, ctx, s2, p.Id)[0]
	whWait(t, "an attempt of every delivery", func() bool {
		e := whGetEvent(t, ctx, s2, ev.Id)
		for _, d := range e.Deliveries {
			if d.AttemptCount == 0 {
				return false
			}
		}
		return len(e.Deliveries) == len(urls)
	})
	for _, d := range whGetEvent(t, ctx, s2, ev.Id).Deliveries {
		a := d.Attempts[0]
		if a.HttpStatus != 0 || !strings.Contains(a.Error, "refused") || !strings.Contains(a.Error, "loopback") || d.Status != "pending" {
			t.Errorf("attempt to %s: status %d error %q, delivery %s; want refused as loopback, still pending", d.Url, a.HttpStatus, a.Error, d.Status)
		}
	}
	if n := len(rcv.requests()); n != 0 {
		t.Errorf("the receiver got %d requests; want none", n)
	}
}

// TestWebhookRedirectNotFollowed: a receiver answering a redirect has not
// received the event; the redirect target is never asked.
func TestWebhookRedirectNotFollowed(t *testing.T) {
	s := newServer(t, append(whFast, "--webhook-retry-base", "1h")...)
	ctx := withKey(context.Background(), s.key)
	target := whNewReceiver(t)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusFound)
	}))
	t.Cleanup(redirector.Close)
	whCreateEndpoint(t, s, s.key, redirector.URL)
	p := mustCreate(t, ctx, s.payments, visa(1000))
	ev := whEventsOf(t, ctx, s, p.Id)[0]
	whWait(t, "the attempt", func() bool { return whGetEvent(t, ctx, s, ev.Id).Deliveries[0].AttemptCount == 1 })
	d := whGetEvent(t, ctx, s, ev.Id).Deliveries[0]
	if a := d.Attempts[0]; a.HttpStatus != http.StatusFound || !strings.Contains(a.Error, "redirects are not followed") ||
		d.Status != "pending" || d.NextAttemptAt == nil {
		t.Errorf("delivery %v; want a 302 attempt recorded as failed and a retry scheduled", d)
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("the redirect target got %d requests; want none", n)
	}
}

// TestWebhookGivenUpAfterRetryWindow: a receiver that never answers 2xx
// gets its delivery marked failed once the retry window has passed; the
// event stays listable and can be redelivered.
func TestWebhookGivenUpAfterRetryWindow(t *testing.T) {
	s := newServer(t, append(whFast, "--webhook-retry-window", "300ms")...)
	ctx := withKey(context.Background(), s.key)
	rcv := whNewReceiver(t)
	rcv.setDown(true)
	whCreateEndpoint(t, s, s.key, rcv.URL)
	p := mustCreate(t, ctx, s.payments, visa(1000))
	ev := whEventsOf(t, ctx, s, p.Id)[0]
	whWait(t, "the delivery to fail", func() bool { return whGetEvent(t, ctx, s, ev.Id).DeliveryStatus == "failed" })
	failed := whGetEvent(t, ctx, s, ev.Id).Deliveries[0]
	if failed.AttemptCount < 2 || int(failed.AttemptCount) != len(rcv.requests()) || failed.NextAttemptAt != nil {
		t.Errorf("failed delivery %v after %d requests; want at least 2 attempts, all recorded, none next", failed, len(rcv.requests()))
	}
	list, err := whEvents(s).ListEvents(ctx, &pb.ListEventsRequest{DeliveryStatus: "failed"})
	if err != nil || len(list.Events) != 1 || list.Events[0].Id != ev.Id {
		t.Fatalf("ListEvents(delivery_status=failed) = %v, %v; want %s", list, err, ev.Id)
	}
	rcv.setDown(false)
	resp, err := whEvents(s).RedeliverEvent(withIdem(ctx, "redeliver-1"), &pb.RedeliverEventRequest{Id: ev.Id})
	if err != nil || resp.Event.Id != ev.Id {
		t.Fatalf("RedeliverEvent = %v, %v", resp, err)
	}
	whWait(t, "the redelivery", func() bool { return whGetEvent(t, ctx, s, ev.Id).DeliveryStatus == "delivered" })
}

// whPostSandbox posts a sandbox webhook with the signature header given.
func whPostSandbox(t *testing.T, s *testServer, body string, header string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.baseURL+"/v1/provider-webhooks/sandbox", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if header != "" {
		req.Header.Set(sandbox.WebhookSignatureHeader, header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func whSandboxWebhook(id, typ, paymentID, status string) string {
	b, _ := json.Marshal(sandbox.WebhookPayload{ID: id, Type: typ, Created: time.Now().Unix(),
		Data: sandbox.WebhookData{Object: "payment", Reference: "sb_" + paymentID, PaymentID: paymentID, Status: status}})
	return string(b)
}

// TestProviderWebhooks: inbound sandbox webhooks are verified, deduplicated
// and confirmed with the provider before anything changes, and never move a
// payment backwards.
func TestProviderWebhooks(t *testing.T) {
	// The reconciler waits an hour, so only webhooks settle payments here.
	s := newServer(t, "--provider-timeout", "200ms", "--reconcile-schedule", "1h")
	ctx := withKey(context.Background(), s.key)
	p := mustCreate(t, ctx, s.payments, &pb.CreatePaymentRequest{Amount: 3000, Currency: "USD", PaymentMethod: sandbox.CardTimeout})
	checkPayment(t, p, "unknown", 3000, 0, 0, 0)
	now := time.Now()
	secret := sandbox.DefaultWebhookSecret

	unchanged := func(what string, wantStatus string, wantEvents ...string) {
		t.Helper()
		if got := mustGet(t, ctx, s.payments, p.Id); got.Status != wantStatus {
			t.Errorf("%s: payment status %s; want %s", what, got.Status, wantStatus)
		}
		if got := whTypes(whEventsOf(t, ctx, s, p.Id)); !slices.Equal(got, wantEvents) {
			t.Errorf("%s: events %v; want %v", what, got, wantEvents)
		}
	}

	good := whSandboxWebhook("sbevt_2", "payment.captured", p.Id, "captured")
	// Signed, but with U+0000 in an id: it names nothing of paymentd's (and
	// PostgreSQL refuses it as a query parameter), so it is refused, not a
	// 503 the provider would retry forever.
	nulObject := whSandboxWebhook("sbevt_4", "payment.captured", p.Id+"\x00", "captured")
	nulEvent := whSandboxWebhook("sbevt_\x005", "payment.captured", p.Id, "captured")
	for _, tc := range []struct {
		name, body, header string
		status             int
	}{
		{"no signature", good, "", 401},
		{"wrong secret", good, sandbox.SignWebhook("whsec_wrong", now, []byte(good)), 401},
		{"changed body", strings.Replace(good, "sbevt_2", "sbevt_3", 1), sandbox.SignWebhook(secret, now, []byte(good)), 401},
		{"10 minutes old", good, sandbox.SignWebhook(secret, now.Add(-10*time.Minute), []byte(good)), 401},
		{"not JSON", "{", sandbox.SignWebhook(secret, now, []byte("{")), 400},
		{"NUL in the payment id", nulObject, sandbox.SignWebhook(secret, now, []byte(nulObject)), 400},
		{"NUL in the event id", nulEvent, sandbox.SignWebhook(secret, now, []byte(nulEvent)), 400},
	} {
		code, out := whPostSandbox(t, s, tc.body, tc.header)
		if code != tc.status {
			t.Errorf("%s: %d %v; want %d", tc.name, code, out, tc.status)
		}
		unchanged(tc.name, "unknown", "payment.unknown")
	}
	// The webhook is applied once the sandbox confirms the payment captured.
	code, out := whPostSandbox(t, s, good, sandbox.SignWebhook(secret, now, []byte(good)))
	if code != 200 || out["outcome"] != "applied" || out["object_id"] != p.Id {
		t.Fatalf("valid webhook: %d %v; want 200 applied to %s", code, out, p.Id)
	}
	got := mustGet(t, ctx, s.payments, p.Id)
	checkPayment(t, got, "succeeded", 3000, 0, 3000, 0)
	unchanged("applied", "succeeded", "payment.unknown", "payment.succeeded")

	// The same provider event again changes nothing.
	code, out = whPostSandbox(t, s, good, sandbox.SignWebhook(secret, time.Now(), []byte(good)))
	if code != 200 || out["outcome"] != "duplicate" {
		t.Errorf("duplicate: %d %v; want 200 duplicate", code, out)
	}
	unchanged("duplicate", "succeeded", "payment.unknown", "payment.succeeded")

	// An older event arriving late does not move the payment backwards.
	late := whSandboxWebhook("sbevt_1", "payment.failed", p.Id, "failed")
	code, out = whPostSandbox(t, s, late, sandbox.SignWebhook(secret, time.Now(), []byte(late)))
	if code != 200 || out["outcome"] != "ignored" {
		t.Errorf("out-of-order webhook: %d %v; want 200 ignored", code, out)
	}
	unchanged("out of order", "succeeded", "payment.unknown", "payment.succeeded")

	// A webhook about a payment that never was unknown changes nothing either.
	settled := mustCreate(t, ctx, s.payments, visa(700))
	other := whSandboxWebhook("sbevt_9", "payment.failed", settled.Id, "failed")
	code, out = whPostSandbox(t, s, other, sandbox.SignWebhook(secret, time.Now(), []byte(other)))
	if code != 200 || out["outcome"] != "ignored" || mustGet(t, ctx, s.payments, settled.Id).Status != "succeeded" {
		t.Errorf("webhook about a settled payment: %d %v; want 200 ignored and the payment unchanged", code, out)
	}

	// Unknown providers are not found.
	req, _ := http.NewRequest("POST", s.baseURL+"/v1/provider-webhooks/nosuch", strings.NewReader(good))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("webhook for an unknown provider: %d; want 404", resp.StatusCode)
	}
}

// TestTimedOutPaymentIsReconciled: pm_card_timeout leaves the payment
// unknown (never failed); the reconciler asks the sandbox, which reports it
// captured, and settles it as succeeded with its ledger entries and events.
func TestTimedOutPaymentIsReconciled(t *testing.T) {
	s := newServer(t, append(whFast, "--provider-timeout", "200ms",
		"--reconcile-schedule", "300ms,50ms", "--reconcile-interval", "20ms")...)
	ctx := withKey(context.Background(), s.key)
	rcv := whNewReceiver(t)
	_, secret := whCreateEndpoint(t, s, s.key, rcv.URL)

	start := time.Now()
	p := mustCreate(t, ctx, s.payments, &pb.CreatePaymentRequest{Amount: 5000, Currency: "USD", PaymentMethod: sandbox.CardTimeout})
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("CreatePayment with pm_card_timeout returned after %s; want it to wait for the provider timeout (200ms)", d)
	}
	checkPayment(t, p, "unknown", 5000, 0, 0, 0)
	whWait(t, "the payment to be reconciled", func() bool { return mustGet(t, ctx, s.payments, p.Id).Status == "succeeded" })
	got := mustGet(t, ctx, s.payments, p.Id)
	checkPayment(t, got, "succeeded", 5000, 0, 5000, 0)

	evs := whEventsOf(t, ctx, s, p.Id)
	if types := whTypes(evs); !slices.Equal(types, []string{"payment.unknown", "payment.succeeded"}) {
		t.Fatalf("events %v; want payment.unknown then payment.succeeded", types)
	}
	if !evs[0].CreatedAt.AsTime().Before(evs[1].CreatedAt.AsTime()) {
		t.Errorf("payment.unknown at %s is not before payment.succeeded at %s", evs[0].CreatedAt.AsTime(), evs[1].CreatedAt.AsTime())
	}
	// Both events reach the endpoint.
	whWait(t, "both deliveries", func() bool {
		return whGetEvent(t, ctx, s, evs[0].Id).DeliveryStatus == "delivered" && whGetEvent(t, ctx, s, evs[1].Id).DeliveryStatus == "delivered"
	})
	seen := map[string]string{}
	for _, r := range rcv.requests() {
		if err := webhook.Verify(secret, r.header.Get("X-Webhook-Signature"), r.body, 0); err != nil {
			t.Errorf("delivery does not verify: %v", err)
		}
		var body struct {
			Event string         `json:"event"`
			Data  map[string]any `json:"data"`
		}
		_ = json.Unmarshal(r.body, &body)
		seen[body.Event], _ = body.Data["status"].(string)
	}
	if seen["payment.unknown"] != "unknown" || seen["payment.succeeded"] != "succeeded" {
		t.Errorf("deliveries %v; want payment.unknown with status unknown and payment.succeeded with status succeeded", seen)
	}
	// Money moved exactly once: the payment can be refunded in full, not more.
	if _, err := s.payments.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: p.Id}); err != nil {
		t.Errorf("refund of the reconciled payment: %v", err)
	}
}

// TestTimedOutManualPaymentIsReconciledAuthorized: a pm_card_timeout
// payment that asked for a manual capture is reconciled as authorized
// (requires_capture, nothing captured), not as captured — the sandbox
// remembers that it only authorized it — and is captured only when asked.
func TestTimedOutManualPaymentIsReconciledAuthorized(t *testing.T) {
	s := newServer(t, append(whFast, "--provider-timeout", "200ms",
		"--reconcile-schedule", "300ms,50ms", "--reconcile-interval", "20ms")...)
	ctx := withKey(context.Background(), s.key)
	p := mustCreate(t, ctx, s.payments, &pb.CreatePaymentRequest{Amount: 3000, Currency: "USD",
		PaymentMethod: sandbox.CardTimeout, CaptureMethod: "manual"})
	checkPayment(t, p, "unknown", 3000, 0, 0, 0)
	whWait(t, "the payment to be reconciled", func() bool { return mustGet(t, ctx, s.payments, p.Id).Status != "unknown" })
	checkPayment(t, mustGet(t, ctx, s.payments, p.Id), "requires_capture", 3000, 3000, 0, 0)
	// Nothing was captured, so nothing can be refunded yet.
	if _, err := s.payments.CreateRefund(ctx, &pb.CreateRefundRequest{PaymentId: p.Id}); err == nil {
		t.Error("refund of an authorized, uncaptured payment succeeded")
	}
	if _, err := s.payments.CapturePayment(ctx, &pb.CapturePaymentRequest{Id: p.Id}); err != nil {
		t.Fatalf("capture: %v", err)
	}
	checkPayment(t, mustGet(t, ctx, s.payments, p.Id), "succeeded", 3000, 0, 3000, 0)
}

// TestCallbackURLDeliveries: an invoice's events are POSTed to its own
// callback_url, signed with the account's default secret, without any
// endpoint registered.
func TestCallbackURLDeliveries(t *testing.T) {
	s := newServer(t, whFast...)
	ctx := withKey(context.Background(), s.key)
	rcv := whNewReceiver(t)
	cb := rcv.URL + "/orders/42/return"
	inv, err := pb.NewInvoicesServiceClient(s.conn).CreateInvoice(ctx, &pb.CreateInvoiceRequest{
		Amount: 2500, Currency: "USD", TransactionReference: "order-42", CallbackUrl: cb})
	if err != nil {
		t.Fatalf("CreateInvoice: %v", err)
	}
	evs := whEventsOf(t, ctx, s, inv.Invoice.Id)
	if len(evs) == 0 {
		t.Fatalf("invoice %s has no events", inv.Invoice.Id)
	}
	whWait(t, "the delivery to the callback_url", func() bool { return whGetEvent(t, ctx, s, evs[0].Id).DeliveryStatus == "delivered" })
	ev := whGetEvent(t, ctx, s, evs[0].Id)
	if d := ev.Deliveries[0]; len(ev.Deliveries) != 1 || d.EndpointId != "" || d.Url != cb {
		t.Errorf("deliveries %v; want one to %s without an endpoint", ev.Deliveries, cb)
	}

	// The account's default secret verifies it; rotating keeps both signing.
	code, out, _ := s.restDo(t, "GET", "/v1/webhook-secret", s.key, "", "")
	secret, _ := out["secret"].(string)
	if code != http.StatusOK || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("GET /v1/webhook-secret: %d %v", code, out)
	}
	reqs := rcv.requests()
	if len(reqs) != 1 {
		t.Fatalf("the callback_url got %d requests; want 1", len(reqs))
	}
	r := reqs[0]
	if err := webhook.Verify(secret, r.header.Get("X-Webhook-Signature"), r.body, 0); err != nil {
		t.Errorf("callback delivery does not verify with the account secret: %v", err)
	}
	var body struct {
		Event string         `json:"event"`
		Data  map[string]any `json:"data"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Event != ev.Type || body.Data["id"] != inv.Invoice.Id ||
		body.Data["callback_url"] != cb || body.Data["transaction_reference"] != "order-42" {
		t.Errorf("callback delivery body %s (%v); want the invoice %s", r.body, err, inv.Invoice.Id)
	}
	readKey, _ := createKey(t, s.db, "test", "read", "")
	code, out, _ = s.restDo(t, "GET", "/v1/webhook-secret", readKey, "", "")
	if e := restError(t, code, out); e.httpStatus != 403 {
		t.Errorf("GET /v1/webhook-secret with a read key: %+v; want 403", e)
	}
	code, out, _ = s.restDo(t, "POST", "/v1/webhook-secret/rotate", s.key, "", "{}")
	if newSecret, _ := out["secret"].(string); code != http.StatusOK || newSecret == secret || !strings.HasPrefix(newSecret, "whsec_") {
		t.Fatalf("rotate the account secret: %d %v", code, out)
	}
	if _, err := whEvents(s).RedeliverEvent(ctx, &pb.RedeliverEventRequest{Id: ev.Id}); err != nil {
		t.Fatal(err)
	}
	whWait(t, "the redelivery", func() bool { return len(rcv.requests()) == 2 })
	r = rcv.requests()[1]
	if sig := r.header.Get("X-Webhook-Signature"); strings.Count(sig, "v1=") != 2 || webhook.Verify(secret, sig, r.body, 0) != nil {
		t.Errorf("signature after rotating %q; want two v1 values, the old secret still verifying", sig)
	}
}

// TestWebhookSecretsSealedAtRest: with a secrets key, the signing secrets of
// endpoints and of the account — current, rotated, and in the idempotent
// replay of the create — are stored sealed, never as whsec_…; the API still
// answers them plain, replays answer the same secret, deliveries verify with
// it, and a secret stored unsealed before the key is sealed at the next start.
func TestWebhookSecretsSealedAtRest(t *testing.T) {
	db := testDB(t)
	keyFile := filepath.Join(t.TempDir(), "secrets.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--secrets-key-file", keyFile}, whFast...)
	s := startServer(t, db, args...)
	key := s.key // printed on the first start only
	ctx := withKey(context.Background(), key)
	rcv := whNewReceiver(t)
	body := `{"url":"` + rcv.URL + `/hooks","event_types":["payment.succeeded"]}`
	code, created, _ := s.restDo(t, "POST", "/v1/webhook-endpoints", s.key, "sealed-create", body)
	endpointID, secret := created["id"].(string), created["secret"].(string)
	if code != http.StatusOK || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("create endpoint: %d %v", code, created)
	}
	code, rotated, _ := s.restDo(t, "POST", "/v1/webhook-endpoints/"+endpointID+"/rotate-secret", s.key, "sealed-rotate", "")
	newSecret, _ := rotated["secret"].(string)
	if code != http.StatusOK || !strings.HasPrefix(newSecret, "whsec_") || newSecret == secret {
		t.Fatalf("rotate: %d %v", code, rotated)
	}
	code, acct, _ := s.restDo(t, "GET", "/v1/webhook-secret", s.key, "", "")
	acctSecret, _ := acct["secret"].(string)
	if code != http.StatusOK || !strings.HasPrefix(acctSecret, "whsec_") {
		t.Fatalf("GET /v1/webhook-secret: %d %v", code, acct)
	}
	p := mustCreate(t, ctx, s.payments, visa(2000))
	ev := whEventsOf(t, ctx, s, p.Id)[0]
	whWait(t, "the delivery", func() bool { return whGetEvent(t, ctx, s, ev.Id).DeliveryStatus == "delivered" })
	r := rcv.requests()[0]
	if err := webhook.Verify(newSecret, r.header.Get("X-Webhook-Signature"), r.body, 5*time.Minute); err != nil {
		t.Errorf("delivery does not verify with the rotated secret: %v", err)
	}
	if err := webhook.Verify(secret, r.header.Get("X-Webhook-Signature"), r.body, 5*time.Minute); err != nil {
		t.Errorf("delivery does not verify with the previous secret during the overlap: %v", err)
	}
	s.stop()

	raw := rawDB(t, db)
	var stored []string
	responseText := "CAST(response AS TEXT)"
	if strings.HasPrefix(db, "postgres") {
		responseText = "encode(response, 'escape')" // printable bytes as they are
	}
	for _, q := range []string{`SELECT secret || ' ' || coalesce(previous_secret, '') FROM webhook_endpoints`,
		`SELECT secret || ' ' || coalesce(previous_secret, '') FROM webhook_secrets`,
		`SELECT ` + responseText + ` FROM idempotency_keys WHERE method LIKE '%Webhook%'`} {
		rows, err := raw.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			stored = append(stored, v)
		}
		rows.Close()
	}
	if len(stored) < 3 {
		t.Fatalf("read %d stored secrets and replays; want at least 3", len(stored))
	}
	for _, v := range stored {
		if strings.Contains(v, "whsec_") {
			t.Errorf("a secret is stored unsealed: %.80s", v)
		}
	}

	// Restarted with the same key: the replay answers the same secret.
	s = startServer(t, db, args...)
	code, replay, _ := s.restDo(t, "POST", "/v1/webhook-endpoints", key, "sealed-create", body)
	if code != http.StatusOK || replay["secret"] != secret || replay["id"] != endpointID {
		t.Errorf("replayed create: %d %v; want endpoint %s with its first secret", code, replay, endpointID)
	}
	s.stop()

	// A secret stored before the server had a key is sealed at start, and
	// still signs.
	w := writableDB(t, db)
	if _, err := w.Exec(`UPDATE webhook_secrets SET secret = $1`, "whsec_legacylegacylegacylegacylegacy12"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	s = startServer(t, db, args...)
	code, acct, _ = s.restDo(t, "GET", "/v1/webhook-secret", key, "", "")
	if code != http.StatusOK || acct["secret"] != "whsec_legacylegacylegacylegacylegacy12" {
		t.Errorf("GET /v1/webhook-secret after start: %d %v; want the legacy secret", code, acct)
	}
	s.stop()
	var legacy string
	if err := rawDB(t, db).QueryRow(`SELECT secret FROM webhook_secrets`).Scan(&legacy); err != nil || !strings.HasPrefix(legacy, "whenc1:") {
		t.Errorf("legacy secret stored as %.40q (%v); want it sealed at start", legacy, err)
	}

	// Another key: serve refuses to start, naming the remedy; with
	// --reset-unreadable-webhook-secrets it starts and the secrets are new.
	otherKey := filepath.Join(t.TempDir(), "other.key")
	if err := os.WriteFile(otherKey, []byte(strings.Repeat("cd", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	err := run(t.Context(), []string{"serve", "--db", db, "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--secrets-key-file", otherKey},
		noEnv, io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "do not open with this server's --secrets-key-file") || !strings.Contains(err.Error(), "--reset-unreadable-webhook-secrets") {
		t.Fatalf("serve with another key: %v; want it refused, naming --reset-unreadable-webhook-secrets", err)
	}
	s = startServer(t, db, "--secrets-key-file", otherKey, "--reset-unreadable-webhook-secrets")
	code, acct, _ = s.restDo(t, "GET", "/v1/webhook-secret", key, "", "")
	if fresh, _ := acct["secret"].(string); code != http.StatusOK || !strings.HasPrefix(fresh, "whsec_") || fresh == "whsec_legacylegacylegacylegacylegacy12" {
		t.Errorf("GET /v1/webhook-secret after a reset: %d %v; want a new secret", code, acct)
	}
	code, rotated, _ = s.restDo(t, "POST", "/v1/webhook-endpoints/"+endpointID+"/rotate-secret", key, "after-reset", "")
	if code != http.StatusOK {
		t.Errorf("rotate after a reset: %d %v", code, rotated)
	}
}

// TestEventCallsWithoutAnIDSayItIsRequired: GetEvent and RedeliverEvent
// with no id answer parameter_missing naming id, as the other Get calls do,
// not "No such event: ”".
func TestEventCallsWithoutAnIDSayItIsRequired(t *testing.T) {
	s := newServer(t)
	ctx := withKey(context.Background(), s.key)
	_, err := whEvents(s).GetEvent(ctx, &pb.GetEventRequest{})
	if got := grpcError(t, err); got.grpcCode != codes.InvalidArgument || got.code != "parameter_missing" || got.param != "id" {
		t.Errorf("GetEvent without an id: %+v; want INVALID_ARGUMENT parameter_missing (param id)", got)
	}
	_, err = whEvents(s).RedeliverEvent(ctx, &pb.RedeliverEventRequest{})
	if got := grpcError(t, err); got.grpcCode != codes.InvalidArgument || got.code != "parameter_missing" || got.param != "id" {
		t.Errorf("RedeliverEvent without an id: %+v; want INVALID_ARGUMENT parameter_missing (param id)", got)
	}
}

// TestDeliveryLogLinesKeepNoCallbackQuery: a callback_url's query (where
// integrators put tokens and signatures) is in no log line, while the
// delivery attempts to it are logged: "webhook attempt failed" names the
// URL without its query.
func TestDeliveryLogLinesKeepNoCallbackQuery(t *testing.T) {
	s := newServer(t, whFast...)
	ctx := withKey(context.Background(), s.key)
	rcv := whNewReceiver(t)
	rcv.setDown(true)
	const secretQuery = "token=cb-SeCrEt-7731&sig=fe12"
	cb := rcv.URL + "/orders/43/return?" + secretQuery
	if _, err := pb.NewInvoicesServiceClient(s.conn).CreateInvoice(ctx, &pb.CreateInvoiceRequest{
		Amount: 2500, Currency: "USD", TransactionReference: "order-43", CallbackUrl: cb}); err != nil {
		t.Fatalf("CreateInvoice: %v", err)
	}
	whWait(t, "two failed attempts", func() bool { return len(rcv.requests()) >= 2 })
	whWait(t, "the attempt's log line", func() bool { return strings.Contains(s.log.String(), "webhook attempt failed") })
	for _, line := range strings.Split(s.log.String(), "\n") {
		if strings.Contains(line, "cb-SeCrEt-7731") {
			t.Errorf("a log line holds the callback_url's query: %s", line)
		}
	}
	if !strings.Contains(s.log.String(), "/orders/43/return") {
		t.Errorf("no log line names the callback URL's path; log:\n%s", s.log.String())
	}
}
