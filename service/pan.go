package service

import (
	"google.golang.org/protobuf/reflect/protoreflect"
)

// panExempt lists fields that legitimately hold long digit runs (payout
// recipients: bank account and mobile numbers, crypto addresses), where a
// Luhn-valid run is no sign of a card. They get a narrower card-number check
// of their own (checkRecipientAccount in payout_methods.go).
var panExempt = map[protoreflect.FullName]bool{
	"paymentd.v1.CreatePayoutRequest.recipient_account": true,
}

// findPAN reports the first string field (or map value) of msg that contains
// a raw card number: a Luhn-valid run of 13–19 digits, which may be split by
// spaces or dashes. paymentd never accepts, stores or logs a PAN.
func findPAN(msg protoreflect.Message) (field string, found bool) {
	msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if panExempt[fd.FullName()] {
			return true
		}
		name := string(fd.Name())
		switch {
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if fd.MapValue().Kind() == protoreflect.StringKind && containsPAN(mv.String()) {
					field, found = name+"["+k.String()+"]", true
				} else if containsPAN(k.String()) {
					field, found = name, true
				}
				return !found
			})
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && !found; i++ {
				if fd.Kind() == protoreflect.StringKind && containsPAN(l.Get(i).String()) {
					field, found = name, true
				} else if fd.Kind() == protoreflect.MessageKind {
					if sub, ok := findPAN(l.Get(i).Message()); ok {
						field, found = name+"."+sub, true
					}
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if containsPAN(v.String()) {
				field, found = name, true
			}
		case fd.Kind() == protoreflect.MessageKind:
			if sub, ok := findPAN(v.Message()); ok {
				field, found = name+"."+sub, true
			}
		}
		return !found
	})
	return field, found
}

// containsPAN scans s for runs of digits (allowing single space or dash
// separators) and checks each run of 13–19 digits with Luhn.
func containsPAN(s string) bool {
	var digits []byte
	flush := func() bool {
		n := len(digits)
		ok := n >= 13 && n <= 19 && luhn(digits)
		digits = digits[:0]
		return ok
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c-'0')
		case (c == ' ' || c == '-') && len(digits) > 0 && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			// a separator inside a number
		default:
			if flush() {
				return true
			}
		}
	}
	return flush()
}

func luhn(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}
