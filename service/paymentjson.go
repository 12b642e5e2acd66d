package service

import (
	"math/bits"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/paymentd/paymentd/gen/paymentd/v1"
)

// The REST answers that carry payments — a payment (create, get, capture,
// cancel) and a page of them — are written by hand here rather than by
// protojson, which took ~10 µs per payment through reflection (a twentieth
// of a REST create's server CPU, a page of 20 ten times that). The output
// is what protojson writes with the gateway's options (proto field names,
// every field present, int64 as strings, timestamps in RFC 3339 with 0, 3,
// 6 or 9 fractional digits, map keys sorted, only `"`, `\` and control
// characters escaped); TestPaymentJSONMatchesProtojson holds it to that
// for every field the messages have, so a field added to the proto fails
// the test until it is added here. Anything it cannot write as protojson
// would (a string that is not UTF-8, a timestamp out of range) makes the
// caller fall back to protojson, which reports it.

// Marshal is the gateway's encoding of an answer: payments and pages of
// them by hand, everything else (and a payment the hand cannot write) by
// protojson.
func (m strictJSON) Marshal(v any) ([]byte, error) {
	var w jsonOut
	switch x := v.(type) {
	case *pb.Payment:
		w.b = make([]byte, 0, 640)
		w.payment(x)
	case *pb.ListPaymentsResponse:
		w.b = make([]byte, 0, 64+640*len(x.Payments))
		w.raw(`{"payments":[`)
		for i, p := range x.Payments {
			if i > 0 {
				w.raw(",")
			}
			w.payment(p)
		}
		w.str(`],"next_page_token":`, x.NextPageToken)
		w.raw("}")
	default:
		return m.JSONPb.Marshal(v)
	}
	if w.bad {
		return m.JSONPb.Marshal(v)
	}
	return w.b, nil
}

// jsonOut is JSON being written as protojson would write it; bad records
// that something could not be (protojson must be asked instead). Each
// method writes a field's name (with the comma before it) and its value.
type jsonOut struct {
	b   []byte
	bad bool
}

func (w *jsonOut) raw(s string) { w.b = append(w.b, s...) }

func (w *jsonOut) str(name, s string) {
	var ok bool
	w.b, ok = appendJSONString(append(w.b, name...), s)
	w.bad = w.bad || !ok
}

func (w *jsonOut) int64(name string, n int64) {
	w.b = append(append(w.b, name...), '"')
	w.b = append(strconv.AppendInt(w.b, n, 10), '"')
}

func (w *jsonOut) bool(name string, v bool) {
	w.b = strconv.AppendBool(append(w.b, name...), v)
}

// strMap writes m with its keys sorted, as protojson does.
func (w *jsonOut) strMap(name string, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	w.raw(name)
	w.raw("{")
	for i, k := range keys {
		if i > 0 {
			w.raw(",")
		}
		w.str("", k)
		w.str(":", m[k])
	}
	w.raw("}")
}

// timestamp writes t in RFC 3339, UTC, with as many fractional digits as
// its nanoseconds need in groups of three (none, 3, 6 or 9).
func (w *jsonOut) timestamp(name string, t *timestamppb.Timestamp) {
	w.raw(name)
	if t == nil {
		w.raw("null")
		return
	}
	secs, nanos := t.GetSeconds(), t.GetNanos()
	if secs < minJSONSeconds || secs > maxJSONSeconds || nanos < 0 || nanos > 999_999_999 {
		w.bad = true
		return
	}
	layout := "2006-01-02T15:04:05"
	switch {
	case nanos == 0:
	case nanos%1_000_000 == 0:
		layout += ".000"
	case nanos%1_000 == 0:
		layout += ".000000"
	default:
		layout += ".000000000"
	}
	w.b = time.Unix(secs, int64(nanos)).UTC().AppendFormat(append(w.b, '"'), layout)
	w.raw(`Z"`)
}

// payment writes p, every field in the proto's order.
func (w *jsonOut) payment(p *pb.Payment) {
	if p == nil {
		w.bad = true
		return
	}
	w.str(`{"id":`, p.Id)
	w.int64(`,"amount":`, p.Amount)
	w.str(`,"currency":`, p.Currency)
	w.str(`,"status":`, p.Status)
	w.str(`,"capture_method":`, p.CaptureMethod)
	w.str(`,"payment_method":`, p.PaymentMethod)
	w.int64(`,"amount_capturable":`, p.AmountCapturable)
	w.int64(`,"amount_captured":`, p.AmountCaptured)
	w.int64(`,"amount_refunded":`, p.AmountRefunded)
	w.str(`,"description":`, p.Description)
	w.strMap(`,"metadata":`, p.Metadata)
	if c := p.Customer; c == nil {
		w.raw(`,"customer":null`)
	} else {
		w.str(`,"customer":{"name":`, c.Name)
		w.str(`,"email":`, c.Email)
		w.str(`,"id":`, c.Id)
		w.raw("}")
	}
	w.str(`,"agent_id":`, p.AgentId)
	w.bool(`,"livemode":`, p.Livemode)
	w.str(`,"provider":`, p.Provider)
	w.str(`,"failure_code":`, p.FailureCode)
	w.str(`,"failure_message":`, p.FailureMessage)
	w.timestamp(`,"created_at":`, p.CreatedAt)
	w.timestamp(`,"updated_at":`, p.UpdatedAt)
	w.str(`,"pending_operation":`, p.PendingOperation)
	w.int64(`,"pending_amount":`, p.PendingAmount)
	w.raw("}")
}

// appendJSONString quotes s as protojson does: `"` and `\` escaped, control
// characters as \b \f \n \r \t or \u00xx, everything else as it is; ok is
// false if s is not valid UTF-8 (protojson refuses it).
func appendJSONString(b []byte, s string) ([]byte, bool) {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return b, false
			}
			i += n
			continue
		}
		if c >= ' ' && c != '"' && c != '\\' {
			i++
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			b = append(b, `\u`...)
			b = append(b, "0000"[1+(bits.Len32(uint32(c))-1)/4:]...)
			b = strconv.AppendUint(b, uint64(c), 16)
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"'), true
}

// Timestamps protojson can write: years 1 to 9999.
const (
	minJSONSeconds = -62135596800
	maxJSONSeconds = 253402300799
)
