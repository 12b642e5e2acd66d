package service

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Page tokens are bound to the filters they were issued for. A list call's
// next_page_token is the handler's token (the last id of the page) followed
// by "." and a hash of the request's filters: every field except page_token
// and page_size. A token sent back with other filters (another status, a
// different time range, another payment's refunds) would silently page
// through a different listing, so it is refused with page_token_invalid.
// One interceptor does this for every List method, so no handler can forget.
// The hash covers the caller's account and mode too: a token is no use to
// another account or in the other mode.

// filterHash hashes req with its page_token and page_size cleared, for the
// caller owner (account and mode).
func filterHash(req protoreflect.Message, method, owner string) string {
	m := proto.Clone(req.Interface()).ProtoReflect()
	fields := m.Descriptor().Fields()
	for _, name := range []protoreflect.Name{"page_token", "page_size"} {
		if fd := fields.ByName(name); fd != nil {
			m.Clear(fd)
		}
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m.Interface())
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write([]byte(owner))
	h.Write([]byte{0})
	h.Write(b)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:9])
}

// pagedCall runs the handler of a list call with its page_token unwrapped
// and checked, and binds the next_page_token of its answer; other calls run
// as they are.
func (s *Service) pagedCall(ctx context.Context, msg proto.Message, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	m := msg.ProtoReflect()
	tokenField := m.Descriptor().Fields().ByName("page_token")
	if tokenField == nil || tokenField.Kind() != protoreflect.StringKind {
		return s.handle(ctx, msg, info, h)
	}
	owner := ""
	if p, ok := PrincipalFrom(ctx); ok {
		owner = p.AccountID + "/" + p.Mode()
	}
	hash := filterHash(m, info.FullMethod, owner)
	if token := m.Get(tokenField).String(); token != "" {
		inner, sum, found := strings.Cut(token, ".")
		if !found || sum != hash || inner == "" {
			return nil, toGRPC(Invalid("page_token", "page_token_invalid",
				"page_token was issued for a listing with other filters, or to another account or mode (or is not a page token); send the same filters as the request that returned it, or omit page_token to start from the first page."))
		}
		m.Set(tokenField, protoreflect.ValueOfString(inner))
	}
	resp, err := s.handle(ctx, msg, info, h)
	if err != nil {
		return resp, err
	}
	if rm, ok := resp.(proto.Message); ok {
		r := rm.ProtoReflect()
		if fd := r.Descriptor().Fields().ByName("next_page_token"); fd != nil && fd.Kind() == protoreflect.StringKind {
			if next := r.Get(fd).String(); next != "" {
				r.Set(fd, protoreflect.ValueOfString(next+"."+hash))
			}
		}
	}
	return resp, nil
}
