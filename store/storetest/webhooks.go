package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/paymentd/paymentd/store"
)

// testWebhookEndpoints registers, lists, rotates and deletes endpoints; the
// targets seen inside a write follow every change, and a deleted endpoint
// is still readable but no longer listed or targeted.
func testWebhookEndpoints(t *testing.T, s *store.Store) {
	ctx := context.Background()
	now := time.UnixMicro(time.Now().UnixMicro()).UTC()
	e1 := &store.WebhookEndpoint{ID: "we_1", AccountID: "acct_1", URL: "https://a.example/hook", EventTypes: []string{"payment.*", "refund.created"},
		Description: "shop", Secret: "whsec_one", Created: now}
	e2 := &store.WebhookEndpoint{ID: "we_2", AccountID: "acct_1", URL: "https://b.example/hook", Secret: "whsec_two", Created: now}
	targets := func() []store.WebhookTarget {
		t.Helper()
		var got []store.WebhookTarget
		mustWrite(t, s, func(tx *store.Tx) error {
			var err error
			got, err = tx.WebhookTargets("acct_1", false)
			return err
		})
		return got
	}
	if got := targets(); len(got) != 0 {
		t.Errorf("targets before any endpoint = %v; want none", got)
	}
	mustWrite(t, s, func(tx *store.Tx) error {
		if err := tx.InsertWebhookEndpoint(e1); err != nil {
			return err
		}
		return tx.InsertWebhookEndpoint(e2)
	})
	want := []store.WebhookTarget{{EndpointID: "we_1", URL: e1.URL, EventTypes: e1.EventTypes}, {EndpointID: "we_2", URL: e2.URL}}
	if got := targets(); !reflect.DeepEqual(got, want) {
		t.Errorf("targets = %+v; want %+v", got, want)
	}
	if got, err := s.GetWebhookEndpoint(ctx, "acct_1", false, "we_1"); err != nil || !reflect.DeepEqual(got, e1) {
		t.Errorf("GetWebhookEndpoint(we_1) = %+v, %v; want %+v", got, err, e1)
	}
	expires := now.Add(time.Hour)
	mustWrite(t, s, func(tx *store.Tx) error {
		return tx.RotateWebhookEndpointSecret("acct_1", false, "we_1", "whsec_new", expires)
	})
	got, err := s.GetWebhookEndpoint(ctx, "acct_1", false, "we_1")
	if err != nil || got.Secret != "whsec_new" || got.PreviousSecret != "whsec_one" || !got.PreviousExpires.Equal(expires) {
		t.Errorf("after rotation: %+v, %v; want secret whsec_new, previous whsec_one until %v", got, err, expires)
	}
	mustWrite(t, s, func(tx *store.Tx) error {
		if n, err := tx.CountWebhookEndpoints("acct_1", false); err != nil || n != 2 {
			return errors.Join(err, errors.New("CountWebhookEndpoints before the delete is not 2"))
		}
		return tx.DeleteWebhookEndpoint("acct_1", false, "we_2")
	})
	if err := s.Write(ctx, func(tx *store.Tx) error { return tx.DeleteWebhookEndpoint("acct_1", false, "we_2") }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deleting we_2 twice = %v; want ErrNotFound", err)
	}
	if got := targets(); !reflect.DeepEqual(got, want[:1]) {
		t.Errorf("targets after deleting we_2 = %+v; want %+v", got, want[:1])
	}
	list, err := s.ListWebhookEndpoints(ctx, store.PageFilter{AccountID: "acct_1", Limit: 10})
	if err != nil || len(list) != 1 || list[0].ID != "we_1" {
		t.Errorf("ListWebhookEndpoints = %v, %v; want we_1 only", list, err)
	}
	if d, err := s.GetWebhookEndpoint(ctx, "acct_1", false, "we_2"); err != nil || d.Deleted.IsZero() {
		t.Errorf("GetWebhookEndpoint(we_2) after delete = %+v, %v; want it with its deletion time", d, err)
	}
	if _, err := s.GetWebhookEndpoint(ctx, "acct_1", true, "we_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetWebhookEndpoint in the other mode = %v; want ErrNotFound", err)
	}
}

// testWebhookSecrets creates an account's default secret once (a second
// Ensure keeps the first) and rotates it, keeping the old one as previous.
func testWebhookSecrets(t *testing.T, s *store.Store) {
	ctx := context.Background()
	if _, err := s.GetWebhookSecret(ctx, "acct_1", false); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetWebhookSecret before any = %v; want ErrNotFound", err)
	}
	for _, secret := range []string{"whsec_first", "whsec_second"} {
		mustWrite(t, s, func(tx *store.Tx) error {
			got, err := tx.EnsureWebhookSecret("acct_1", false, secret)
			if err == nil && got.Secret != "whsec_first" {
				err = errors.New("EnsureWebhookSecret replaced the first secret with " + got.Secret)
			}
			return err
		})
	}
	expires := time.UnixMicro(time.Now().Add(time.Hour).UnixMicro()).UTC()
	mustWrite(t, s, func(tx *store.Tx) error {
		_, err := tx.RotateWebhookSecret("acct_1", false, "whsec_rotated", expires)
		return err
	})
	got, err := s.GetWebhookSecret(ctx, "acct_1", false)
	if err != nil || got.Secret != "whsec_rotated" || got.PreviousSecret != "whsec_first" || !got.PreviousExpires.Equal(expires) {
		t.Errorf("after rotation: %+v, %v; want whsec_rotated, previous whsec_first until %v", got, err, expires)
	}
	mustWrite(t, s, func(tx *store.Tx) error {
		_, err := tx.RotateWebhookSecret("acct_1", true, "whsec_live", expires) // none yet: rotation creates it
		return err
	})
	if got, err := s.GetWebhookSecret(ctx, "acct_1", true); err != nil || got.Secret != "whsec_live" || got.PreviousSecret != "" {
		t.Errorf("live secret = %+v, %v; want whsec_live without a previous one", got, err)
	}
}
