package store_test

import (
	"context"
	"testing"

	"github.com/paymentd/paymentd/store"
	"github.com/paymentd/paymentd/store/storetest"
)

// TestStore runs the store's conformance suite on both backends: the
// embedded SQLite file always, PostgreSQL when PAYMENTD_TEST_POSTGRES names a
// server (and always under CI=true).
func TestStore(t *testing.T) {
	for _, backend := range []struct {
		name string
		db   func(testing.TB) string
	}{{"sqlite", storetest.SQLitePath}, {"postgres", storetest.PostgresDSN}} {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			storetest.Run(t, func(t *testing.T) *store.Store {
				s := open(t, backend.db(t))
				if got := s.Backend(); got != backend.name {
					t.Fatalf("store.Open of a %s database gave a %s store", backend.name, got)
				}
				return s
			})
		})
	}
}

// open opens the store at dsn and closes it when the test ends.
func open(t *testing.T, dsn string) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}
