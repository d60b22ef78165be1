package rows

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Rows as they come back from RethinkDB: numbers are float64, times raw.
var exported = []Row{
	{"id": float64(1), "name": "Ann", "tags": []any{"a", "b"}, "t": map[string]any{"$reql_type$": "TIME", "epoch_time": float64(1.5e9), "timezone": "+00:00"}},
	{"id": "b-2", "name": "Bob, \"the\" builder\nline 2", "score": 0.25, "nil": nil, "ok": false, "big": 1e21},
	{"id": float64(3)},
}

func TestNDJSONEncoder(t *testing.T) {
	var b bytes.Buffer
	enc := NewNDJSONEncoder(&b)
	for _, r := range exported {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := `{"id":1,"name":"Ann","t":{"$reql_type$":"TIME","epoch_time":1500000000,"timezone":"+00:00"},"tags":["a","b"]}
{"big":1e+21,"id":"b-2","name":"Bob, \"the\" builder\nline 2","nil":null,"ok":false,"score":0.25}
{"id":3}
`
	if b.String() != want {
		t.Errorf("NDJSON =\n%s\nwant\n%s", b.String(), want)
	}
	if enc.ContentType() != "application/x-ndjson" {
		t.Errorf("content type %q", enc.ContentType())
	}
	// What the encoder writes, Parse reads back.
	rows, err := Parse("application/x-ndjson", &b, ParseOptions{Limit: testLimit})
	if err != nil || len(rows) != 3 {
		t.Fatalf("re-import: %v, %v", rows, err)
	}
}

func TestCSVEncoder(t *testing.T) {
	cols := CSVColumns("id", exported)
	if want := []string{"id", "big", "name", "nil", "ok", "score", "t", "tags"}; !reflect.DeepEqual(cols, want) {
		t.Fatalf("CSVColumns = %q, want %q", cols, want)
	}
	var b bytes.Buffer
	enc := NewCSVEncoder(&b, cols, "id")
	for _, r := range exported {
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "id,big,name,nil,ok,score,t,tags\n" +
		`1,,Ann,,,,"{""$reql_type$"":""TIME"",""epoch_time"":1500000000,""timezone"":""+00:00""}","[""a"",""b""]"` + "\n" +
		`b-2,1e+21,"Bob, ""the"" builder` + "\n" + `line 2",null,false,0.25,,` + "\n" +
		"3,,,,,,,\n"
	if b.String() != want {
		t.Errorf("CSV =\n%s\nwant\n%s", b.String(), want)
	}
	if enc.ContentType() != "text/csv; charset=utf-8" {
		t.Errorf("content type %q", enc.ContentType())
	}

	// Export → import with csvTypes=infer gives the rows back.
	rows, err := Parse("text/csv", &b, ParseOptions{Limit: testLimit, CSVTypes: CSVInfer})
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if got, want := toDatum(rows[i]), toDatum(exported[i]); !reflect.DeepEqual(got, want) {
			t.Errorf("row %d after export and import = %#v, want %#v", i, got, want)
		}
	}
}

func TestCSVEncoderEdges(t *testing.T) {
	// No rows: still a header, so the file says what the columns are.
	var b bytes.Buffer
	enc := NewCSVEncoder(&b, []string{"id", "x"}, "")
	if err := enc.Flush(); err != nil || b.String() != "id,x\n" {
		t.Errorf("empty export = %q, %v", b.String(), err)
	}

	// A row with a field the header lacks stops the export loudly.
	b.Reset()
	enc = NewCSVEncoder(&b, []string{"id", "x"}, "id")
	if err := enc.Encode(Row{"id": "a", "x": 1.0}); err != nil {
		t.Fatal(err)
	}
	err := enc.Encode(Row{"id": "b", "late": true})
	var uf *UnknownFieldError
	if !errors.As(err, &uf) || uf.Field != "late" || !strings.Contains(err.Error(), `row "b" has the field "late"`) {
		t.Errorf("unknown field: %v", err)
	}
	_ = enc.Flush()
	if b.String() != "id,x\na,1\n" {
		t.Errorf("after the refused row the output is %q; want nothing of it", b.String())
	}

	if got := CSVColumns("sku", nil); !reflect.DeepEqual(got, []string{"sku"}) {
		t.Errorf("CSVColumns of no rows = %q", got)
	}
}

func TestExportFormat(t *testing.T) {
	for accept, want := range map[string]Format{
		"application/x-ndjson":                 FormatNDJSON,
		"text/csv":                             FormatCSV,
		"text/csv;q=0.9, application/json":     FormatCSV,
		"application/json, application/ndjson": FormatNDJSON,
		"application/json":                     "",
		"":                                     "",
		"application/json;as=Table;g=meta.k8s.io": "",
	} {
		got, ok := ExportFormat(accept)
		if got != want || ok != (want != "") {
			t.Errorf("ExportFormat(%q) = %q, %v; want %q", accept, got, ok, want)
		}
	}
}

func TestMergePatch(t *testing.T) {
	// The examples of RFC 7386, appendix A.
	for _, tc := range []struct{ target, patch, want string }{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"a":1,"e":null}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	} {
		var target, patch, want any
		for _, p := range []struct {
			s string
			v *any
		}{{tc.target, &target}, {tc.patch, &patch}, {tc.want, &want}} {
			if err := json.Unmarshal([]byte(p.s), p.v); err != nil {
				t.Fatal(err)
			}
		}
		before, _ := json.Marshal(target)
		got := MergePatch(target, patch)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("MergePatch(%s, %s) = %v, want %s", tc.target, tc.patch, got, tc.want)
		}
		if after, _ := json.Marshal(target); !bytes.Equal(before, after) {
			t.Errorf("MergePatch modified its target: %s → %s", before, after)
		}
	}
}
