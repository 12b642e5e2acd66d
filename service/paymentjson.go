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
	var b []byte
	ok := false
	switch x := v.(type) {
	case *pb.Payment:
		b, ok = appendPaymentJSON(make([]byte, 0, 640), x)
	case *pb.ListPaymentsResponse:
		b, ok = appendListPaymentsJSON(make([]byte, 0, 64+640*len(x.Payments)), x)
	}
	if ok {
		return b, nil
	}
	return m.JSONPb.Marshal(v)
}

// appendPaymentJSON appends p as protojson would write it; ok is false if
// protojson must be asked instead.
func appendPaymentJSON(b []byte, p *pb.Payment) (_ []byte, ok bool) {
	if p == nil {
		return b, false
	}
	b = append(b, `{"id":`...)
	b, ok = appendJSONString(b, p.Id)
	b = append(b, `,"amount":`...)
	b = appendJSONInt64(b, p.Amount)
	b = append(b, `,"currency":`...)
	b, ok = appendJSONStringOK(b, p.Currency, ok)
	b = append(b, `,"status":`...)
	b, ok = appendJSONStringOK(b, p.Status, ok)
	b = append(b, `,"capture_method":`...)
	b, ok = appendJSONStringOK(b, p.CaptureMethod, ok)
	b = append(b, `,"payment_method":`...)
	b, ok = appendJSONStringOK(b, p.PaymentMethod, ok)
	b = append(b, `,"amount_capturable":`...)
	b = appendJSONInt64(b, p.AmountCapturable)
	b = append(b, `,"amount_captured":`...)
	b = appendJSONInt64(b, p.AmountCaptured)
	b = append(b, `,"amount_refunded":`...)
	b = appendJSONInt64(b, p.AmountRefunded)
	b = append(b, `,"description":`...)
	b, ok = appendJSONStringOK(b, p.Description, ok)
	b = append(b, `,"metadata":`...)
	b, ok = appendJSONStringMap(b, p.Metadata, ok)
	b = append(b, `,"customer":`...)
	if c := p.Customer; c == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"name":`...)
		b, ok = appendJSONStringOK(b, c.Name, ok)
		b = append(b, `,"email":`...)
		b, ok = appendJSONStringOK(b, c.Email, ok)
		b = append(b, `,"id":`...)
		b, ok = appendJSONStringOK(b, c.Id, ok)
		b = append(b, '}')
	}
	b = append(b, `,"agent_id":`...)
	b, ok = appendJSONStringOK(b, p.AgentId, ok)
	b = append(b, `,"livemode":`...)
	b = strconv.AppendBool(b, p.Livemode)
	b = append(b, `,"provider":`...)
	b, ok = appendJSONStringOK(b, p.Provider, ok)
	b = append(b, `,"failure_code":`...)
	b, ok = appendJSONStringOK(b, p.FailureCode, ok)
	b = append(b, `,"failure_message":`...)
	b, ok = appendJSONStringOK(b, p.FailureMessage, ok)
	b = append(b, `,"created_at":`...)
	b, ok = appendJSONTimestamp(b, p.CreatedAt, ok)
	b = append(b, `,"updated_at":`...)
	b, ok = appendJSONTimestamp(b, p.UpdatedAt, ok)
	b = append(b, `,"pending_operation":`...)
	b, ok = appendJSONStringOK(b, p.PendingOperation, ok)
	b = append(b, `,"pending_amount":`...)
	b = appendJSONInt64(b, p.PendingAmount)
	return append(b, '}'), ok
}

// appendListPaymentsJSON appends a page of payments as protojson would.
func appendListPaymentsJSON(b []byte, r *pb.ListPaymentsResponse) (_ []byte, ok bool) {
	ok = true
	b = append(b, `{"payments":[`...)
	for i, p := range r.Payments {
		if i > 0 {
			b = append(b, ',')
		}
		var pok bool
		b, pok = appendPaymentJSON(b, p)
		ok = ok && pok
	}
	b = append(b, `],"next_page_token":`...)
	b, ok = appendJSONStringOK(b, r.NextPageToken, ok)
	return append(b, '}'), ok
}

func appendJSONInt64(b []byte, n int64) []byte {
	b = append(b, '"')
	b = strconv.AppendInt(b, n, 10)
	return append(b, '"')
}

// appendJSONStringOK is appendJSONString for a caller that is already
// carrying an ok: it stays false once false.
func appendJSONStringOK(b []byte, s string, ok bool) ([]byte, bool) {
	b, sok := appendJSONString(b, s)
	return b, ok && sok
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

// appendJSONStringMap writes m with its keys sorted, as protojson does.
func appendJSONStringMap(b []byte, m map[string]string, ok bool) ([]byte, bool) {
	b = append(b, '{')
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b, ok = appendJSONStringOK(b, k, ok)
		b = append(b, ':')
		b, ok = appendJSONStringOK(b, m[k], ok)
	}
	return append(b, '}'), ok
}

// Timestamps protojson can write: years 1 to 9999.
const (
	minJSONSeconds = -62135596800
	maxJSONSeconds = 253402300799
)

// appendJSONTimestamp writes t in RFC 3339, UTC, with as many fractional
// digits as its nanoseconds need in groups of three (none, 3, 6 or 9).
func appendJSONTimestamp(b []byte, t *timestamppb.Timestamp, ok bool) ([]byte, bool) {
	if t == nil {
		return append(b, "null"...), ok
	}
	secs, nanos := t.GetSeconds(), t.GetNanos()
	if secs < minJSONSeconds || secs > maxJSONSeconds || nanos < 0 || nanos > 999_999_999 {
		return b, false
	}
	b = append(b, '"')
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
	b = time.Unix(secs, int64(nanos)).UTC().AppendFormat(b, layout)
	return append(b, `Z"`...), ok
}
