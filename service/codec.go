package service

import (
	"bytes"
	"regexp"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// grpc-go answers a request it cannot unmarshal with INTERNAL, whatever the
// reason, and before any interceptor runs. A string field holding invalid
// UTF-8, or bytes that are no protobuf message at all, are the caller's
// mistake, not paymentd's, so the server's codec lets such a request through
// emptied and marked, and refuseMarked refuses it with INVALID_ARGUMENT
// (naming the field where it can).

// invalidUTF8Field is the unknown field number that carries the mark (the
// largest field number protobuf allows, which no paymentd message uses).
const invalidUTF8Field = 1<<29 - 1

var (
	invalidUTF8Mark = []byte("paymentd:invalid-utf8:")
	malformedMark   = []byte("paymentd:malformed:")
)

var reUTF8Field = regexp.MustCompile(`field ([\w.]+) contains invalid UTF-8`)

// serverCodec is the proto codec, with invalid UTF-8 marked as above.
type serverCodec struct{ encoding.CodecV2 }

func newServerCodec() serverCodec { return serverCodec{encoding.GetCodecV2("proto")} }

// Unmarshal implements encoding.CodecV2.
func (c serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok {
		return err
	}
	if !strings.Contains(err.Error(), "invalid UTF-8") {
		proto.Reset(m)
		mark := protowire.AppendTag(nil, invalidUTF8Field, protowire.BytesType)
		m.ProtoReflect().SetUnknown(protowire.AppendBytes(mark, malformedMark))
		return nil
	}
	field := ""
	if sub := reUTF8Field.FindStringSubmatch(err.Error()); sub != nil {
		field = sub[1][strings.LastIndexByte(sub[1], '.')+1:]
	} else {
		field = badUTF8Field(data.Materialize(), m.ProtoReflect().Descriptor())
	}
	proto.Reset(m)
	mark := protowire.AppendTag(nil, invalidUTF8Field, protowire.BytesType)
	mark = protowire.AppendBytes(mark, append(append([]byte{}, invalidUTF8Mark...), field...))
	m.ProtoReflect().SetUnknown(mark)
	return nil
}

// badUTF8Field finds, in a message's wire form, the (dotted) name of the
// first string field holding invalid UTF-8, or "".
func badUTF8Field(b []byte, md protoreflect.MessageDescriptor) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return ""
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		switch {
		case fd == nil:
		case fd.IsMap():
			if sub := badUTF8Field(v, fd.Message()); sub != "" {
				return string(fd.Name())
			}
		case fd.Kind() == protoreflect.StringKind && !utf8.Valid(v):
			return string(fd.Name())
		case fd.Kind() == protoreflect.MessageKind:
			if sub := badUTF8Field(v, fd.Message()); sub != "" {
				return string(fd.Name()) + "." + sub
			}
		}
	}
	return ""
}

// refuseMarked refuses a request the codec marked: invalid UTF-8, or no
// protobuf message at all.
func refuseMarked(m proto.Message) error {
	u := m.ProtoReflect().GetUnknown()
	if len(u) == 0 {
		return nil
	}
	if bytes.Contains(u, malformedMark) {
		return Errorf(KindInvalid, "invalid_request_body",
			"The request is not a valid protobuf encoding of %s; send the message as the API's proto declares.", m.ProtoReflect().Descriptor().FullName())
	}
	if i := bytes.Index(u, invalidUTF8Mark); i >= 0 {
		field := string(u[i+len(invalidUTF8Mark):])
		if field == "" {
			return Errorf(KindInvalid, "parameter_invalid", "The request holds a string that is not valid UTF-8; send text encoded as UTF-8.")
		}
		return Invalid(field, "parameter_invalid", "%s is not valid UTF-8; send text encoded as UTF-8.", field)
	}
	return nil
}
