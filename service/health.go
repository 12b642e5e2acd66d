package service

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// BeginShutdown is the first step of a graceful shutdown: from this moment
// /readyz answers 503 and the gRPC health service reports NOT_SERVING, so
// that load balancers stop sending new work while calls in flight finish.
// Both switch in this one call, gRPC health first, so that whoever sees
// /readyz fail finds gRPC health already NOT_SERVING.
func (s *Service) BeginShutdown() {
	if hs := s.health.Load(); hs != nil {
		hs.Shutdown()
	}
	s.draining.Store(true)
}

// Draining reports whether BeginShutdown was called.
func (s *Service) Draining() bool { return s.draining.Load() }

// healthz is liveness: the process is up and its HTTP server serves. It
// checks nothing else on purpose, so that a slow database never gets a
// healthy process restarted.
func (s *Service) healthz(w http.ResponseWriter, _ *http.Request) {
	writeProbe(w, http.StatusOK, map[string]any{"status": "ok"})
}

// readyCheck is one part of readiness.
type readyCheck struct {
	Status  string `json:"status"` // ok or failing
	Message string `json:"message,omitempty"`
}

// readyz is readiness: the store answers a write-path probe (the writer
// takes the write lock and commits), every migration is applied, and the
// server is not shutting down. Any failing part makes it 503 and is named.
func (s *Service) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]readyCheck{}
	ok := true
	fail := func(name, msg string) {
		checks[name] = readyCheck{Status: "failing", Message: msg}
		ok = false
	}
	if s.Draining() {
		fail("shutdown", "the server is shutting down; calls in flight are finishing")
	} else {
		checks["shutdown"] = readyCheck{Status: "ok"}
	}
	if err := s.store.ProbeWrite(ctx); err != nil {
		fail("store", "the database did not take a write within 2s")
	} else {
		checks["store"] = readyCheck{Status: "ok"}
	}
	if pending, err := s.store.PendingMigrations(ctx); err != nil {
		fail("migrations", "the applied migrations could not be read")
	} else if len(pending) > 0 {
		fail("migrations", "migrations not applied: "+strings.Join(pending, ", ")+"; run `paymentd migrate --db PATH`")
	} else {
		checks["migrations"] = readyCheck{Status: "ok"}
	}
	code, status := http.StatusOK, "ok"
	if !ok {
		code, status = http.StatusServiceUnavailable, "unavailable"
	}
	writeProbe(w, code, map[string]any{"status": status, "checks": checks})
}

func writeProbe(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
