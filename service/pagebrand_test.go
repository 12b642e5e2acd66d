package service

import (
	"context"
	"testing"

	"github.com/paymentd/paymentd/store"
)

// TestCheckedBrand checks brand settings as stored, and as the payment
// page gets them: a stored value that no longer passes shows no brand at all.
func TestCheckedBrand(t *testing.T) {
	b, err := CheckBrand(context.Background(), store.Brand{AccentColor: " #AbC ", DisplayName: "  Tea  "}, BrandChecks{})
	if err != nil || b.AccentColor != "#aabbcc" || b.DisplayName != "Tea" {
		t.Errorf("CheckBrand: %+v %v; want #aabbcc and the name trimmed", b, err)
	}
	name, brand := checkedBrand(&store.Account{Name: "ops", Brand: store.Brand{DisplayName: "Tea", AccentColor: "red"}})
	if name != "ops" || brand != (store.Brand{}) {
		t.Errorf("checked brand of a bad stored colour: %q %+v; want the account name and no brand", name, brand)
	}
	if name, brand := checkedBrand(nil); name != "" || brand != (store.Brand{}) {
		t.Errorf("checked brand of no account: %q %+v; want none", name, brand)
	}
}
