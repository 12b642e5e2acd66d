package service

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestTracesKeepNoURLQuery checks that otelhttp's spans never carry a URL's
// query: not a delivery's url.full (a callback_url's query may hold the
// receiver's token), not the status of a delivery that failed (whose error
// quotes the URL), not a served request's attributes (its query may hold a
// card number).
func TestTracesKeepNoURLQuery(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s := &Service{cfg: Config{TracerProvider: tp}}
	srv := httptest.NewServer(s.traceHTTP(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	defer srv.Close()
	client := &http.Client{Transport: TraceTransport(tp, nil)}
	resp, err := client.Get(srv.URL + "/cb?token=SECRET123&4111111111111111=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := client.Get(closed + "/cb?token=SECRET456"); err == nil {
		t.Fatal("a request to a closed port succeeded")
	}
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans; want 3 (two client, one server)", len(spans))
	}
	sawFull := false
	for _, sp := range spans {
		text := sp.Status().Description
		for _, a := range sp.Attributes() {
			text += " " + string(a.Key) + "=" + a.Value.Emit()
			if a.Key == "url.full" {
				sawFull = true
				if !strings.HasSuffix(a.Value.AsString(), "/cb?…") {
					t.Errorf("url.full = %q; want the URL with its query as …", a.Value.AsString())
				}
			}
		}
		for _, secret := range []string{"SECRET123", "SECRET456", "4111111111111111"} {
			if strings.Contains(text, secret) {
				t.Errorf("span %q holds %s: %s", sp.Name(), secret, text)
			}
		}
	}
	if !sawFull {
		t.Error("no span has url.full")
	}
}
