package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
	"github.com/paymentd/paymentd/store/storetest"
)

// plantedPANs are the forms a card number was seen to slip in by: each is
// planted in every string field of every create call.
var plantedPANs = []string{
	"4111111111111111",
	"4111 1111 1111 1111",
	"4111-1111-1111-1111",
	"4111.1111.1111.1111",
	"4111/1111/1111/1111",
	"4111_1111_1111_1111",
	"4111,1111,1111,1111",
	"4111\t1111\t1111\t1111",
	"4111  1111  1111  1111",
	"4111 - 1111 - 1111 - 1111",
	"4111\u00a01111\u00a01111\u00a01111",
	"4111\u200b1111\u200b1111\u200b1111",
	"4111\u20601111\u20601111\u20601111",
	"４１１１１１１１１１１１１１１１",
	"٤١١١١١١١١١١١١١١١",
	"4111%201111%201111%201111",
	"%34%31%31%31111111111111",
	"card 5555555555554444 exp 12/25",
	"3782-822463-10005",
	"deadbeef4111111111111111",
	"4111|1111|1111|1111",
	"4111·1111·1111·1111",
	"⑷⑴⑴⑴⑴⑴⑴⑴⑴⑴⑴⑴⑴⑴⑴⑴", // parenthesized digits: NFKC "(4)"
	"⒋⒈⒈⒈⒈⒈⒈⒈⒈⒈⒈⒈⒈⒈⒈⒈", // digits with a full stop: NFKC "4."
}

// TestNoCardNumberStoredOrLogged plants every form in every string field
// (map keys and values too) of every create call, over gRPC and REST, and
// in the Idempotency-Key; every call must be refused, and neither the
// database, its WAL nor the server's log may then hold a card number read
// with the detector's normalization.
func TestNoCardNumberStoredOrLogged(t *testing.T) {
	srv := startServer(t, storetest.SQLitePath(t)) // SQLite only: it scans the database file and its WAL
	ctx := withKey(t.Context(), srv.key)
	pay := mustCreate(t, ctx, srv.payments, visa(5000))
	inv := pb.NewInvoicesServiceClient(srv.conn)
	po := pb.NewPayoutsServiceClient(srv.conn)
	ev := pb.NewEventsServiceClient(srv.conn)

	type target struct {
		path string
		tmpl proto.Message
		call func(context.Context, proto.Message) error
	}
	targets := []target{
		{"/v1/payments", &pb.CreatePaymentRequest{Amount: 1000, Currency: "USD", PaymentMethod: "pm_card_visa", Description: "d",
			Metadata: map[string]string{"k": "v"}, Customer: &pb.Customer{Name: "Jane", Email: "jane@example.com", Id: "c1"}},
			func(ctx context.Context, m proto.Message) error {
				_, err := srv.payments.CreatePayment(ctx, m.(*pb.CreatePaymentRequest))
				return err
			}},
		{"/v1/refunds", &pb.CreateRefundRequest{PaymentId: pay.Id, Amount: proto.Int64(100), Reason: "requested_by_customer", Metadata: map[string]string{"k": "v"}},
			func(ctx context.Context, m proto.Message) error {
				_, err := srv.payments.CreateRefund(ctx, m.(*pb.CreateRefundRequest))
				return err
			}},
		{"/v1/invoices", &pb.CreateInvoiceRequest{Amount: 1000, Currency: "USD", TransactionReference: "scan-1", CallbackUrl: "https://shop.example/cb",
			Description: "d", Metadata: map[string]string{"k": "v"}, Customer: &pb.Customer{Name: "Jane", Email: "jane@example.com", Id: "c1"}},
			func(ctx context.Context, m proto.Message) error {
				_, err := inv.CreateInvoice(ctx, m.(*pb.CreateInvoiceRequest))
				return err
			}},
		{"/v1/payouts", &pb.CreatePayoutRequest{PayoutMethodId: "us_bank", Amount: 1000, RecipientName: "Jane Doe", RecipientAccount: "000123456789",
			TransactionReference: "scan-1", Description: "d", CallbackUrl: "https://shop.example/cb", Metadata: map[string]string{"k": "v"}},
			func(ctx context.Context, m proto.Message) error {
				_, err := po.CreatePayout(ctx, m.(*pb.CreatePayoutRequest))
				return err
			}},
		{"/v1/webhook-endpoints", &pb.CreateWebhookEndpointRequest{Url: "https://shop.example/hooks", EventTypes: []string{"payment.succeeded"}, Description: "d"},
			func(ctx context.Context, m proto.Message) error {
				_, err := ev.CreateWebhookEndpoint(ctx, m.(*pb.CreateWebhookEndpointRequest))
				return err
			}},
	}
	calls := 0
	for _, tg := range targets {
		for _, plant := range plantings(tg.tmpl) {
			for _, pan := range plantedPANs {
				m := proto.Clone(tg.tmpl)
				where := plant(m.ProtoReflect(), pan)
				if err := tg.call(ctx, m); err == nil {
					t.Errorf("gRPC %s accepted a card number (%q) in %s", tg.path, pan, where)
				}
				body, err := protojson.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				if code, resp, _ := srv.restDo(t, "POST", tg.path, srv.key, "", string(body)); code < 400 {
					t.Errorf("REST %s accepted a card number (%q) in %s: %d %v", tg.path, pan, where, code, resp)
				}
				calls += 2
			}
		}
		// The idempotency key, with an otherwise valid request.
		body, _ := protojson.Marshal(tg.tmpl)
		for _, pan := range plantedPANs {
			code, resp := srv.restRaw(t, "POST", tg.path, string(body), http.Header{"Authorization": {"Bearer " + srv.key}, "Idempotency-Key": {pan}})
			if code < 400 {
				t.Errorf("REST %s accepted a card number (%q) as its Idempotency-Key: %d %v", tg.path, pan, code, resp)
			}
			if err := tg.call(withIdem(ctx, pan), proto.Clone(tg.tmpl)); err == nil && isASCII(pan) {
				t.Errorf("gRPC %s accepted a card number (%q) as its idempotency key", tg.path, pan)
			}
			calls += 2
		}
	}
	t.Logf("%d calls with a planted card number", calls)

	// Scan while the server runs (its WAL is still there), then after it stopped.
	scanFiles := func(when string) {
		for _, f := range []string{srv.db, srv.db + "-wal"} {
			raw, err := os.ReadFile(f)
			if err != nil {
				if !os.IsNotExist(err) {
					t.Error(err)
				}
				continue
			}
			if found, ctx := findCardNumber(raw); found != "" {
				t.Errorf("%s: %s holds a card number %s in %q", when, f, found, ctx)
			}
		}
	}
	scanFiles("running")
	srv.stop()
	scanFiles("stopped")
	// The log names the database's path, and t.TempDir's random digits
	// followed by "/001" can pass Luhn by chance: take the path out first.
	logText := strings.ReplaceAll(srv.log.String(), filepath.Dir(srv.db), "<tempdir>")
	if found, ctx := findCardNumber([]byte(logText)); found != "" {
		t.Errorf("the server log holds a card number %s in %q", found, ctx)
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// plantings returns one function per place in a request a string can go
// (every string field, nested ones, list items, map keys and map values);
// each puts a value there and says where.
func plantings(tmpl proto.Message) []func(protoreflect.Message, string) string {
	var out []func(protoreflect.Message, string) string
	var walk func(md protoreflect.MessageDescriptor, path []protoreflect.FieldDescriptor)
	walk = func(md protoreflect.MessageDescriptor, path []protoreflect.FieldDescriptor) {
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			p := append(append([]protoreflect.FieldDescriptor{}, path...), fd)
			// reach follows p from the top message, creating messages on the way.
			reach := func(m protoreflect.Message) protoreflect.Message {
				for _, f := range p[:len(p)-1] {
					m = m.Mutable(f).Message()
				}
				return m
			}
			name := string(fd.Name())
			switch {
			case fd.IsMap() && fd.MapKey().Kind() == protoreflect.StringKind && fd.MapValue().Kind() == protoreflect.StringKind:
				out = append(out, func(m protoreflect.Message, v string) string {
					reach(m).Mutable(fd).Map().Set(protoreflect.ValueOfString(v).MapKey(), protoreflect.ValueOfString("x"))
					return name + " key"
				}, func(m protoreflect.Message, v string) string {
					reach(m).Mutable(fd).Map().Set(protoreflect.ValueOfString("note").MapKey(), protoreflect.ValueOfString(v))
					return name + " value"
				})
			case fd.IsList() && fd.Kind() == protoreflect.StringKind:
				out = append(out, func(m protoreflect.Message, v string) string {
					reach(m).Mutable(fd).List().Append(protoreflect.ValueOfString(v))
					return name
				})
			case fd.Kind() == protoreflect.StringKind:
				out = append(out, func(m protoreflect.Message, v string) string {
					if strings.HasSuffix(name, "url") {
						v = "https://shop.example/cb?ref=" + v
					}
					reach(m).Set(fd, protoreflect.ValueOfString(v))
					return name
				})
			case fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() && len(path) < 3 &&
				!strings.HasPrefix(string(fd.Message().FullName()), "google.protobuf."):
				walk(fd.Message(), p)
			}
		}
	}
	walk(tmpl.ProtoReflect().Descriptor(), nil)
	return out
}

// findCardNumber scans raw (a database page, a WAL, a log) for a card
// number the way a PCI scanner would, independently of the service's own
// detector: Unicode digits read as digits; spaces, . / _ , + dashes and
// invisible characters skipped; percent-escapes decoded; and any window of
// whole digit groups 13 to 19 digits long that passes Luhn, whatever digit
// it starts with. It returns the digits found and some context.
func findCardNumber(raw []byte) (string, string) {
	if found, at := scanDigits(raw); found != "" {
		return found, string(raw[max(0, at-60):min(len(raw), at+20)])
	}
	if dec := percentDecodeBytes(raw); len(dec) != len(raw) {
		if found, at := scanDigits(dec); found != "" {
			return found, string(dec[max(0, at-60):min(len(dec), at+20)])
		}
	}
	return "", ""
}

func scanDigits(raw []byte) (string, int) {
	var digits []byte
	var starts []int
	sep := false
	check := func() string {
		for _, st := range starts {
			w := digits[st:]
			if len(w) >= 13 && len(w) <= 19 && luhnOK(w) {
				b := make([]byte, len(w))
				for i, d := range w {
					b[i] = '0' + d
				}
				return string(b)
			}
		}
		return ""
	}
	for i := 0; i < len(raw); {
		r, size := utf8.DecodeRune(raw[i:])
		at := i
		i += size
		if d, ok := digitOf(r, size); ok {
			if len(digits) == 0 || sep {
				starts = append(starts, len(digits))
				sep = false
			}
			digits = append(digits, d)
			continue
		}
		isSep := r != utf8.RuneError && (unicode.IsSpace(r) || strings.ContainsRune("./_,+-", r) ||
			unicode.In(r, unicode.Cf, unicode.Pd, unicode.Mn, unicode.Me) || (r >= 0xFF01 && r <= 0xFF5E && strings.ContainsRune("./_,+-", r-0xFEE0)))
		if len(digits) > 0 && !sep {
			if found := check(); found != "" {
				return found, at
			}
		}
		if isSep && len(digits) > 0 {
			sep = true
			continue
		}
		if !isSep {
			digits, starts, sep = digits[:0], starts[:0], false
		}
	}
	if !sep {
		if found := check(); found != "" {
			return found, len(raw)
		}
	}
	return "", 0
}

func digitOf(r rune, size int) (byte, bool) {
	switch {
	case r >= '0' && r <= '9':
		return byte(r - '0'), true
	case r == utf8.RuneError && size <= 1, r < 0x80:
		return 0, false
	case unicode.IsDigit(r) || unicode.Is(unicode.No, r):
		k := norm.NFKC.String(string(r))
		if len(k) == 1 && k[0] >= '0' && k[0] <= '9' {
			return k[0] - '0', true
		}
		for _, rg := range unicode.Nd.R16 {
			if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
				return byte((r - rune(rg.Lo)) % 10), true
			}
		}
		for _, rg := range unicode.Nd.R32 {
			if r >= rune(rg.Lo) && r <= rune(rg.Hi) {
				return byte((r - rune(rg.Lo)) % 10), true
			}
		}
	}
	return 0, false
}

func luhnOK(d []byte) bool {
	sum, double := 0, false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}

func percentDecodeBytes(raw []byte) []byte {
	hex := func(c byte) (byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, true
		}
		return 0, false
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == '%' && i+2 < len(raw) {
			if h, ok := hex(raw[i+1]); ok {
				if l, ok := hex(raw[i+2]); ok {
					out = append(out, h<<4|l)
					i += 2
					continue
				}
			}
		}
		out = append(out, raw[i])
	}
	return out
}
