package webhook_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/paymentd/paymentd/webhook"
)

// receiver is the handler docs/webhooks.md shows: verify the signature over
// the raw body, dedupe on the event id, answer 2xx quickly.
func receiver(secret string) http.Handler {
	var mu sync.Mutex
	seen := map[string]bool{} // use your database in production
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := webhook.Verify(secret, r.Header.Get("X-Webhook-Signature"), body, 5*time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var ev struct {
			ID        string          `json:"id"`
			Event     string          `json:"event"`
			Timestamp string          `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &ev); err != nil {
			http.Error(w, "not JSON", http.StatusBadRequest)
			return
		}
		mu.Lock()
		dup := seen[ev.ID]
		seen[ev.ID] = true
		mu.Unlock()
		if !dup {
			fmt.Println("received", ev.Event, ev.ID) // hand the event to your own queue here
		}
		w.WriteHeader(http.StatusNoContent)
	})
}

func Example_receiver() {
	secret := "whsec_3mQ2sWkN9vXb7LcPz4HdRt8YfJa1GeUo"
	srv := httptest.NewServer(receiver(secret))
	defer srv.Close()

	send := func(body, sig string) int {
		req, _ := http.NewRequest("POST", srv.URL, strings.NewReader(body))
		req.Header.Set("X-Webhook-Signature", sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body := `{"id":"evt_01","event":"payment.succeeded","timestamp":"2026-02-09T21:30:00.000Z","data":{}}`
	fmt.Println(send(body, webhook.Sign(secret, time.Now(), []byte(body))))
	fmt.Println(send(body, webhook.Sign(secret, time.Now(), []byte(body)))) // a retry: deduplicated
	fmt.Println(send(body, webhook.Sign("whsec_other", time.Now(), []byte(body))))
	// Output:
	// received payment.succeeded evt_01
	// 204
	// 204
	// 400
}
