package service

import (
	"bytes"
	"errors"
	"testing"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// TestStrictJSONDecode checks the REST body decoder on bodies a client
// sends: a good one decodes; a decimal or exponent number, an unknown
// field and a mistyped field are refused naming the field.
func TestStrictJSONDecode(t *testing.T) {
	m := restMarshaler()
	var ok pb.CreatePaymentRequest
	if err := m.NewDecoder(bytes.NewReader([]byte(`{"amount":2000,"currency":"USD","payment_method":"pm_card_visa","metadata":{"k":"1.5e3"},"customer":{"name":"true"}}`))).Decode(&ok); err != nil {
		t.Fatalf("a good body: %v", err)
	}
	if ok.Amount != 2000 || ok.Metadata["k"] != "1.5e3" || ok.Customer.GetName() != "true" {
		t.Errorf("decoded %v", &ok)
	}
	for body, want := range map[string]bool{
		`{"amount":2000,"description":"a \"1.5\" e3 \\","currency":"USD"}`: false,
		`{"amount":-2.5}`: true, `[1,2E3]`: true, `{"a":true,"b":false,"c":null,"d":-0}`: false,
	} {
		if got := hasFractionalNumber([]byte(body)); got != want {
			t.Errorf("hasFractionalNumber(%s) = %v; want %v", body, got, want)
		}
	}
	for _, c := range []struct{ body, param, code string }{
		{`{"amount":20.00,"currency":"USD"}`, "amount", "amount_invalid"},
		{`{"amount":2e3,"currency":"USD"}`, "amount", "amount_invalid"},
		{`{"amount":2000,"customer":{"name":"x"},"metadata":{"a":"b"},"currency":"USD","agent_id":1.5}`, "agent_id", "invalid_request_body"},
		{`{"amount":2000,"amonut":1}`, "amonut", "invalid_request_body"},
		{`{"amount":"many"}`, "amount", "amount_invalid"},
		{`{"customer":{"name":7}}`, "customer.name", "invalid_request_body"},
	} {
		var req pb.CreatePaymentRequest
		err := m.NewDecoder(bytes.NewReader([]byte(c.body))).Decode(&req)
		var ge *gatewayError
		if !errors.As(err, &ge) || ge.Param != c.param || ge.Code != c.code {
			t.Errorf("%s: %v; want a %s error naming %s", c.body, err, c.code, c.param)
		}
	}
}

// BenchmarkStrictJSONDecode measures decoding a typical CreatePayment body
// over REST (the checks and protojson), which every REST create pays.
func BenchmarkStrictJSONDecode(b *testing.B) {
	m := restMarshaler()
	body := []byte(`{"amount":2000,"currency":"USD","payment_method":"pm_card_visa","description":"bench","metadata":{"order_id":"1234"}}`)
	b.ReportAllocs()
	for b.Loop() {
		var req pb.CreatePaymentRequest
		if err := m.NewDecoder(bytes.NewReader(body)).Decode(&req); err != nil {
			b.Fatal(err)
		}
	}
}
