package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The gateway's generated handlers turn every decoding error into a plain
// INVALID_ARGUMENT status with the error's text, losing any detail. The
// strict decoder and query parser below therefore return a gatewayError,
// whose text carries its parameter, code and message as JSON behind a
// marker; restError (gateway.go) reads it back into a normal error body.
const gatewayErrorTag = "paymentd-gateway-error "

// gatewayError is a request error found while the gateway decodes a REST
// request.
type gatewayError struct {
	Param   string `json:"param,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *gatewayError) Error() string {
	b, _ := json.Marshal(e)
	return gatewayErrorTag + string(b)
}

// parseGatewayError recovers a gatewayError from a status message.
func parseGatewayError(msg string) (*gatewayError, bool) {
	rest, ok := strings.CutPrefix(msg, gatewayErrorTag)
	if !ok {
		return nil, false
	}
	var e gatewayError
	if json.Unmarshal([]byte(rest), &e) != nil {
		return nil, false
	}
	return &e, true
}

// strictJSON is the gateway's marshaler: protojson as configured, with a
// decoder that refuses what protojson would quietly accept or report
// obscurely.
type strictJSON struct{ *runtime.JSONPb }

// NewDecoder reads the whole body (already bounded by limitBody) and checks
// it before protojson decodes it. A body with no number written as a
// decimal or with an exponent is decoded by protojson at once; only one it
// refuses, or one with such a number, is walked token by token, for the
// error that names the field (checkJSONBody). That walk cost more than
// the decoding itself.
func (m strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		raw, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(raw)) == 0 {
			return io.EOF
		}
		if err := checkJSONText(raw); err != nil {
			return err
		}
		if msg, ok := v.(proto.Message); ok && !hasFractionalNumber(raw) && !hasFractionalString(raw) {
			if m.UnmarshalOptions.Unmarshal(raw, msg) == nil {
				return nil
			}
		}
		if off, ok := trailingData(raw); ok {
			return &gatewayError{Code: "invalid_request_body",
				Message: fmt.Sprintf("The request body has more after its JSON object (from offset %d); send one JSON object and nothing after it.", off)}
		}
		var md protoreflect.MessageDescriptor
		if msg, ok := v.(proto.Message); ok {
			md = msg.ProtoReflect().Descriptor()
		}
		paths, err := checkJSONBody(raw, md)
		if err != nil {
			return err
		}
		if err := m.JSONPb.NewDecoder(bytes.NewReader(raw)).Decode(v); err != nil {
			return explainDecodeError(err, paths, raw, md)
		}
		return nil
	})
}

// trailingData reports where raw goes on after its first JSON value, if it
// does: the gateway's decoder would read the first value and ignore the
// rest, where protojson refuses it. A syntax error in the first value is
// left to protojson, which says where it is.
func trailingData(raw []byte) (int64, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var v json.RawMessage
	if dec.Decode(&v) != nil {
		return 0, false
	}
	off := dec.InputOffset()
	return off, len(bytes.TrimSpace(raw[off:])) > 0
}

// hasFractionalNumber reports whether raw holds, outside its strings, a
// number written with a decimal point or an exponent. It is a quick,
// conservative look: it may say yes to text that is not JSON at all, which
// checkJSONBody and protojson then judge.
func hasFractionalNumber(raw []byte) bool {
	inString, inNumber := false, false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped byte cannot end the string
			case '"':
				inString = false
			}
			continue
		}
		switch {
		case c == '"':
			inString, inNumber = true, false
		case c == '-' || c >= '0' && c <= '9':
			inNumber = true
		case inNumber && (c == '.' || c == 'e' || c == 'E'):
			return true
		default:
			inNumber = false
		}
	}
	return false
}

// fractionalString matches a JSON string's content that protojson would
// read as an integer field's value although it is written with a decimal
// point or an exponent ("100.00" as 100, "1e3" as 1000).
var fractionalString = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// hasFractionalString reports whether raw holds a string that reads as a
// number written with a decimal point or an exponent. Like
// hasFractionalNumber it may say yes to strings of any field (a metadata
// value "1.5"); checkJSONBody then judges by the field.
func hasFractionalString(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '"' {
			continue
		}
		end, escaped := i+1, false
		for ; end < len(raw) && raw[end] != '"'; end++ {
			if raw[end] == '\\' {
				escaped = true
				end++
			}
		}
		if end >= len(raw) {
			return false
		}
		if str := raw[i+1 : end]; !escaped && bytes.ContainsAny(str, ".eE") && fractionalString.Match(str) {
			return true
		}
		i = end
	}
	return false
}

var (
	reUnknownField = regexp.MustCompile(`unknown field "(.*)"`)
	reInvalidValue = regexp.MustCompile(`invalid value for (\w+) field (\w+): `)
)

// explainDecodeError turns a protojson error into a gatewayError naming the
// field where it can, and never quotes a card number. md describes the
// request message, for saying what form a mistyped field takes (nil: unknown).
func explainDecodeError(err error, paths []string, raw []byte, md protoreflect.MessageDescriptor) error {
	msg := err.Error()
	if m := reUnknownField.FindStringSubmatch(msg); m != nil {
		name := maskCardNumber(m[1])
		return &gatewayError{Param: name, Code: "invalid_request_body",
			Message: fmt.Sprintf("The request body has a field %s that this call does not take; field names are those of the API reference (snake_case).", name)}
	}
	if m := reInvalidValue.FindStringSubmatch(msg); m != nil {
		param := fieldPath(snakeCase(m[2]), paths)
		if m[2] == "value" {
			// protojson names a map entry's own field; say which entry.
			param = mapEntryParam(raw, param)
		}
		want := "a " + m[1]
		switch m[1] {
		case "int32", "sint32", "sfixed32":
			want = "an integer from -2147483648 to 2147483647"
		case "uint32", "fixed32":
			want = "a whole number from 0 to 4294967295"
		case "int64", "uint64", "sint64", "fixed64", "sfixed64":
			want = "an integer"
		case "string":
			want = "a string"
		case "bool":
			want = "true or false"
		case "message":
			want = "an object"
		}
		e := &gatewayError{Param: param, Code: "invalid_request_body", Message: fmt.Sprintf("%s must be %s.", param, want)}
		if isAmountField(param) {
			e.Code, e.Message = "amount_invalid", param+" must be an integer: amounts are integers in the currency's minor units (1000 is 10.00 USD)."
		}
		return e
	}
	// A value of the wrong JSON type for its field (a string where an
	// object, array or duration goes, say): protojson gives only its line
	// and column; name the field at that place.
	if m := rePosition.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		if param, ok := pathAt(raw, offsetAt(raw, line, col)); ok {
			if param == "" {
				return &gatewayError{Code: "invalid_request_body",
					Message: "The request body must be a JSON object whose field names are those of the API reference (snake_case)."}
			}
			return &gatewayError{Param: param, Code: "invalid_request_body",
				Message: fmt.Sprintf("%s must be %s.", param, fieldForm(md, param))}
		}
	}
	return errors.New(redactPANs(msg))
}

var rePosition = regexp.MustCompile(`\(line (\d+):(\d+)\)`)

// offsetAt is the byte offset in raw of protojson's line and column (both
// from 1, the column counted in runes).
func offsetAt(raw []byte, line, col int) int {
	off := 0
	for ; line > 1 && off < len(raw); off++ {
		if raw[off] == '\n' {
			line--
		}
	}
	for ; col > 1 && off < len(raw); col-- {
		_, size := utf8.DecodeRune(raw[off:])
		off += size
	}
	return off
}

// pathAt returns the dotted path of the field whose value starts at byte
// offset off of raw ("" for the body itself), and whether a value starts
// there.
func pathAt(raw []byte, off int) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		obj       bool
		expectKey bool
		key       string
	}
	var stack []frame
	for {
		start := int(dec.InputOffset())
		for start < len(raw) && strings.IndexByte(" \t\r\n,:", raw[start]) >= 0 {
			start++
		}
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		n := len(stack)
		if n > 0 && stack[n-1].obj && stack[n-1].expectKey {
			if k, ok := tok.(string); ok {
				stack[n-1].key, stack[n-1].expectKey = k, false
				continue
			}
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			if n > 0 {
				stack = stack[:n-1]
			}
		} else if start == off {
			var parts []string
			for _, f := range stack {
				if f.obj {
					parts = append(parts, f.key)
				}
			}
			return strings.Join(parts, "."), true
		} else if start > off {
			return "", false
		}
		if d, ok := tok.(json.Delim); ok && (d == '{' || d == '[') {
			stack = append(stack, frame{obj: d == '{', expectKey: d == '{'})
			continue
		}
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].expectKey = true
		}
	}
}

// isIntegerField reports whether the dotted path names an integer field of
// md (or a list of integers).
func isIntegerField(md protoreflect.MessageDescriptor, path string) bool {
	fd := fieldAt(md, path)
	if fd == nil || fd.IsMap() {
		return false
	}
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return true
	}
	return false
}

// fieldForm says what JSON a field of md at the dotted path takes.
func fieldForm(md protoreflect.MessageDescriptor, path string) string {
	fd := fieldAt(md, path)
	switch {
	case fd == nil:
		return "of the form the API reference gives"
	case fd.IsMap():
		return "an object whose values are strings"
	case fd.IsList():
		return "an array"
	case fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Duration":
		return `a duration in seconds, as a string such as "3600s"`
	case fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Timestamp":
		return `an RFC 3339 timestamp such as "2026-01-01T00:00:00Z"`
	case fd.Message() != nil:
		return "an object"
	case fd.Kind() == protoreflect.StringKind:
		return "a string"
	case fd.Kind() == protoreflect.BoolKind:
		return "true or false"
	default:
		return "an integer"
	}
}

// mapEntryParam names the first entry of a map field (an object of strings,
// such as metadata, at the body's top level or one level down) whose value
// is not a string (null included), as metadata[key]; or fallback.
func mapEntryParam(raw []byte, fallback string) string {
	var body map[string]json.RawMessage
	if json.Unmarshal(raw, &body) != nil {
		return fallback
	}
	find := func(prefix string, obj map[string]json.RawMessage) (string, bool) {
		for name, v := range obj {
			var entries map[string]json.RawMessage
			if json.Unmarshal(v, &entries) != nil {
				continue
			}
			for k, ev := range entries {
				// null decodes into a string without error, but protojson
				// refuses it as a map value.
				var str string
				if json.Unmarshal(ev, &str) != nil || string(bytes.TrimSpace(ev)) == "null" {
					return prefix + name + "[" + truncate(k, 40) + "]", true
				}
			}
		}
		return "", false
	}
	if p, ok := find("", body); ok {
		return p
	}
	for name, v := range body {
		var sub map[string]json.RawMessage
		if json.Unmarshal(v, &sub) == nil {
			if p, ok := find(name+".", sub); ok {
				return p
			}
		}
	}
	return fallback
}

// fieldPath finds the full path of a field named leaf among the body's paths.
func fieldPath(leaf string, paths []string) string {
	for _, p := range paths {
		if p == leaf || strings.HasSuffix(p, "."+leaf) {
			return p
		}
	}
	return leaf
}

func snakeCase(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isAmountField(path string) bool {
	leaf := path[strings.LastIndexByte(path, '.')+1:]
	return leaf == "amount" || strings.HasSuffix(leaf, "_amount")
}

// checkJSONBody refuses a body (whose text checkJSONText passed) that
// writes a number with a decimal point or an exponent (every number a
// request takes is an integer; protojson would read 100.00 as 100 and 1e3
// as 1000), also as the string of an integer field of md ("100.00"). It
// returns the dotted paths of the body's fields, for naming a field in
// later errors.
func checkJSONBody(raw []byte, md protoreflect.MessageDescriptor) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	type frame struct {
		obj       bool
		expectKey bool
		key       string
	}
	var stack []frame
	var paths []string
	path := func() string {
		var parts []string
		for _, f := range stack {
			if f.obj {
				parts = append(parts, f.key)
			}
		}
		return strings.Join(parts, ".")
	}
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].obj {
			stack[n-1].expectKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			// io.EOF at the end; a syntax error is left to protojson,
			// which says where it is.
			return paths, nil
		}
		if n := len(stack); n > 0 && stack[n-1].obj && stack[n-1].expectKey {
			if k, ok := tok.(string); ok {
				stack[n-1].key, stack[n-1].expectKey = k, false
				paths = append(paths, path())
				continue
			}
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{obj: true, expectKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				if len(stack) > 0 {
					stack = stack[:len(stack)-1]
				}
				valueDone()
			}
			continue
		case string:
			if p := path(); strings.ContainsAny(t, ".eE") && fractionalString.MatchString(t) && isIntegerField(md, p) {
				if isAmountField(p) {
					return nil, &gatewayError{Param: p, Code: "amount_invalid",
						Message: p + " must be an integer with no decimal point or exponent: amounts are integers in the currency's minor units (send \"10000\" or 10000 for 100.00 USD)."}
				}
				return nil, &gatewayError{Param: p, Code: "invalid_request_body",
					Message: p + " must be an integer with no decimal point or exponent."}
			}
		case json.Number:
			if strings.ContainsAny(string(t), ".eE") {
				p := path()
				if isAmountField(p) {
					return nil, &gatewayError{Param: p, Code: "amount_invalid",
						Message: p + " must be an integer with no decimal point or exponent: amounts are integers in the currency's minor units (send 10000 for 100.00 USD)."}
				}
				return nil, &gatewayError{Param: p, Code: "invalid_request_body",
					Message: p + " must be an integer with no decimal point or exponent."}
			}
		}
		valueDone()
	}
}

// checkJSONText refuses a body that is not valid UTF-8 or holds a lone
// UTF-16 surrogate escape, which decoders silently replace.
func checkJSONText(raw []byte) error {
	if !utf8.Valid(raw) {
		i := 0
		for i < len(raw) {
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size <= 1 {
				break
			}
			i += size
		}
		return &gatewayError{Code: "invalid_request_body",
			Message: fmt.Sprintf("The request body is not valid UTF-8 (the first bad byte is at offset %d); send JSON text encoded as UTF-8.", i)}
	}
	if off, ok := loneSurrogate(raw); ok {
		return &gatewayError{Code: "invalid_request_body",
			Message: fmt.Sprintf("The request body has a lone UTF-16 surrogate escape (\\uD800–\\uDFFF without its pair) at offset %d; JSON strings must be valid Unicode text.", off)}
	}
	return nil
}

// loneSurrogate finds a \uD800–\uDFFF escape inside a JSON string that is
// not part of a high-low pair, and returns its offset.
func loneSurrogate(raw []byte) (int, bool) {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !inString {
			if c == '"' {
				inString = true
			}
			continue
		}
		switch c {
		case '"':
			inString = false
		case '\\':
			if i+1 < len(raw) && raw[i+1] == 'u' {
				r, ok := hex4(raw, i+2)
				switch {
				case !ok:
				case r >= 0xD800 && r <= 0xDBFF:
					if i+11 < len(raw)+0 && raw[i+6] == '\\' && raw[i+7] == 'u' {
						if lo, ok := hex4(raw, i+8); ok && lo >= 0xDC00 && lo <= 0xDFFF {
							i += 11
							continue
						}
					}
					return i, true
				case r >= 0xDC00 && r <= 0xDFFF:
					return i, true
				}
				i += 5
				continue
			}
			i++ // the escaped character
		}
	}
	return 0, false
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		if !ishex(c) {
			return 0, false
		}
		r = r<<4 | rune(unhex(c))
	}
	return r, true
}

// checkURLText refuses a REST request whose path or query parameters
// percent-decode to bytes that are not UTF-8: the gateway would put them in
// the call's string fields, which protobuf refuses to marshal, and the
// caller would get a 500. Every REST path parameter is an {id}.
func checkURLText(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !utf8.ValidString(r.URL.Path) {
			writeDomainError(w, r, Invalid("id", "parameter_invalid",
				"The path holds bytes that are not UTF-8 text once percent-decoded; ids (pay_…, inv_…) and references are ASCII."))
			return
		}
		if strings.Contains(r.URL.RawQuery, "%") || !utf8.ValidString(r.URL.RawQuery) {
			for k, vs := range r.URL.Query() {
				for _, v := range vs {
					if !utf8.ValidString(k) || !utf8.ValidString(v) {
						name := truncate(strings.ToValidUTF8(k, "\uFFFD"), 100)
						writeDomainError(w, r, Invalid(name, "parameter_invalid",
							"%s holds bytes that are not UTF-8 text once percent-decoded; send UTF-8, percent-encoded.", name))
						return
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// strictQueryParser refuses query parameters the call does not take, and
// explains a value it cannot read, naming the parameter and the form
// expected, before the default parser fills the request.
type strictQueryParser struct{}

// Parse implements runtime.QueryParameterParser.
func (strictQueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	md := msg.ProtoReflect().Descriptor()
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fd := fieldAt(md, k)
		if fd == nil {
			name := maskCardNumber(k)
			return &gatewayError{Param: name, Code: "parameter_unknown",
				Message: fmt.Sprintf("%s is not a query parameter of this call; the parameters are %s.", name, queryFieldNames(md))}
		}
		if n := len(values[k]); n > 1 && !fd.IsList() {
			return &gatewayError{Param: k, Code: "parameter_invalid", Message: fmt.Sprintf("%s is given %d times; send it once.", k, n)}
		}
		if err := (&runtime.DefaultQueryParser{}).Parse(msg, url.Values{k: values[k]}, filter); err != nil {
			return &gatewayError{Param: k, Code: "parameter_invalid", Message: k + " must be " + expectedForm(fd) + "."}
		}
	}
	return nil
}

// fieldAt is the field of md at a dotted path of field names (proto or
// JSON names), through nested messages but not into a map's entries; nil if
// there is none.
func fieldAt(md protoreflect.MessageDescriptor, path string) protoreflect.FieldDescriptor {
	var fd protoreflect.FieldDescriptor
	for part := range strings.SplitSeq(path, ".") {
		if md == nil || (fd != nil && fd.IsMap()) {
			return nil
		}
		fd = md.Fields().ByName(protoreflect.Name(part))
		if fd == nil {
			fd = md.Fields().ByJSONName(part)
		}
		if fd == nil {
			return nil
		}
		md = fd.Message()
	}
	return fd
}

func queryFieldNames(md protoreflect.MessageDescriptor) string {
	var names []string
	for i := range md.Fields().Len() {
		names = append(names, string(md.Fields().Get(i).Name()))
	}
	return strings.Join(names, ", ")
}

// expectedForm says, for the caller, what a field's value must look like.
func expectedForm(fd protoreflect.FieldDescriptor) string {
	switch {
	case fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Timestamp":
		return "an RFC 3339 timestamp such as 2026-01-01T00:00:00Z"
	case fd.Name() == "page_size":
		return "an integer from 1 to 100"
	}
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind,
		protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind,
		protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return "an integer"
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.EnumKind:
		return "one of the values in the API reference"
	}
	return "valid for this parameter"
}
