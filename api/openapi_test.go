package api_test

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/client"
)

// The document is checked against the code so that it cannot drift: the
// routes against routes.go, the schemas against the Go wire types, the
// operationIds against libcoconut.

// wantRoutes mirrors internal/server/routes.go.
var wantRoutes = []string{
	"POST /v1/agents",
	"POST /v1/agents/run",
	"GET /v1/agents",
	"GET /v1/agents/{aid}",
	"GET /v1/agents/{aid}/attestation",
	"GET /v1/agents/{aid}/quota",
	"PUT /v1/agents/{aid}/quota",
	"GET /v1/agents/{aid}/caps",
	"POST /v1/agents/{aid}/caps/grant",
	"POST /v1/agents/{aid}/caps/revoke",
	"POST /v1/agents/{aid}/caps/present",
	"POST /v1/agents/{aid}/memory",
	"POST /v1/agents/{aid}/quarantine",
	"POST /v1/agents/{aid}/release",
	"POST /v1/agents/{aid}/kill",
	"GET /v1/agents/{aid}/logs",
	"POST /v1/agents/prune", // issue 17
	"GET /v1/audit",
	"GET /v1/audit/proof",
	"GET /v1/events",        // issue 13
	"POST /v1/center/login", // issue 13: the Center's login link
	"GET /v1/trust",
	"POST /v1/trust",
	"GET /v1/doctor",
	"GET /v1/inference",
}

// wireTypes are the Go structs whose JSON shape the document describes.
var wireTypes = []any{
	api.Agent{}, api.SpawnRequest{}, api.SpawnResponse{}, api.RunRequest{},
	api.Attestation{}, api.Quota{}, api.QuotaBudget{}, api.QuotaUsage{},
	api.CapsRequest{}, api.PresentRequest{}, api.MemoryRequest{},
	api.TrustRequest{}, api.TrustEntry{}, api.Record{}, api.AuditPage{},
	api.Doctor{}, api.QuotaDefaults{}, api.Check{}, api.ErrorBody{}, api.ErrorDetail{},
	api.AuditProof{}, api.AuditConsistency{}, api.Memory{}, api.MemoryTier{},
	api.CounterAlarm{}, api.PruneRequest{}, api.PruneResult{},
	api.CenterLoginRequest{}, api.CenterLogin{}, // issue 13
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type doc = map[string]any

func loadDoc(t *testing.T) doc {
	t.Helper()
	b, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatalf("read openapi.yaml: %v", err)
	}
	var d doc
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	return d
}

func obj(t *testing.T, v any, what string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: want a mapping, got %T", what, v)
	}
	return m
}

type operation struct {
	route string
	op    map[string]any
}

func operations(t *testing.T, d doc) []operation {
	t.Helper()
	var out []operation
	for path, item := range obj(t, d["paths"], "paths") {
		for method, op := range obj(t, item, path) {
			if !slices.Contains(httpMethods, method) {
				continue
			}
			route := strings.ToUpper(method) + " " + path
			out = append(out, operation{route, obj(t, op, route)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].route < out[j].route })
	return out
}

func TestOpenAPIHeader(t *testing.T) {
	d := loadDoc(t)
	if v, _ := d["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	info := obj(t, d["info"], "info")
	if title, _ := info["title"].(string); strings.TrimSpace(title) == "" {
		t.Error("info.title is empty")
	}
	desc, _ := info["description"].(string)
	for _, want := range []string{"SO_PEERCRED", "/run/coconut/coconut.sock", "/v1/", "Origin"} {
		if !strings.Contains(desc, want) {
			t.Errorf("info.description does not mention %q", want)
		}
	}
	if auth, _ := d["x-coconut-auth"].(string); !strings.Contains(auth, "SO_PEERCRED") {
		t.Errorf("x-coconut-auth = %q, want a note naming SO_PEERCRED", auth)
	}
}

func TestOpenAPIRoutes(t *testing.T) {
	d := loadDoc(t)
	var got []string
	for _, o := range operations(t, d) {
		got = append(got, o.route)
	}
	want := slices.Clone(wantRoutes)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("routes in openapi.yaml:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// routePattern matches s.handle("METHOD /path", handler) in routes.go.
var routePattern = regexp.MustCompile(`s\.handle\("([A-Z]+) (/v1/[^"]*)",\s*(missing\()?`)

// TestOpenAPIMatchesRoutesGo reads the server's route table itself, so a
// route added there (or a 501 removed) fails here until the document follows.
func TestOpenAPIMatchesRoutesGo(t *testing.T) {
	src, err := os.ReadFile("../internal/server/routes.go")
	if err != nil {
		t.Skipf("routes.go not readable: %v", err)
	}
	var routes []string
	missing := map[string]bool{}
	for _, m := range routePattern.FindAllStringSubmatch(string(src), -1) {
		r := m[1] + " " + m[2]
		routes = append(routes, r)
		missing[r] = m[3] != ""
	}
	sort.Strings(routes)
	want := slices.Clone(wantRoutes)
	sort.Strings(want)
	if !slices.Equal(routes, want) {
		t.Fatalf("routes.go has:\n  %s\nthis test expects:\n  %s", strings.Join(routes, "\n  "), strings.Join(want, "\n  "))
	}
	for _, o := range operations(t, loadDoc(t)) {
		t.Run(o.route, func(t *testing.T) {
			status, _ := o.op["x-coconut-status"].(string)
			responses := obj(t, o.op["responses"], o.route+" responses")
			_, has501 := responses["501"]
			if missing[o.route] {
				if status != "not-built-yet" {
					t.Errorf("answers 501 in routes.go: want x-coconut-status: not-built-yet, got %q", status)
				}
				if !has501 {
					t.Error("answers 501 in routes.go but documents no 501 response")
				}
			} else if status != "" || has501 {
				t.Errorf("built in routes.go but marked x-coconut-status %q, 501 documented %v", status, has501)
			}
		})
	}
}

// TestOpenAPIOperationIDs checks that every operationId is unique and that
// the libcoconut function each names exists.
func TestOpenAPIOperationIDs(t *testing.T) {
	ct := reflect.TypeFor[*client.Client]()
	seen := map[string]string{}
	for _, o := range operations(t, loadDoc(t)) {
		t.Run(o.route, func(t *testing.T) {
			id, _ := o.op["operationId"].(string)
			if id == "" {
				t.Fatal("no operationId")
			}
			if prev, dup := seen[id]; dup {
				t.Errorf("operationId %q also used by %s", id, prev)
			}
			seen[id] = o.route
			fn, _ := o.op["x-libcoconut"].(string)
			if fn == "" {
				t.Fatal("no x-libcoconut")
			}
			if _, ok := ct.MethodByName(fn); !ok {
				t.Errorf("x-libcoconut %q: client.Client has no such method", fn)
			}
			if fn != id && !strings.HasPrefix(id, fn) {
				t.Errorf("operationId %q is not named after libcoconut's %q", id, fn)
			}
		})
	}
}

// TestOpenAPIRefs checks that every $ref points at something that exists.
func TestOpenAPIRefs(t *testing.T) {
	d := loadDoc(t)
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "$ref" {
					refs = append(refs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(map[string]any(d))
	if len(refs) < 20 {
		t.Fatalf("found only %d $refs; the walk is broken", len(refs))
	}
	for _, ref := range refs {
		parts := strings.Split(strings.TrimPrefix(ref, "#/"), "/")
		if !strings.HasPrefix(ref, "#/components/") || len(parts) != 3 {
			t.Errorf("$ref %q: want #/components/<kind>/<name>", ref)
			continue
		}
		var cur any = map[string]any(d)
		for _, p := range parts {
			m, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur = m[p]
		}
		if _, ok := cur.(map[string]any); !ok {
			t.Errorf("$ref %q does not resolve", ref)
		}
	}
}

// jsonFields lists a struct's JSON field names and whether each may be
// omitted.
func jsonFields(typ reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out[name] = f
	}
	return out
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

// wantType is the JSON Schema type and format a Go field encodes as.
func wantType(t reflect.Type) (typ, format string) {
	switch {
	case t == timeType:
		return "string", "date-time"
	case t == rawType:
		return "", ""
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return "string", "byte"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return wantType(t.Elem())
	case reflect.String:
		return "string", ""
	case reflect.Bool:
		return "boolean", ""
	case reflect.Uint64:
		return "integer", "uint64"
	case reflect.Uint32:
		return "integer", "uint32"
	case reflect.Int, reflect.Int64:
		return "integer", "int64"
	case reflect.Slice:
		return "array", ""
	case reflect.Map, reflect.Struct:
		return "object", ""
	}
	return "?", ""
}

// schemaTypes returns a property schema's type(s), following a $ref.
func schemaTypes(t *testing.T, schemas, prop map[string]any) []string {
	if ref, ok := prop["$ref"].(string); ok {
		target, _ := schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
		return schemaTypes(t, schemas, target)
	}
	switch v := prop["type"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

func TestOpenAPISchemasMatchTypes(t *testing.T) {
	d := loadDoc(t)
	schemas := obj(t, obj(t, d["components"], "components")["schemas"], "components.schemas")
	for _, v := range wireTypes {
		typ := reflect.TypeOf(v)
		t.Run(typ.Name(), func(t *testing.T) {
			s, ok := schemas[typ.Name()].(map[string]any)
			if !ok {
				t.Fatalf("components.schemas has no %s", typ.Name())
			}
			props, _ := s["properties"].(map[string]any)
			fields := jsonFields(typ)
			var got, want []string
			for name := range props {
				got = append(got, name)
			}
			for name := range fields {
				want = append(want, name)
			}
			sort.Strings(got)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Fatalf("properties %v, Go json fields %v", got, want)
			}
			for name, f := range fields {
				prop := obj(t, props[name], typ.Name()+"."+name)
				wt, wf := wantType(f.Type)
				if wt == "" {
					continue // json.RawMessage: any JSON value
				}
				types := schemaTypes(t, schemas, prop)
				if !slices.Contains(types, wt) {
					t.Errorf("%s: type %v, want %s (Go %s)", name, types, wt, f.Type)
				}
				if gf, _ := prop["format"].(string); wf != "" && gf != wf {
					t.Errorf("%s: format %q, want %q (Go %s)", name, gf, wf, f.Type)
				}
				// A field Go always writes must be listed as required
				// in a schema that lists any.
				_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				omittable := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
				req, hasReq := s["required"].([]any)
				if hasReq && slices.Contains(req, any(name)) == omittable {
					t.Errorf("%s: required is %v, but the Go tag %q says omittable=%v", name, !omittable, f.Tag.Get("json"), omittable)
				}
			}
		})
	}
}

// TestOpenAPIErrorCodes checks the documented error codes against the ones
// the daemon can write.
func TestOpenAPIErrorCodes(t *testing.T) {
	d := loadDoc(t)
	schemas := obj(t, obj(t, d["components"], "components")["schemas"], "components.schemas")
	code := obj(t, obj(t, obj(t, schemas["ErrorDetail"], "ErrorDetail")["properties"], "ErrorDetail.properties")["code"], "ErrorDetail.code")
	enum, _ := code["enum"].([]any)
	var got []string
	for _, e := range enum {
		s, _ := e.(string)
		got = append(got, s)
	}
	want := []string{api.CodeInvalid, api.CodeSignature, api.CodeUnauthorized, api.CodeECapability,
		api.CodeNotFound, api.CodeConflict, api.CodeTooLarge, api.CodeInternal, api.CodeUnimplemented, api.CodeUnavailable}
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("ErrorDetail.code enum %v, want %v", got, want)
	}
}
