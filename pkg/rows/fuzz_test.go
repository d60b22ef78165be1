package rows

import (
	"bytes"
	"encoding/json"
	"testing"
)

var fuzzContentTypes = []string{"application/json", "application/x-ndjson", "text/csv", "text/csv; charset=utf-8", "application/xml"}

// FuzzParse feeds arbitrary bodies to every format. Parse must never panic,
// never return both rows and an error, and every row it returns must pass
// the insert checks again and encode to JSON.
func FuzzParse(f *testing.F) {
	seeds := []string{
		`{"id":1}`, `[{"id":"a","x":[1,{"y":null}]},{"id":2}]`, `[]`, `[1,"a",null]`,
		"{\"id\":1}\n{\"id\":2}\n", "{\"id\":1}\n\n[", "id,name\n1,a\n2,\"b\"\"c\"\n", "id,,id\n", "id\n\"unterminated\n",
		`{"id":9007199254740993}`, `{"id":1,"$reql_type$":"TIME"}`, "\xef\xbb\xbf{\"id\":\"\xff\"}", `{"id":1e400}`,
		"id,n\n1,{\"a\":[1,2]}\n2,1e5\n", `[[[[[[[[[[`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s), i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, ct uint8, body []byte, infer bool) {
		opts := ParseOptions{Limit: 1 << 16, MaxRows: 1000}
		if infer {
			opts.CSVTypes = CSVInfer
		}
		rows, err := Parse(fuzzContentTypes[int(ct)%len(fuzzContentTypes)], bytes.NewReader(body), opts)
		if err != nil {
			if rows != nil {
				t.Fatalf("Parse returned %d rows and the error %v", len(rows), err)
			}
			if st := StatusError(err, "t").ErrStatus; st.Code >= 500 {
				t.Fatalf("a body got %d: %v", st.Code, err)
			}
			return
		}
		if _, err := checkRows(rows, DefaultPrimaryKey, nil); err != nil {
			t.Fatalf("Parse returned rows that fail the insert checks: %v", err)
		}
		for _, r := range rows {
			if _, err := json.Marshal(toDatum(r)); err != nil {
				t.Fatalf("row %v does not encode: %v", r, err)
			}
		}
	})
}

// FuzzDecodeContinue: a token from a client is untrusted input.
func FuzzDecodeContinue(f *testing.F) {
	for _, c := range []Continue{{Key: "a"}, {Key: 1.0, Index: "x", IndexValue: []any{1.0, "b"}, Desc: true}} {
		tok, _ := EncodeContinue(c)
		f.Add(tok)
	}
	f.Add("eyJ2IjoxLCJrIjpbXX0")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := DecodeContinue(token)
		if err != nil {
			if StatusError(err, "t").ErrStatus.Code != 400 {
				t.Fatalf("DecodeContinue error is not a 400: %v", err)
			}
			return
		}
		if _, err := EncodeContinue(c); err != nil {
			t.Fatalf("decoded position %+v does not encode again: %v", c, err)
		}
	})
}
