package rows

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const testLimit = 1 << 20

func parse(t *testing.T, contentType, body string) ([]Row, error) {
	t.Helper()
	rows, err := Parse(contentType, strings.NewReader(body), ParseOptions{Limit: testLimit})
	if err != nil && rows != nil {
		t.Fatalf("Parse returned rows and an error: %v", err)
	}
	return rows, err
}

// status is what a user of the rows endpoint would see for err.
func status(err error) metav1.Status {
	return StatusError(err, "orders.items").ErrStatus
}

func causeFields(st metav1.Status) []string {
	var f []string
	if st.Details != nil {
		for _, c := range st.Details.Causes {
			f = append(f, c.Field)
		}
	}
	return f
}

func TestParseFormats(t *testing.T) {
	want := []Row{
		{"id": "a", "n": json.Number("1"), "tags": []any{"x"}},
		{"id": json.Number("2"), "big": json.Number("9007199254740992"), "f": json.Number("0.5"), "nested": map[string]any{"ok": true}, "nil": nil},
	}
	for _, tc := range []struct{ name, ct, body string }{
		{"array", "application/json", `[{"id":"a","n":1,"tags":["x"]},
			{"id":2,"big":9007199254740992,"f":0.5,"nested":{"ok":true},"nil":null}]`},
		{"ndjson", "application/x-ndjson", "{\"id\":\"a\",\"n\":1,\"tags\":[\"x\"]}\r\n\n  \n{\"id\":2,\"big\":9007199254740992,\"f\":0.5,\"nested\":{\"ok\":true},\"nil\":null}"},
		{"ndjson with charset and BOM", "application/x-ndjson; charset=utf-8", "\xef\xbb\xbf{\"id\":\"a\",\"n\":1,\"tags\":[\"x\"]}\n{\"id\":2,\"big\":9007199254740992,\"f\":0.5,\"nested\":{\"ok\":true},\"nil\":null}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := parse(t, tc.ct, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rows, want) {
				t.Errorf("rows = %#v\nwant %#v", rows, want)
			}
		})
	}

	rows, err := parse(t, "application/json", ` {"id": "only"} `)
	if err != nil || !reflect.DeepEqual(rows, []Row{{"id": "only"}}) {
		t.Errorf("object body = %v, %v", rows, err)
	}
	rows, err = parse(t, "application/json", `[]`)
	if err != nil || len(rows) != 0 {
		t.Errorf("empty array = %v, %v; want no rows and no error", rows, err)
	}
}

func TestParseCSVTyping(t *testing.T) {
	body := "id,zip,active,score,meta,note,empty\r\n" +
		"1,007,true,1.5,\"{\"\"a\"\":1}\",null,\n" +
		"2,12345678901234567890,false,-0,\"[1,2]\",\"x, \"\"y\"\"\",\n"
	rows, err := Parse("text/csv", strings.NewReader(body), ParseOptions{Limit: testLimit})
	if err != nil {
		t.Fatal(err)
	}
	wantStrings := []Row{
		{"id": "1", "zip": "007", "active": "true", "score": "1.5", "meta": `{"a":1}`, "note": "null"},
		{"id": "2", "zip": "12345678901234567890", "active": "false", "score": "-0", "meta": "[1,2]", "note": `x, "y"`},
	}
	if !reflect.DeepEqual(rows, wantStrings) {
		t.Errorf("csvTypes=strings rows = %#v\nwant %#v", rows, wantStrings)
	}

	rows, err = Parse("text/csv", strings.NewReader(body), ParseOptions{Limit: testLimit, CSVTypes: CSVInfer})
	if err != nil {
		t.Fatal(err)
	}
	wantInfer := []Row{
		{"id": json.Number("1"), "zip": "007", "active": true, "score": json.Number("1.5"), "meta": map[string]any{"a": json.Number("1")}, "note": nil},
		// 12345678901234567890 cannot be stored exactly as a number: it stays text.
		{"id": json.Number("2"), "zip": "12345678901234567890", "active": false, "score": json.Number("-0"), "meta": []any{json.Number("1"), json.Number("2")}, "note": `x, "y"`},
	}
	if !reflect.DeepEqual(rows, wantInfer) {
		t.Errorf("csvTypes=infer rows = %#v\nwant %#v", rows, wantInfer)
	}

	// Header only: no rows, no error.
	rows, err = parse(t, "text/csv", "id,name\n")
	if err != nil || len(rows) != 0 {
		t.Errorf("header-only CSV = %v, %v", rows, err)
	}
}

// Each class of bad input gets its status code and a message that says
// where and what.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, ct, body string
		code           int32
		msg            []string // substrings of the Status message
		fields         []string // StatusCause fields, when listed
	}{
		{"json syntax", "application/json", "[\n {\"id\": 1},\n {\"id\": x}\n]", 400,
			[]string{"malformed JSON body at line 3, column 9 (rows[1])", "invalid character 'x'"}, nil},
		{"json cut off", "application/json", `[{"id": 1}`, 400, []string{"malformed JSON body", "cut off"}, nil},
		{"json trailing data", "application/json", `{"id": 1} {"id": 2}`, 400,
			[]string{"line 1, column 11", "unexpected data after the JSON value"}, nil},
		{"json missing comma", "application/json", "[{\"id\": 1}\n {\"id\": 2}]", 400, []string{"line 2, column 2 (rows[1])", "after array element"}, nil},
		{"json array trailing data", "application/json", "[{\"id\": 1}]\n]", 400, []string{"line 2, column 1"}, nil},
		{"ndjson syntax", "application/x-ndjson", "{\"id\":1}\n\n{\"id\":2,}\n", 400,
			[]string{"malformed NDJSON body at line 3, column 9 (rows[1])"}, nil},
		{"ndjson pretty printed", "application/x-ndjson", "{\n\"id\": 1\n}", 400,
			[]string{"line 1", "each line must hold one complete JSON object"}, nil},
		{"csv bare quote", "text/csv", "id,name\n1,a\"b\n", 400,
			[]string{"malformed CSV body at line 2, column 4 (rows[0])", "double quotes"}, nil},
		{"csv field count", "text/csv", "id,name\n1,a\n2\n", 400,
			[]string{"malformed CSV body at line 3 (rows[1])", "number of fields than the header's 2"}, nil},
		{"invalid utf-8", "application/json", "{\"id\": \"a\xffb\"}", 400, []string{"line 1, column 10", "not valid UTF-8"}, nil},
		{"empty", "application/json", " \n ", 400, []string{"the body is empty"}, nil},
		{"empty csv", "text/csv", "", 400, []string{"the body is empty; send a header row"}, nil},
		{"no content type", "", `{"id":1}`, 415, []string{"no Content-Type", "application/json, application/x-ndjson, text/csv"}, nil},
		{"xml", "application/xml", `<x/>`, 415, []string{`unsupported Content-Type "application/xml"`}, nil},
		{"latin1", "text/csv; charset=iso-8859-1", "id\n1\n", 415, []string{"charset=utf-8"}, nil},
		{"scalar body", "application/json", `"hello"`, 422, []string{"the body is a string; send a JSON object or an array"}, []string{""}},
		{"row not an object", "application/json", `[{"id":1}, 2, {"id":3}, [4]]`, 422,
			[]string{"rows[1] (line 1): the row is a number", "rows[3] (line 1): the row is an array"}, []string{"rows[1]", "rows[3]"}},
		{"ndjson line not an object", "application/x-ndjson", "{\"id\":1}\n\"two\"\n", 422,
			[]string{"rows[1] (line 2): the row is a string"}, []string{"rows[1]"}},
		{"missing key", "application/json", `[{"id":"a"},{"name":"b"}]`, 422,
			[]string{`rows[1].id (line 1): the row has no primary key "id"`}, []string{"rows[1].id"}},
		{"bad key types", "application/json", `[{"id":true},{"id":null},{"id":{"a":1}},{"id":""},{"id":"` + strings.Repeat("k", 128) + `"},{"id":"a\u0000b"}]`, 422,
			[]string{"rows[0].id", "not a boolean", "rows[1].id", "the key is null", "rows[2].id", "not an object",
				"rows[3].id", "the key is empty", "rows[4].id", "128 bytes long; RethinkDB primary keys are at most 127 bytes", "rows[5].id", "NUL"},
			[]string{"rows[0].id", "rows[1].id", "rows[2].id", "rows[3].id", "rows[4].id", "rows[5].id"}},
		{"inexact integer", "application/x-ndjson", `{"id":1,"order":{"n":9007199254740993}}`, 422,
			[]string{"rows[0].order.n (line 1): the integer 9007199254740993 cannot be stored exactly", "send it as a string"}, []string{"rows[0].order.n"}},
		{"inexact integer key", "application/json", `{"id":12345678901234567890}`, 422, []string{"rows[0].id (line 1): the integer 12345678901234567890"}, []string{"rows[0].id"}},
		{"number out of range", "application/json", `{"id":1,"x":[1e400]}`, 422, []string{"rows[0].x[0] (line 1): the number 1e400 is out of range"}, []string{"rows[0].x[0]"}},
		{"reql_type in row", "application/json", `{"id":1,"$reql_type$":"TIME"}`, 422, []string{`rows[0]["$reql_type$"]`, "reserved by RethinkDB"}, []string{`rows[0]["$reql_type$"]`}},
		{"unknown pseudotype", "application/json", `{"id":1,"x":{"$reql_type$":"LITERAL","value":1}}`, 422,
			[]string{`rows[0].x["$reql_type$"]`, `"TIME", "BINARY" or "GEOMETRY"`}, []string{`rows[0].x["$reql_type$"]`}},
		{"duplicate key", "application/json", `[{"id":1},{"id":"1"},{"id":1.0}]`, 422,
			[]string{"rows[2].id (line 1): the key 1 is also the key of rows[0]; a batch may write each key once"}, []string{"rows[2].id"}},
		{"odd field names", "application/json", `{"id":1,"a b":{"c.d":[1,{"e":1e999}]}}`, 422,
			[]string{`rows[0]["a b"]["c.d"][1].e`}, []string{`rows[0]["a b"]["c.d"][1].e`}},
		{"csv missing key", "text/csv", "id,name\n1,a\n,b\n", 422, []string{`rows[1].id (line 3): the row has no primary key "id"`}, []string{"rows[1].id"}},
		{"csv header", "text/csv", "id,,name,name\n1,2,3,4\n", 422,
			[]string{"header[1] (line 1): column 2 of the header has no name", `header[3] (line 1): column 4 repeats the field name "name" of column 3`},
			[]string{"header[1]", "header[3]"}},
		{"too deep", "application/json", `{"id":1,"x":` + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + `}`, 422,
			[]string{"nest more than 100 levels deep"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.ct, tc.body)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			st := status(err)
			if st.Code != tc.code {
				t.Errorf("code = %d (%s), want %d", st.Code, st.Message, tc.code)
			}
			for _, m := range tc.msg {
				if !strings.Contains(st.Message, m) {
					t.Errorf("message %q does not contain %q", st.Message, m)
				}
			}
			if tc.fields != nil && !reflect.DeepEqual(causeFields(st), tc.fields) {
				t.Errorf("cause fields = %q, want %q", causeFields(st), tc.fields)
			}
		})
	}
}

func TestParseLimits(t *testing.T) {
	body := `[{"id":1},{"id":2}]`
	if _, err := Parse("application/json", strings.NewReader(body), ParseOptions{Limit: int64(len(body))}); err != nil {
		t.Errorf("a body exactly at the limit: %v", err)
	}
	_, err := Parse("application/json", strings.NewReader(body), ParseOptions{Limit: int64(len(body) - 1)})
	st := status(err)
	if st.Code != http.StatusRequestEntityTooLarge || !strings.Contains(st.Message, "larger than the limit of 18 bytes") {
		t.Errorf("over the limit: %d %q, want 413 naming the limit", st.Code, st.Message)
	}

	for _, tc := range []struct{ ct, body string }{
		{"application/json", `[{"id":1},{"id":2},{"id":3}]`},
		{"application/x-ndjson", "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n"},
		{"text/csv", "id\n1\n2\n3\n"},
	} {
		_, err := Parse(tc.ct, strings.NewReader(tc.body), ParseOptions{Limit: testLimit, MaxRows: 2})
		st := status(err)
		if st.Code != http.StatusRequestEntityTooLarge || !strings.Contains(st.Message, "more than 2 rows") {
			t.Errorf("%s with 3 rows, MaxRows 2: %d %q, want 413", tc.ct, st.Code, st.Message)
		}
		if _, err := Parse(tc.ct, strings.NewReader(tc.body), ParseOptions{Limit: testLimit, MaxRows: 3}); err != nil {
			t.Errorf("%s with 3 rows, MaxRows 3: %v", tc.ct, err)
		}
	}
}

// A batch with many bad rows is rejected with the first MaxReportedErrors
// named and the rest counted.
func TestParseReportsBoundedErrors(t *testing.T) {
	var b bytes.Buffer
	for i := range 50 {
		fmt.Fprintf(&b, "{\"name\":\"row %d\"}\n", i)
	}
	_, err := parse(t, "application/x-ndjson", b.String())
	var inv *InvalidError
	if !errors.As(err, &inv) || inv.Total != 50 || len(inv.Errors) != MaxReportedErrors {
		t.Fatalf("err = %v, want an InvalidError with 20 of 50 errors", err)
	}
	st := status(err)
	if len(st.Details.Causes) != MaxReportedErrors || !strings.HasSuffix(st.Message, "; and 30 more") {
		t.Errorf("status has %d causes, message ends %q", len(st.Details.Causes), st.Message[len(st.Message)-20:])
	}
	if st.Details.Causes[19].Field != "rows[19].id" || st.Details.Causes[19].Message != `the row has no primary key "id"; every row needs one (a string or a number) (line 20)` {
		t.Errorf("cause 19 = %+v", st.Details.Causes[19])
	}
}

func TestParseCustomPrimaryKey(t *testing.T) {
	rows, err := Parse("application/json", strings.NewReader(`{"sku":"a-1","id":null}`), ParseOptions{Limit: testLimit, PrimaryKey: "sku"})
	if err != nil || len(rows) != 1 {
		t.Fatalf("rows = %v, err = %v", rows, err)
	}
	_, err = Parse("application/json", strings.NewReader(`{"id":"a"}`), ParseOptions{Limit: testLimit, PrimaryKey: "sku"})
	if st := status(err); st.Code != 422 || !reflect.DeepEqual(causeFields(st), []string{"rows[0].sku"}) {
		t.Errorf("missing sku: %d %q %q", st.Code, st.Message, causeFields(st))
	}
}

func TestParseObject(t *testing.T) {
	obj, err := ParseObject("application/merge-patch+json", strings.NewReader(`{"a":null,"n":1}`), testLimit)
	if err != nil || !reflect.DeepEqual(obj, Row{"a": nil, "n": json.Number("1")}) {
		t.Errorf("ParseObject = %v, %v", obj, err)
	}
	for _, tc := range []struct {
		ct, body string
		code     int32
		msg      string
	}{
		{"application/json", `[{"id":1}]`, 422, "the body is an array; send one JSON object"},
		{"application/json", `null`, 422, "the body is null"},
		{"application/json", `{"a":`, 400, "cut off"},
		{"text/csv", "id\n1\n", 415, "application/json, application/merge-patch+json"},
		{"application/json-patch+json", `[]`, 415, "unsupported Content-Type"},
	} {
		_, err := ParseObject(tc.ct, strings.NewReader(tc.body), testLimit)
		if st := status(err); st.Code != tc.code || !strings.Contains(st.Message, tc.msg) {
			t.Errorf("ParseObject(%s, %s) = %d %q, want %d with %q", tc.ct, tc.body, st.Code, st.Message, tc.code, tc.msg)
		}
	}
}

func TestParameters(t *testing.T) {
	for _, tc := range []struct {
		s    string
		kt   KeyType
		want any
		msg  string
	}{
		{"abc", "", "abc", ""},
		{"42", KeyString, "42", ""},
		{"42", KeyNumber, float64(42), ""},
		{"-1.5e3", KeyNumber, float64(-1500), ""},
		{"abc", KeyNumber, nil, `"abc" is not a number`},
		{"0x10", KeyNumber, nil, "not a number"},
		{"9007199254740993", KeyNumber, nil, "cannot be stored exactly"},
		{"", KeyString, nil, "the key is empty"},
		{strings.Repeat("x", 128), KeyString, nil, "at most 127 bytes"},
	} {
		got, err := ParseKey(tc.s, tc.kt)
		if tc.msg == "" {
			if err != nil || got != tc.want {
				t.Errorf("ParseKey(%q, %q) = %v, %v; want %v", tc.s, tc.kt, got, err, tc.want)
			}
			continue
		}
		if st := status(err); st.Code != 400 || !strings.Contains(st.Message, tc.msg) {
			t.Errorf("ParseKey(%q, %q) = %d %q, want 400 with %q", tc.s, tc.kt, st.Code, st.Message, tc.msg)
		}
	}

	if _, err := ParseKeyType("int"); status(err).Code != 400 {
		t.Errorf("ParseKeyType(int) = %v, want a 400", err)
	}
	if kt, err := ParseKeyType(""); kt != KeyString || err != nil {
		t.Errorf("ParseKeyType(\"\") = %q, %v", kt, err)
	}
	if c, err := ParseOnConflict(""); c != OnConflictError || err != nil {
		t.Errorf("ParseOnConflict(\"\") = %q, %v", c, err)
	}
	if _, err := ParseOnConflict("ignore"); status(err).Code != 400 || !strings.Contains(err.Error(), `"error" (the default), "replace" or "update"`) {
		t.Errorf("ParseOnConflict(ignore) = %v", err)
	}
	if c, err := ParseCSVTypes("infer"); c != CSVInfer || err != nil {
		t.Errorf("ParseCSVTypes(infer) = %q, %v", c, err)
	}
	if _, err := ParseCSVTypes("auto"); status(err).Code != 400 {
		t.Errorf("ParseCSVTypes(auto) = %v", err)
	}
}

func TestStatusErrorOfOperations(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   int32
		reason metav1.StatusReason
		msg    string
	}{
		{&NotFoundError{Key: "42"}, 404, metav1.StatusReasonNotFound, `table orders.items: row "42" not found; if the table's keys are numbers, add ?keyType=number`},
		{&NotFoundError{Key: float64(42)}, 404, metav1.StatusReasonNotFound, `table orders.items: row 42 not found`},
		{&TableNotFoundError{RethinkDB: "ns_orders_1234.items"}, 404, metav1.StatusReasonNotFound, "RethinkDB table ns_orders_1234.items does not exist; wait until the Table is Ready"},
		{&ConflictError{Msg: "rows already exist, nothing was written", Rows: []KeyConflict{{Row: 3, Key: "a"}}, Total: 1}, 409, metav1.StatusReasonConflict, `rows already exist, nothing was written: rows[3]: a row with key "a" already exists`},
		{&BatchError{Cause: &ConflictError{Msg: "rows were created by another request meanwhile, nothing was written", Rows: []KeyConflict{{Row: 7, Key: float64(7)}}, Total: 1}, RolledBack: 5}, 409, metav1.StatusReasonConflict, "the 5 rows written before the failure were rolled back"},
		{&BatchError{Cause: fmt.Errorf("insert rows: %w", &net503{}), Uncertain: []any{"a", "b"}}, 503, metav1.StatusReasonServiceUnavailable, `may or may not be stored: "a", "b"`},
		{fmt.Errorf("read row: %w", errors.New("something odd")), 500, metav1.StatusReasonInternalError, "something odd"},
	} {
		st := status(tc.err)
		if st.Code != tc.code || st.Reason != tc.reason || !strings.Contains(st.Message, tc.msg) {
			t.Errorf("StatusError(%v) = %d %s %q; want %d %s containing %q", tc.err, st.Code, st.Reason, st.Message, tc.code, tc.reason, tc.msg)
		}
	}
	if StatusError(nil, "x") != nil {
		t.Error("StatusError(nil) is not nil")
	}
	st := status(&NotFoundError{Key: "k"})
	if st.Details.Kind != "rows" || st.Details.Name != "k" || st.Details.Group != "guildnet.io" {
		t.Errorf("404 details = %+v", st.Details)
	}
}

// net503 is a connection-level failure as the driver reports one.
type net503 struct{}

func (*net503) Error() string   { return "connection refused" }
func (*net503) Timeout() bool   { return false }
func (*net503) Temporary() bool { return false }
