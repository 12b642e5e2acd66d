package service

import (
	"crypto/sha256"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/felixge/httpsnoop"
	"go.opentelemetry.io/otel/trace"
)

// observeHTTP wraps everything served on the HTTP port: it gives each
// request an id (the caller's X-Request-Id when well formed), sets it on the
// response and on the request that the gateway forwards to the gRPC server,
// counts the request in paymentd_http_requests_total, and writes one access
// log line for it — also for requests refused before any handler (bad JSON,
// 413, unknown routes), for /pay pages and for provider webhooks.
func (s *Service) observeHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := requestID(r.Header.Get(RequestIDHeader))
		r.Header.Set(RequestIDHeader, id) // forwarded to gRPC as x-request-id (gateway.go)
		w.Header().Set(RequestIDHeader, id)
		ctx := WithRequestID(r.Context(), id)
		trace.SpanFromContext(ctx).SetAttributes(attrRequestID.String(id))
		m := httpsnoop.CaptureMetricsFn(w, func(w http.ResponseWriter) { next.ServeHTTP(w, r.WithContext(ctx)) })

		s.metrics.observeHTTP(r, m)

		level := slog.LevelInfo
		if m.Code >= 500 {
			level = slog.LevelError
		}
		if !s.log.Enabled(ctx, level) {
			return
		}
		attrs := []any{"method", r.Method, "path", safePath(r.URL.Path), "status", m.Code, "bytes", m.Written,
			"duration_ms", float64(m.Duration.Microseconds()) / 1000, "client", r.RemoteAddr}
		if m.Code == http.StatusTooManyRequests {
			// One line per key per second, however many requests it sends.
			ok, n := s.rateLog.allow(rateLogKey("http", r.Header.Get("Authorization")), time.Now())
			if !ok {
				return
			}
			attrs = append(attrs, "count", n)
		}
		s.log.Log(ctx, level, "http", attrs...)
	})
}

// safePath is the request path for a log line: the query (where callback
// URLs and tokens could travel) is never included, and a path holding
// something that looks like a card number is withheld.
func safePath(p string) string {
	if containsPAN(p) {
		return "(withheld: the path contains a card number)"
	}
	if len(p) > 256 {
		return p[:256] + "…"
	}
	return p
}

// rateLogKey identifies an API key for rate-limited log lines without
// keeping the key itself: a truncated SHA-256 of what the caller sent.
func rateLogKey(kind, credential string) string {
	sum := sha256.Sum256([]byte(credential))
	return kind + ":" + string(sum[:12])
}

// logSampler lets through one log line per key per second and counts the
// lines it held back, so that a client hammering the rate limit cannot flood
// the log.
type logSampler struct {
	mu   sync.Mutex
	keys map[string]*sampled
}

type sampled struct {
	last time.Time
	held int
}

// allow reports whether a line for key may be written now and, if so, how
// many requests it stands for (itself and the ones held back since the last
// line).
func (l *logSampler) allow(key string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[string]*sampled{}
	}
	st, ok := l.keys[key]
	if ok && now.Sub(st.last) < time.Second {
		st.held++
		return false, 0
	}
	if !ok {
		if len(l.keys) > 10000 {
			for k, v := range l.keys {
				if now.Sub(v.last) > time.Minute {
					delete(l.keys, k)
				}
			}
		}
		st = &sampled{}
		l.keys[key] = st
	}
	n := st.held + 1
	st.last, st.held = now, 0
	return true, n
}
