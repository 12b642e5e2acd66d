package service

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
)

// secretPrefixes begin the secrets paymentd hands out: API keys and webhook
// signing secrets. A caller's input quoted back (an unknown parameter's name,
// a value that is not one of a field's choices, an id in a path) may hold
// one, pasted in the wrong place.
var secretPrefixes = []string{"ak_test_", "ak_live_", "whsec_"}

// redactText returns s fit to show or log: a secret is cut to its prefix
// (ak_live_…), and a text holding a card number is replaced whole by one
// saying so (redactPANs). s is returned unchanged, without allocating, when
// it holds neither.
func redactText(s string) string {
	return redactPANs(redactSecrets(s))
}

func redactSecrets(s string) string {
	for _, p := range secretPrefixes {
		i := strings.Index(s, p)
		if i < 0 {
			continue
		}
		var b strings.Builder
		for i >= 0 {
			b.WriteString(s[:i+len(p)])
			s = s[i+len(p):]
			n := 0
			for n < len(s) && isSecretByte(s[n]) {
				n++
			}
			if n > 0 { // a prefix alone (ak_test_… in a hint) is left as it is
				b.WriteString("…")
				s = s[n:]
			}
			i = strings.Index(s, p)
		}
		b.WriteString(s)
		s = b.String()
	}
	return s
}

func isSecretByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// redactParam is redactText for an error's param: a field's name, which
// may be a caller's map key or unknown field name.
func redactParam(p string) string {
	p = redactSecrets(p)
	if containsPAN(p) {
		return "(a parameter named by a card number)"
	}
	return p
}

// redactRecord rewrites a log record's message and string attributes with
// redactText, so that no log line carries a card number or a secret
// whichever caller input it quotes.
func redactRecord(r slog.Record) slog.Record {
	msg := redactText(r.Message)
	changed := msg != r.Message
	if !changed { // the common case: look without building anything
		r.Attrs(func(a slog.Attr) bool {
			changed = !redactAttr(a).Equal(a)
			return !changed
		})
	}
	if !changed {
		return r
	}
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return out
}

func redactAttr(a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := redactText(a.Value.String()); s != a.Value.String() {
			return slog.String(a.Key, s)
		}
	case slog.KindGroup:
		g := a.Value.Group()
		out := make([]slog.Attr, len(g))
		for i, x := range g {
			out[i] = redactAttr(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			if s := redactText(err.Error()); s != err.Error() {
				return slog.String(a.Key, s)
			}
		}
	}
	return a
}

// RedactingHandler wraps h so that no record it writes carries a card
// number or a secret: redactRecord on every record, redactAttr on
// attributes bound with WithAttrs. service.New wraps its logger's handler
// unless it is one already.
func RedactingHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(redactingHandler); ok {
		return h
	}
	return redactingHandler{h}
}

type redactingHandler struct{ slog.Handler }

func (h redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.Handler.Handle(ctx, redactRecord(r))
}

func (h redactingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = redactAttr(a)
	}
	return redactingHandler{h.Handler.WithAttrs(out)}
}

func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{h.Handler.WithGroup(name)}
}

// logURL is a webhook or callback URL fit for a log line: its query (where
// integrators put tokens and signatures), fragment and any user info are
// left out, so a line names where a delivery went without what it carried.
func logURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	if u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" && u.User == nil {
		return raw
	}
	q := u.RawQuery != "" || u.ForceQuery
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	if q {
		return u.String() + "?…"
	}
	return u.String()
}
