package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"

	"github.com/paymentd/paymentd/store"
)

// testAccountsAndKeys writes accounts, their brand and API keys (by hash),
// finds a key by its hash and revokes it once.
func testAccountsAndKeys(t *testing.T, s *store.Store) {
	ctx := context.Background()
	hash := sha256.Sum256([]byte("sk_test_not_a_real_key"))
	var key *store.APIKey
	mustWrite(t, s, func(tx *store.Tx) error {
		for _, id := range []string{"acct_b", "acct_a"} {
			if err := tx.InsertAccount(&store.Account{ID: id, Name: "name " + id, Created: tx.Now()}); err != nil {
				return err
			}
		}
		key = &store.APIKey{ID: "key_1", AccountID: "acct_a", Hash: hash[:], Hint: "_key", Scopes: []string{"payments:write", "refunds:write"},
			Created: tx.Now()}
		return tx.InsertAPIKey(key)
	})
	if err := s.Write(ctx, func(tx *store.Tx) error { return tx.InsertAccount(&store.Account{ID: "acct_a", Created: tx.Now()}) }); err == nil {
		t.Errorf("inserting acct_a twice succeeded; want an error")
	}
	brand := store.Brand{DisplayName: "Shop A", AccentColor: "#112233", SupportEmail: "help@a.example"}
	mustWrite(t, s, func(tx *store.Tx) error { return tx.UpdateAccountBrand("acct_a", brand) })
	if err := s.Write(ctx, func(tx *store.Tx) error { return tx.UpdateAccountBrand("acct_zz", brand) }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UpdateAccountBrand of an unknown account = %v; want ErrNotFound", err)
	}
	a, err := s.Account(ctx, "acct_a")
	if err != nil || a.Name != "name acct_a" || a.Brand != brand {
		t.Errorf("Account(acct_a) = %+v, %v; want its name and brand %+v", a, err, brand)
	}
	if _, err := s.Account(ctx, "acct_zz"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Account(acct_zz) = %v; want ErrNotFound", err)
	}
	accts, err := s.Accounts(ctx)
	if err != nil || len(accts) != 2 || accts[0].ID != "acct_a" || accts[1].ID != "acct_b" {
		t.Errorf("Accounts = %v, %v; want acct_a, acct_b", accts, err)
	}
	if got, err := s.APIKeyByHash(ctx, hash[:]); err != nil || !reflect.DeepEqual(got, key) {
		t.Errorf("APIKeyByHash = %+v, %v; want %+v", got, err, key)
	}
	other := sha256.Sum256([]byte("another"))
	if _, err := s.APIKeyByHash(ctx, other[:]); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("APIKeyByHash of an unknown hash = %v; want ErrNotFound", err)
	}
	mustWrite(t, s, func(tx *store.Tx) error { return tx.RevokeAPIKey("key_1") })
	if err := s.Write(ctx, func(tx *store.Tx) error { return tx.RevokeAPIKey("key_1") }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("revoking key_1 twice = %v; want ErrNotFound", err)
	}
	keys, err := s.ListAPIKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].Revoked.IsZero() {
		t.Errorf("ListAPIKeys = %+v, %v; want key_1, revoked", keys, err)
	}
}

// testOperatorItems adds items once per object and kind, counts and lists
// the open ones and resolves them.
func testOperatorItems(t *testing.T, s *store.Store) {
	ctx := context.Background()
	add := func(id, object, kind string) bool {
		t.Helper()
		var added bool
		mustWrite(t, s, func(tx *store.Tx) error {
			var err error
			added, err = tx.AddOperatorItem(&store.OperatorItem{ID: id, AccountID: "acct_1", ObjectID: object, Kind: kind, Message: "look at " + object})
			return err
		})
		return added
	}
	if !add("opi_1", "pay_1", "payment_unsettled_no_status_endpoint") || !add("opi_2", "pay_2", "payment_unsettled_no_status_endpoint") {
		t.Fatal("AddOperatorItem did not add a new item")
	}
	if add("opi_3", "pay_1", "payment_unsettled_no_status_endpoint") {
		t.Errorf("a second item of the same kind for pay_1 was added; want it refused")
	}
	if n, err := s.OpenOperatorItems(ctx); err != nil || n != 2 {
		t.Errorf("OpenOperatorItems = %d, %v; want 2", n, err)
	}
	// Items belong to the object's account and mode: the same object id in
	// another account (or mode) resolves nothing.
	mustWrite(t, s, func(tx *store.Tx) error { return tx.ResolveOperatorItems("acct_2", false, "pay_1") })
	mustWrite(t, s, func(tx *store.Tx) error { return tx.ResolveOperatorItems("acct_1", true, "pay_1") })
	if n, err := s.OpenOperatorItems(ctx); err != nil || n != 2 {
		t.Errorf("OpenOperatorItems after resolving pay_1 of another account and mode = %d, %v; want still 2", n, err)
	}
	mustWrite(t, s, func(tx *store.Tx) error { return tx.ResolveOperatorItems("acct_1", false, "pay_1") })
	open, err := s.OperatorItems(ctx, false)
	if err != nil || len(open) != 1 || open[0].ID != "opi_2" || open[0].Message != "look at pay_2" {
		t.Errorf("open OperatorItems = %+v, %v; want opi_2", open, err)
	}
	all, err := s.OperatorItems(ctx, true)
	if err != nil || len(all) != 2 || all[0].Resolved.IsZero() == all[1].Resolved.IsZero() {
		t.Errorf("all OperatorItems = %+v, %v; want opi_1 resolved and opi_2 open", all, err)
	}
}
