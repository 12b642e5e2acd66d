package service

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// protojsonCompact is what the gateway's protojson writes for m, with the
// random spaces protojson adds to keep callers from depending on its bytes
// taken out.
func protojsonCompact(t *testing.T, m proto.Message) []byte {
	t.Helper()
	raw, err := restMarshaler().JSONPb.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// fillEveryField sets every field of m, and of the messages it holds, to a
// value that is not its default, so that protojson writes each with
// something in it. A field of a kind it does not know fails the test: the
// hand-written encoder must learn it too.
func fillEveryField(t *testing.T, m protoreflect.Message, seed int) {
	t.Helper()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		n := seed + i + 1
		switch {
		case f.IsMap():
			mp := m.Mutable(f).Map()
			mp.Set(protoreflect.ValueOfString("k\"2").MapKey(), protoreflect.ValueOfString("v\n2"))
			mp.Set(protoreflect.ValueOfString("k1").MapKey(), protoreflect.ValueOfString("v1 ✓"))
		case f.IsList():
			t.Fatalf("%s is a list: teach jsonOut.payment to write it", f.FullName())
		case f.Kind() == protoreflect.StringKind:
			m.Set(f, protoreflect.ValueOfString(string(f.Name())+` "é\t`+strings.Repeat("x", n)))
		case f.Kind() == protoreflect.Int64Kind:
			m.Set(f, protoreflect.ValueOfInt64(int64(n)*1_000_003))
		case f.Kind() == protoreflect.BoolKind:
			m.Set(f, protoreflect.ValueOfBool(true))
		case f.Kind() == protoreflect.MessageKind && f.Message().FullName() == "google.protobuf.Timestamp":
			m.Set(f, protoreflect.ValueOfMessage((&timestamppb.Timestamp{Seconds: 1_700_000_000 + int64(n)*3600, Nanos: int32(n) * 1_000_000}).ProtoReflect()))
		case f.Kind() == protoreflect.MessageKind:
			fillEveryField(t, m.Mutable(f).Message(), n*10)
		default:
			t.Fatalf("%s is a %v: teach jsonOut.payment to write it", f.FullName(), f.Kind())
		}
	}
}

// TestPaymentJSONMatchesProtojson holds the hand-written REST encoding of
// payments to protojson's, byte for byte once protojson's random spaces
// are taken out: with every field set (a field added to the proto and not
// to the encoder fails here), with fields unset, with strings that need
// escaping and timestamps of every precision, and for pages of payments.
func TestPaymentJSONMatchesProtojson(t *testing.T) {
	same := func(name string, m proto.Message) {
		t.Helper()
		got, err := restMarshaler().Marshal(m)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := protojsonCompact(t, m); !bytes.Equal(got, want) {
			t.Fatalf("%s:\n got %s\nwant %s", name, got, want)
		}
		var p pb.Payment
		if pm, ok := m.(*pb.Payment); ok {
			if err := protojson.Unmarshal(got, &p); err != nil || !proto.Equal(&p, pm) {
				t.Fatalf("%s: protojson reads back %v (%v); want the payment", name, &p, err)
			}
		}
	}

	full := &pb.Payment{}
	fillEveryField(t, full.ProtoReflect(), 0)
	same("every field set", full)
	same("no field set", &pb.Payment{})
	same("empty customer", &pb.Payment{Id: "pay_1", Customer: &pb.Customer{}})

	rng := rand.New(rand.NewPCG(1, 2))
	runes := []rune("aZ09 \"\\/\b\f\n\r\t\x00\x01\x1f\x7f<>&'é€ 😀\u2028\u2029\ufeff")
	str := func() string {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteRune(runes[rng.IntN(len(runes))])
		}
		return b.String()
	}
	nanos := []int32{0, 1, 999, 1000, 120_000, 1_000_000, 5_000_000, 123_456_789, 999_999_999}
	ts := func() *timestamppb.Timestamp {
		if rng.IntN(4) == 0 {
			return nil
		}
		return &timestamppb.Timestamp{Seconds: rng.Int64N(maxJSONSeconds-minJSONSeconds) + minJSONSeconds, Nanos: nanos[rng.IntN(len(nanos))]}
	}
	ints := []int64{0, 1, -1, 2000, math.MaxInt64, math.MinInt64}
	var page []*pb.Payment
	for i := range 500 {
		p := &pb.Payment{Id: str(), Amount: ints[rng.IntN(len(ints))], Currency: str(), Status: str(), CaptureMethod: str(),
			PaymentMethod: str(), AmountCapturable: rng.Int64(), AmountCaptured: ints[rng.IntN(len(ints))], AmountRefunded: rng.Int64N(10),
			Description: str(), AgentId: str(), Livemode: rng.IntN(2) == 0, Provider: str(), FailureCode: str(), FailureMessage: str(),
			CreatedAt: ts(), UpdatedAt: ts(), PendingOperation: str(), PendingAmount: -rng.Int64()}
		if rng.IntN(2) == 0 {
			p.Customer = &pb.Customer{Name: str(), Email: str(), Id: str()}
		}
		for range rng.IntN(4) {
			if p.Metadata == nil {
				p.Metadata = map[string]string{}
			}
			p.Metadata[str()] = str()
		}
		same("random payment", p)
		if i%100 == 0 {
			same("page", &pb.ListPaymentsResponse{Payments: page, NextPageToken: str()})
		}
		page = append(page, p)
		if len(page) > 5 {
			page = page[1:]
		}
	}
	same("empty page", &pb.ListPaymentsResponse{})
}

// TestPaymentJSONRefusesWhatProtojsonRefuses: a payment protojson cannot
// write (text that is not UTF-8, a timestamp past year 9999) gets
// protojson's error, not a body.
func TestPaymentJSONRefusesWhatProtojsonRefuses(t *testing.T) {
	for name, p := range map[string]*pb.Payment{
		"invalid UTF-8":          {Id: "pay_1", Description: "a\xffb"},
		"invalid UTF-8 in a key": {Id: "pay_1", Metadata: map[string]string{"\xc3": "v"}},
		"timestamp past 9999":    {Id: "pay_1", CreatedAt: &timestamppb.Timestamp{Seconds: maxJSONSeconds + 1}},
		"negative nanos":         {Id: "pay_1", UpdatedAt: &timestamppb.Timestamp{Nanos: -1}},
	} {
		if b, err := restMarshaler().Marshal(p); err == nil {
			t.Errorf("%s: wrote %s; want protojson's error", name, b)
		}
		if b, err := restMarshaler().Marshal(&pb.ListPaymentsResponse{Payments: []*pb.Payment{{Id: "pay_0"}, p}}); err == nil {
			t.Errorf("%s, in a page: wrote %s; want protojson's error", name, b)
		}
	}
}

// BenchmarkPaymentJSON is the REST encoding of one payment and of a page of
// 20, by hand (restMarshaler) and by protojson.
func BenchmarkPaymentJSON(b *testing.B) {
	p := &pb.Payment{Id: "pay_01JEXAMPLE0000000000000000", Amount: 2000, Currency: "USD", Status: "succeeded", CaptureMethod: "automatic",
		PaymentMethod: "pm_card_visa", AmountCaptured: 2000, Description: "bench", Provider: "sandbox",
		Metadata:  map[string]string{"order_id": "6735"},
		CreatedAt: timestamppb.Now(), UpdatedAt: timestamppb.Now()}
	page := &pb.ListPaymentsResponse{NextPageToken: "tok_0123456789abcdef"}
	for range 20 {
		page.Payments = append(page.Payments, p)
	}
	m := restMarshaler()
	for name, marshal := range map[string]func(any) ([]byte, error){"hand": m.Marshal, "protojson": m.JSONPb.Marshal} {
		for what, v := range map[string]any{"payment": p, "page20": page} {
			b.Run(what+"/"+name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := marshal(v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
