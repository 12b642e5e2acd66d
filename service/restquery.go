package service

import (
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// queryFreeRoutes reads, from the google.api.http rules of the paymentd.v1
// services (as the gateway's generated code was), the REST routes whose
// request takes nothing from the query string: its fields are all in the
// path, or all in the JSON body (body "*"), or it has none. The gateway
// never reads the query string of such a route, so a parameter sent there
// (?expand=customer, ?limit=1) would be dropped without a word, where
// strictQueryParser refuses an unknown parameter of a list. It returns, per
// HTTP method, one regexp matching the paths of all of them, so that a
// request costs one match.
func queryFreeRoutes() map[string]*regexp.Regexp {
	paths := map[string][]string{}
	protoregistry.GlobalFiles.RangeFilesByPackage("paymentd.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			methods := fd.Services().Get(i).Methods()
			for j := range methods.Len() {
				m := methods.Get(j)
				opts, _ := m.Options().(*descriptorpb.MethodOptions)
				rule, _ := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
				if rule == nil {
					continue
				}
				verb, path := httpRulePattern(rule)
				if path == "" || takesQuery(m.Input(), path, rule.GetBody()) {
					continue
				}
				paths[verb] = append(paths[verb], pathPattern(path))
			}
		}
		return true
	})
	out := make(map[string]*regexp.Regexp, len(paths))
	for verb, ps := range paths {
		out[verb] = regexp.MustCompile("^(?:" + strings.Join(ps, "|") + ")$")
	}
	return out
}

var pathVar = regexp.MustCompile(`\{([^}=]+)(=[^}]*)?\}`)

func httpRulePattern(rule *annotations.HttpRule) (verb, path string) {
	switch p := rule.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	}
	return "", ""
}

// takesQuery reports whether a route's request has a field that is neither
// in its path nor in its body: the gateway reads those from the query.
func takesQuery(in protoreflect.MessageDescriptor, path, body string) bool {
	if body == "*" {
		return false
	}
	var inPath []string
	for _, m := range pathVar.FindAllStringSubmatch(path, -1) {
		inPath = append(inPath, strings.SplitN(m[1], ".", 2)[0])
	}
	for i := range in.Fields().Len() {
		name := string(in.Fields().Get(i).Name())
		if name != body && !slices.Contains(inPath, name) {
			return true
		}
	}
	return false
}

// pathPattern is the regexp, unanchored, of a route's path: each {var}
// one path segment.
func pathPattern(path string) string {
	var b strings.Builder
	last := 0
	for _, loc := range pathVar.FindAllStringIndex(path, -1) {
		b.WriteString(regexp.QuoteMeta(path[last:loc[0]]))
		b.WriteString("[^/]+")
		last = loc[1]
	}
	b.WriteString(regexp.QuoteMeta(path[last:]))
	return b.String()
}

// refuseQuery refuses a query parameter sent to a route that takes none,
// naming it, before the gateway would drop it.
func refuseQuery(routes map[string]*regexp.Regexp, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if re := routes[r.Method]; r.URL.RawQuery != "" && re != nil && re.MatchString(r.URL.Path) {
			name := strings.SplitN(strings.SplitN(r.URL.RawQuery, "&", 2)[0], "=", 2)[0]
			if values, err := url.ParseQuery(r.URL.RawQuery); err == nil && len(values) > 0 {
				name = slices.Sorted(maps.Keys(values))[0]
			}
			name = maskCardNumber(name)
			hint := "it takes no query parameters."
			if r.Method != http.MethodGet && r.Method != http.MethodDelete {
				hint = "send the request's fields in its JSON body."
			}
			writeDomainError(w, r, Invalid(name, "parameter_unknown", "%s is not a query parameter of this call; %s", name, hint))
			return
		}
		next.ServeHTTP(w, r)
	})
}
