package rows

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
)

func TestContinueRoundTrip(t *testing.T) {
	for _, c := range []Continue{
		{Key: "a"},
		{Key: float64(42), Desc: true},
		{Key: 1e21},
		{Key: "k", Index: "name", IndexValue: "Zoë"},
		{Key: float64(7), Index: "by_group", IndexValue: []any{float64(1), "x"}},
		{Key: "t", Index: "created", IndexValue: map[string]any{"$reql_type$": "TIME", "epoch_time": 1.5e9, "timezone": "+00:00"}},
		{Key: true}, // a row written to RethinkDB directly, with a boolean key
		{Key: []any{"compound", float64(1)}},
	} {
		tok, err := EncodeContinue(c)
		if err != nil {
			t.Fatalf("EncodeContinue(%+v): %v", c, err)
		}
		if strings.ContainsAny(tok, "+/=") {
			t.Errorf("token %q is not unpadded base64url", tok)
		}
		got, err := DecodeContinue(tok)
		if err != nil {
			t.Fatalf("DecodeContinue(%q): %v", tok, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip of %+v = %+v", c, got)
		}
	}
	if _, err := EncodeContinue(Continue{Key: nil}); err == nil {
		t.Error("EncodeContinue of a nil key succeeded")
	}
}

func TestContinueRejectsForgedTokens(t *testing.T) {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct{ name, token, msg string }{
		{"not base64", "%%%", "not base64url"},
		{"padded", b64(`{"v":1,"k":"a"}`) + "=", "not base64url"},
		{"not json", b64("hello"), "garbled"},
		{"two values", b64(`{"v":1,"k":"a"}{}`), "garbled"},
		{"array", b64(`[1]`), "garbled"},
		{"wrong version", b64(`{"v":2,"k":"a"}`), "version 2, this server reads version 1"},
		{"no version", b64(`{"k":"a"}`), "version 0"},
		{"no key", b64(`{"v":1}`), "invalid key"},
		{"object key", b64(`{"v":1,"k":{"a":1}}`), "cannot be an object"},
		{"long key", b64(`{"v":1,"k":"` + strings.Repeat("x", 200) + `"}`), "at most 127 bytes"},
		{"inexact key", b64(`{"v":1,"k":9007199254740993}`), "cannot be stored exactly"},
		{"index without value", b64(`{"v":1,"i":"name","k":"a"}`), "no index value"},
		{"value without index", b64(`{"v":1,"k":"a","iv":1}`), "no index"},
		{"bad index value", b64(`{"v":1,"i":"n","k":"a","iv":{"$reql_type$":"X"}}`), "invalid index value"},
		{"huge", strings.Repeat("A", 5000), "5000 characters"},
		{"wrong types", b64(`{"v":"1","k":"a"}`), "garbled"},
	} {
		_, err := DecodeContinue(tc.token)
		st := status(err)
		if st.Code != 400 || !strings.Contains(st.Message, tc.msg) || !strings.Contains(st.Message, "start the list again without continue") {
			t.Errorf("%s: %d %q, want 400 with %q", tc.name, st.Code, st.Message, tc.msg)
		}
	}
}
