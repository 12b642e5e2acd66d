package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/paymentd/paymentd/store"
)

// testEvents writes events of several types and objects and reads them by
// id, by object and in filtered pages, scoped by account and mode.
func testEvents(t *testing.T, s *store.Store) {
	ctx := context.Background()
	var all []*store.Event
	mustWrite(t, s, func(tx *store.Tx) error {
		for i, typ := range []string{"payment.created", "payment.succeeded", "refund.created", "payment.created"} {
			e := &store.Event{ID: fmt.Sprintf("evt_%02d", i), AccountID: "acct_1", Type: typ, ObjectID: fmt.Sprintf("pay_%d", i%2),
				Data: []byte{byte(i), 0, 0xff}, Created: tx.Now()}
			if err := tx.InsertEvent(e); err != nil {
				return err
			}
			all = append(all, e)
		}
		return tx.InsertEvent(&store.Event{ID: "evt_live", AccountID: "acct_1", Livemode: true, Type: "payment.created",
			ObjectID: "pay_0", Data: []byte("x"), Created: tx.Now()})
	})
	if got, err := s.GetEvent(ctx, "acct_1", false, "evt_01"); err != nil || !reflect.DeepEqual(got, all[1]) {
		t.Errorf("GetEvent(evt_01) = %+v, %v; want %+v", got, err, all[1])
	}
	if _, err := s.GetEvent(ctx, "acct_2", false, "evt_01"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetEvent of another account's event = %v; want ErrNotFound", err)
	}
	byObject, err := s.EventsFor(ctx, "acct_1", false, "pay_0")
	if err != nil || len(byObject) != 2 || byObject[0].ID != "evt_00" || byObject[1].ID != "evt_02" {
		t.Errorf("EventsFor(pay_0) = %v, %v; want evt_00, evt_02 (not the live one)", ids(byObject), err)
	}
	for _, tc := range []struct {
		f    store.EventFilter
		want []string
	}{
		{store.EventFilter{PageFilter: store.PageFilter{AccountID: "acct_1", Limit: 10}}, []string{"evt_03", "evt_02", "evt_01", "evt_00"}},
		{store.EventFilter{PageFilter: store.PageFilter{AccountID: "acct_1", Limit: 2}}, []string{"evt_03", "evt_02"}},
		{store.EventFilter{PageFilter: store.PageFilter{AccountID: "acct_1", Limit: 10, Before: "evt_02"}}, []string{"evt_01", "evt_00"}},
		{store.EventFilter{PageFilter: store.PageFilter{AccountID: "acct_1", Limit: 10}, Type: "payment.*"}, []string{"evt_03", "evt_01", "evt_00"}},
		{store.EventFilter{PageFilter: store.PageFilter{AccountID: "acct_1", Limit: 10}, Type: "payment.created"}, []string{"evt_03", "evt_00"}},
		{store.EventFilter{PageFilter: store.PageFilter{AccountID: "acct_1", Limit: 10}, ObjectID: "pay_1"}, []string{"evt_03", "evt_01"}},
		{store.EventFilter{PageFilter: store.PageFilter{AccountID: "acct_1", Livemode: true, Limit: 10}}, []string{"evt_live"}},
	} {
		got, err := s.ListEvents(ctx, tc.f)
		if err != nil || !slices.Equal(ids(got), tc.want) {
			t.Errorf("ListEvents(%+v) = %v, %v; want %v", tc.f, ids(got), err, tc.want)
		}
	}
}

func ids(events []*store.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.ID)
	}
	return out
}

// testDeliveries queues deliveries of an event, finds them due, records
// attempts and updates them; an update from a stale attempt count changes
// nothing and is ErrStale (a lost optimistic update, not a taken value).
func testDeliveries(t *testing.T, s *store.Store) {
	ctx := context.Background()
	now := time.UnixMicro(time.Now().UnixMicro()).UTC()
	var a, b *store.Delivery
	mustWrite(t, s, func(tx *store.Tx) error {
		if err := tx.InsertEvent(&store.Event{ID: "evt_1", AccountID: "acct_1", Type: "payment.succeeded", ObjectID: "pay_1",
			Data: []byte("d"), Created: tx.Now()}); err != nil {
			return err
		}
		a = &store.Delivery{ID: "whd_a", AccountID: "acct_1", EventID: "evt_1", EndpointID: "we_1", URL: "https://a.example/hook",
			Status: store.DeliveryPending, NextAttempt: now.Add(-time.Second), RetryFrom: now, Created: now}
		b = &store.Delivery{ID: "whd_b", AccountID: "acct_1", EventID: "evt_1", URL: "https://shop.example/cb",
			Status: store.DeliveryPending, NextAttempt: now.Add(time.Hour), RetryFrom: now, Created: now}
		if err := tx.InsertDelivery(a); err != nil {
			return err
		}
		return tx.InsertDelivery(b)
	})
	due, err := s.DueDeliveries(ctx, now, 10)
	if err != nil || len(due) != 1 || !reflect.DeepEqual(due[0], a) {
		t.Errorf("DueDeliveries = %v, %v; want only whd_a as written %+v", due, err, a)
	}
	if next, err := s.NextDeliveryDue(ctx); err != nil || !next.Equal(a.NextAttempt) {
		t.Errorf("NextDeliveryDue = %v, %v; want %v", next, err, a.NextAttempt)
	}
	if pending, oldest, err := s.DeliveryBacklog(ctx); err != nil || pending != 2 || oldest.IsZero() {
		t.Errorf("DeliveryBacklog = %d, %v, %v; want 2 pending", pending, oldest, err)
	}

	attempt := &store.DeliveryAttempt{AccountID: "acct_1", EventID: "evt_1", DeliveryID: "whd_a", N: 1, URL: a.URL,
		Attempted: now, HTTPStatus: 200, Latency: 1500 * time.Microsecond, Response: "ok"}
	mustWrite(t, s, func(tx *store.Tx) error {
		d, err := tx.GetDelivery("acct_1", false, "whd_a")
		if err != nil {
			return err
		}
		prev := d.Attempts
		d.Status, d.Attempts, d.LastAttempt, d.LastCode = store.DeliveryDelivered, prev+1, now, 200
		if err := tx.InsertDeliveryAttempt(attempt); err != nil {
			return err
		}
		return tx.UpdateDelivery(d, prev)
	})
	stale := *a // read before the attempt above: attempts 0
	stale.Status, stale.Attempts, stale.LastCode = store.DeliveryFailed, 1, 500
	if err := s.Write(ctx, func(tx *store.Tx) error { return tx.UpdateDelivery(&stale, 0) }); !errors.Is(err, store.ErrStale) || errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateDelivery from a stale attempt count = %v; want ErrStale, not ErrConflict", err)
	}
	got, err := s.DeliveriesFor(ctx, "acct_1", false, "evt_1")
	if err != nil || len(got) != 2 || got[0].Status != store.DeliveryDelivered || got[0].Attempts != 1 || got[0].LastCode != 200 ||
		!got[0].NextAttempt.IsZero() || got[1].Status != store.DeliveryPending {
		t.Errorf("DeliveriesFor(evt_1) = %+v, %v; want whd_a delivered after 1 attempt, whd_b pending", got, err)
	}
	attempts, err := s.AttemptsFor(ctx, "acct_1", false, "evt_1")
	if err != nil || len(attempts) != 1 || !reflect.DeepEqual(attempts[0], attempt) {
		t.Errorf("AttemptsFor(evt_1) = %+v, %v; want [%+v]", attempts, err, attempt)
	}
	statuses, err := s.DeliveryStatuses(ctx, "acct_1", false, []string{"evt_1", "evt_none"})
	if st := statuses["evt_1"]; err != nil || len(statuses) != 1 || !slices.Contains(st, "delivered") || !slices.Contains(st, "pending") {
		t.Errorf("DeliveryStatuses = %v, %v; want evt_1: delivered and pending", statuses, err)
	}
	if due, err := s.DueDeliveries(ctx, now, 10); err != nil || len(due) != 0 {
		t.Errorf("DueDeliveries after whd_a was delivered = %v, %v; want none", due, err)
	}
}
