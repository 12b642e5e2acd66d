package service

import (
	"testing"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestUnknownFieldNested: a field number the API does not have, or a known
// field sent with another wire type, is found at the top of a request and
// inside a message field of it (named by its path); a request without
// either passes.
func TestUnknownFieldNested(t *testing.T) {
	withUnknown := func(m protoreflect.Message, num protowire.Number) {
		m.SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), 99))
	}
	nameNum := (&pb.Customer{}).ProtoReflect().Descriptor().Fields().ByName("name").Number()
	for _, c := range []struct {
		name        string
		build       func() *pb.CreateInvoiceRequest
		code, param string
	}{
		{"clean", func() *pb.CreateInvoiceRequest {
			return &pb.CreateInvoiceRequest{Amount: 100, Customer: &pb.Customer{Name: "Ann"}, Metadata: map[string]string{"k": "v"}}
		}, "", ""},
		{"top-level field 999", func() *pb.CreateInvoiceRequest {
			r := &pb.CreateInvoiceRequest{Amount: 100}
			withUnknown(r.ProtoReflect(), 999)
			return r
		}, "parameter_unknown", ""},
		{"customer field 999", func() *pb.CreateInvoiceRequest {
			r := &pb.CreateInvoiceRequest{Customer: &pb.Customer{Name: "Ann"}}
			withUnknown(r.Customer.ProtoReflect(), 999)
			return r
		}, "parameter_unknown", ""},
		{"customer.name as a number", func() *pb.CreateInvoiceRequest {
			r := &pb.CreateInvoiceRequest{Customer: &pb.Customer{}}
			withUnknown(r.Customer.ProtoReflect(), nameNum)
			return r
		}, "invalid_request_body", "customer.name"},
	} {
		e, found := unknownField(c.build().ProtoReflect())
		switch {
		case c.code == "" && found:
			t.Errorf("%s: refused (%v)", c.name, e)
		case c.code != "" && (!found || e.Code != c.code || e.Param != c.param):
			t.Errorf("%s: %v (found %v); want %s, param %q", c.name, e, found, c.code, c.param)
		}
	}
}
