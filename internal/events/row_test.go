package events

import (
	"reflect"
	"testing"
	"time"

	"github.com/coconut-os/coconut/api"
	"github.com/coconut-os/coconut/internal/audit"
)

// TestRowIsTheOneConversion: the chain's row (audit.Record) and the wire's
// (api.Record) have the same fields, types and JSON names in the same
// order, and Row, the one conversion between them, carries every field: a
// field added to one and not the other, or not copied, fails here.
func TestRowIsTheOneConversion(t *testing.T) {
	chain, wire := reflect.TypeFor[audit.Record](), reflect.TypeFor[api.Record]()
	if chain.NumField() != wire.NumField() {
		t.Fatalf("audit.Record has %d fields, api.Record %d", chain.NumField(), wire.NumField())
	}
	for i := range chain.NumField() {
		c, w := chain.Field(i), wire.Field(i)
		if c.Name != w.Name || c.Type != w.Type || c.Tag.Get("json") != w.Tag.Get("json") {
			t.Errorf("field %d: audit.Record %s %s %q, api.Record %s %s %q", i, c.Name, c.Type, c.Tag.Get("json"), w.Name, w.Type, w.Tag.Get("json"))
		}
	}
	// Every field set to a value of its own, then converted.
	var r audit.Record
	v := reflect.ValueOf(&r).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.String:
			f.SetString(chain.Field(i).Name)
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(100 + i))
		case reflect.Uint64:
			f.SetUint(uint64(200 + i))
		case reflect.Map:
			f.Set(reflect.ValueOf(map[string]string{"k": chain.Field(i).Name}))
		case reflect.Struct:
			f.Set(reflect.ValueOf(time.Date(2026, 3, 1, 12, 0, 0, i, time.UTC)))
		default:
			t.Fatalf("field %s: kind %s not covered by this test", chain.Field(i).Name, f.Kind())
		}
	}
	got := reflect.ValueOf(Row(r))
	for i := range v.NumField() {
		if !reflect.DeepEqual(v.Field(i).Interface(), got.Field(i).Interface()) {
			t.Errorf("Row drops %s: %v, got %v", chain.Field(i).Name, v.Field(i).Interface(), got.Field(i).Interface())
		}
	}
}
