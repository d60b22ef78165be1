package rows

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"
	"unicode/utf8"
)

// Format is an encoding of rows in a request or response body.
type Format string

const (
	// FormatJSON is one JSON object, or a JSON array of objects.
	FormatJSON Format = "json"
	// FormatNDJSON is one JSON object per line (newline-delimited JSON).
	FormatNDJSON Format = "ndjson"
	// FormatCSV is comma-separated values with a header row of field names.
	FormatCSV Format = "csv"
)

// Media types of the formats.
const (
	MediaTypeJSON       = "application/json"
	MediaTypeMergePatch = "application/merge-patch+json"
	MediaTypeNDJSON     = "application/x-ndjson"
	MediaTypeCSV        = "text/csv"
)

func (f Format) name() string {
	switch f {
	case FormatJSON:
		return "JSON"
	case FormatNDJSON:
		return "NDJSON"
	case FormatCSV:
		return "CSV"
	}
	return string(f)
}

// FormatOf returns the format of a request body from its Content-Type. It
// accepts application/json, application/x-ndjson (also application/ndjson,
// application/jsonl) and text/csv; a charset other than UTF-8 is refused.
func FormatOf(contentType string) (Format, error) {
	supported := []string{MediaTypeJSON, MediaTypeNDJSON, MediaTypeCSV}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", &UnsupportedMediaTypeError{ContentType: contentType, Supported: supported}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return "", &UnsupportedMediaTypeError{ContentType: contentType, Supported: []string{"the same with charset=utf-8"}}
	}
	switch mt {
	case MediaTypeJSON:
		return FormatJSON, nil
	case MediaTypeNDJSON, "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return FormatNDJSON, nil
	case MediaTypeCSV:
		return FormatCSV, nil
	}
	return "", &UnsupportedMediaTypeError{ContentType: contentType, Supported: supported}
}

// CSVTypes says how CSV cells become values.
type CSVTypes string

const (
	// CSVStrings (the default) keeps every cell a string, exactly as
	// written. An empty cell means "no value": the field is left out of
	// the row (CSV cannot tell an empty string from a missing value).
	CSVStrings CSVTypes = "strings"
	// CSVInfer reads cells the way the CSV export writes values: a JSON
	// number becomes a number (unless RethinkDB could not store it
	// exactly, then it stays a string), true/false a boolean, null null,
	// a cell starting with { or [ that is valid JSON an object or array;
	// every other cell is a string, and an empty cell leaves the field out.
	// So export → import with CSVInfer gives the rows back, except strings
	// that look like one of those values.
	CSVInfer CSVTypes = "infer"
)

// ParseCSVTypes reads the csvTypes query parameter; "" means CSVStrings.
func ParseCSVTypes(s string) (CSVTypes, error) {
	switch CSVTypes(s) {
	case "", CSVStrings:
		return CSVStrings, nil
	case CSVInfer:
		return CSVInfer, nil
	}
	return "", &ParameterError{Param: "csvTypes", Msg: fmt.Sprintf("%q is not a CSV typing; use %q (the default: every cell a string) or %q (numbers, booleans, null and JSON read as such)", s, CSVStrings, CSVInfer)}
}

// DefaultMaxRows is how many rows one request may carry unless
// ParseOptions.MaxRows says otherwise: RethinkDB's default array limit,
// which also bounds the changes a batch write reports back.
const DefaultMaxRows = MaxArrayLen

// ParseOptions configure Parse.
type ParseOptions struct {
	// Limit is the largest body accepted, in bytes. It must be positive.
	Limit int64
	// PrimaryKey is the table's primary key; "" means "id".
	PrimaryKey string
	// CSVTypes says how CSV cells are typed; "" means CSVStrings.
	CSVTypes CSVTypes
	// MaxRows is the most rows one body may hold; 0 means DefaultMaxRows.
	MaxRows int
}

// Parse reads the rows of an insert or import body in the format its
// Content-Type names (see FormatOf). It reads at most opts.Limit bytes.
//
// Either it returns the rows, each with a valid primary key and only values
// RethinkDB stores as given (numbers as json.Number), or it returns no rows
// and an error: *UnsupportedMediaTypeError (415), *SyntaxError (400),
// *TooLargeError (413), *InvalidError (422, listing each failed row), or
// the error of reading body.
func Parse(contentType string, body io.Reader, opts ParseOptions) ([]Row, error) {
	format, err := FormatOf(contentType)
	if err != nil {
		return nil, err
	}
	return ParseFormat(format, body, opts)
}

// ParseFormat is Parse for a known format.
func ParseFormat(format Format, body io.Reader, opts ParseOptions) ([]Row, error) {
	if opts.PrimaryKey == "" {
		opts.PrimaryKey = DefaultPrimaryKey
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = DefaultMaxRows
	}
	data, err := readBody(format, body, opts.Limit)
	if err != nil {
		return nil, err
	}
	var values []any
	var lines []int // line each row starts on (0: unknown)
	switch format {
	case FormatJSON:
		values, lines, err = parseJSON(data, opts.MaxRows)
	case FormatNDJSON:
		values, lines, err = parseNDJSON(data, opts.MaxRows)
	case FormatCSV:
		types := opts.CSVTypes
		if types == "" {
			types = CSVStrings
		}
		values, lines, err = parseCSV(data, opts.MaxRows, types)
	default:
		return nil, fmt.Errorf("rows: unknown format %q", format)
	}
	if err != nil {
		return nil, err
	}
	rows, _, err := checkValues(values, opts.PrimaryKey, lines)
	if err != nil {
		return nil, err
	}
	return rows, nil
}

// ParseObject reads the body of a PUT (a row) or PATCH (a JSON merge patch):
// exactly one JSON object, application/json or application/merge-patch+json.
// It checks syntax only; Replace and MergePatch check the values.
func ParseObject(contentType string, body io.Reader, limit int64) (Row, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	supported := []string{MediaTypeJSON, MediaTypeMergePatch}
	if err != nil || (mt != MediaTypeJSON && mt != MediaTypeMergePatch) {
		return nil, &UnsupportedMediaTypeError{ContentType: contentType, Supported: supported}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return nil, &UnsupportedMediaTypeError{ContentType: contentType, Supported: []string{"the same with charset=utf-8"}}
	}
	data, err := readBody(FormatJSON, body, limit)
	if err != nil {
		return nil, err
	}
	v, err := decodeOne(data, FormatJSON, 0, -1)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &InvalidError{Total: 1, Errors: []RowError{{Row: -1, Msg: fmt.Sprintf("the body is %s; send one JSON object", typeName(v))}}}
	}
	return obj, nil
}

// readBody reads all of body, at most limit bytes, and checks that it is
// UTF-8 and not empty. A UTF-8 byte order mark (spreadsheets write one) is
// dropped.
func readBody(format Format, body io.Reader, limit int64) ([]byte, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("rows: the body limit must be positive, got %d", limit)
	}
	// Reading limit+1 bytes tells "exactly at the limit" from "over it".
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read the request body: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, &TooLargeError{Limit: limit, Unit: "bytes"}
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, n := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		line, col := position(data, off)
		return nil, &SyntaxError{Format: format, Line: line, Column: col, Row: -1, Msg: "the body is not valid UTF-8; send it UTF-8 encoded"}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &SyntaxError{Format: format, Line: 1, Row: -1, Msg: "the body is empty; send " + format.expected()}
	}
	return data, nil
}

func (f Format) expected() string {
	switch f {
	case FormatNDJSON:
		return "one JSON object per line"
	case FormatCSV:
		return "a header row of field names, then one line per row"
	}
	return "a JSON object or an array of JSON objects"
}

// position is the 1-based line and column (in characters) of byte offset
// off in data.
func position(data []byte, off int) (line, col int) {
	if off > len(data) {
		off = len(data)
	}
	if off < 0 {
		off = 0
	}
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	start := bytes.LastIndexByte(before, '\n') + 1
	return line, utf8.RuneCount(before[start:]) + 1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func skipSpace(data []byte, off int) int {
	for off < len(data) && isSpace(data[off]) {
		off++
	}
	return off
}

// decodeOne decodes exactly one JSON value from data (a whole body, or one
// NDJSON line starting at byte base of the body). Numbers stay json.Number.
func decodeOne(data []byte, format Format, base, row int) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, jsonSyntaxError(data, format, base, row, err, dec.InputOffset())
	}
	if off := skipSpace(data, int(dec.InputOffset())); off < len(data) {
		return nil, syntaxAt(data, format, base, off, row, "unexpected data after the JSON value"+format.oneValueHint())
	}
	return v, nil
}

func (f Format) oneValueHint() string {
	if f == FormatNDJSON {
		return "; each line must hold exactly one JSON object"
	}
	return "; send one JSON object or one array of objects"
}

// jsonSyntaxError turns an error of encoding/json into a *SyntaxError at
// the right line and column. data starts at byte base of the body.
func jsonSyntaxError(data []byte, format Format, base, row int, err error, inputOffset int64) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		// Offset counts the bytes read including the offending one.
		off := int(se.Offset) - 1
		if off < 0 {
			off = 0
		}
		msg := se.Error()
		if format == FormatNDJSON && strings.HasPrefix(msg, "unexpected end of JSON input") {
			msg += "; each line must hold one complete JSON object"
		}
		return syntaxAt(data, format, base, off, row, msg)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		msg := "the JSON value is cut off before its end"
		if format == FormatNDJSON {
			msg += "; each line must hold one complete JSON object"
		}
		return syntaxAt(data, format, base, len(data), row, msg)
	}
	return syntaxAt(data, format, base, int(inputOffset), row, err.Error())
}

// elementSyntaxError locates the syntax error of the array element that
// starts at byte off. A json.Decoder reports offsets of later values in a
// stream relative to its internal buffer, not the input, so the element is
// decoded again on its own, where offsets start at off.
func elementSyntaxError(data []byte, off, row int, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		var v any
		if rerr := json.NewDecoder(bytes.NewReader(data[off:])).Decode(&v); rerr != nil {
			if errors.As(rerr, &se) {
				return syntaxAt(data, FormatJSON, 0, off+int(se.Offset)-1, row, se.Error())
			}
			return jsonSyntaxError(data, FormatJSON, 0, row, rerr, 0)
		}
		// The element itself is fine: what precedes it is not (e.g. a
		// missing comma).
		return syntaxAt(data, FormatJSON, 0, off, row, err.Error())
	}
	return jsonSyntaxError(data, FormatJSON, 0, row, err, 0)
}

// syntaxAt is a *SyntaxError at byte off of data, which starts at byte base
// of the body. The body itself is needed for the line number: callers of
// NDJSON pass the line and the line number separately (see parseNDJSON).
func syntaxAt(data []byte, format Format, base, off, row int, msg string) *SyntaxError {
	line, col := position(data, off)
	return &SyntaxError{Format: format, Line: line + base, Column: col, Row: row, Msg: msg}
}

// parseJSON reads a JSON object (one row) or a JSON array of objects.
// Array elements are decoded one by one, so each row's line is known.
func parseJSON(data []byte, maxRows int) ([]any, []int, error) {
	start := skipSpace(data, 0)
	if data[start] != '[' {
		v, err := decodeOne(data, FormatJSON, 0, -1)
		if err != nil {
			return nil, nil, err
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, nil, &InvalidError{Total: 1, Errors: []RowError{{Row: -1, Msg: fmt.Sprintf("the body is %s; send a JSON object or an array of JSON objects", typeName(v))}}}
		}
		line, _ := position(data, start)
		return []any{obj}, []int{line}, nil
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the '['
		return nil, nil, jsonSyntaxError(data, FormatJSON, 0, -1, err, dec.InputOffset())
	}
	var (
		values []any
		lines  []int
	)
	for i := 0; dec.More(); i++ {
		if i >= maxRows {
			return nil, nil, &TooLargeError{Limit: int64(maxRows), Unit: "rows"}
		}
		// The element starts after the separator and whitespace.
		off := skipSpace(data, int(dec.InputOffset()))
		if off < len(data) && data[off] == ',' {
			off = skipSpace(data, off+1)
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, nil, elementSyntaxError(data, off, i, err)
		}
		line, _ := position(data, off)
		values = append(values, v)
		lines = append(lines, line)
	}
	if _, err := dec.Token(); err != nil { // the ']'
		return nil, nil, jsonSyntaxError(data, FormatJSON, 0, -1, err, dec.InputOffset())
	}
	if off := skipSpace(data, int(dec.InputOffset())); off < len(data) {
		return nil, nil, syntaxAt(data, FormatJSON, 0, off, -1, "unexpected data after the JSON array"+FormatJSON.oneValueHint())
	}
	return values, lines, nil
}

// parseNDJSON reads one JSON object per line. Blank lines are skipped; a
// row's index counts the rows, not the lines.
func parseNDJSON(data []byte, maxRows int) ([]any, []int, error) {
	var (
		values []any
		lines  []int
	)
	for lineNo, rest := 1, data; len(rest) > 0; lineNo++ {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		n := len(values)
		if n >= maxRows {
			return nil, nil, &TooLargeError{Limit: int64(maxRows), Unit: "rows"}
		}
		// Positions inside the line are relative to it; lineNo-1 shifts
		// its line 1 to the body's line.
		v, err := decodeOne(line, FormatNDJSON, lineNo-1, n)
		if err != nil {
			return nil, nil, err
		}
		values = append(values, v)
		lines = append(lines, lineNo)
	}
	return values, lines, nil
}

// parseCSV reads a header row of field names, then one row per record.
// Fields are flat: a header "a.b" is a field named "a.b", not a nested one.
func parseCSV(data []byte, maxRows int, types CSVTypes) ([]any, []int, error) {
	cr := csv.NewReader(bytes.NewReader(data))
	header, err := cr.Read()
	if err != nil {
		return nil, nil, csvSyntaxError(err, -1, 0)
	}
	var errs rowErrors
	seen := make(map[string]int, len(header))
	for i, name := range header {
		field := fmt.Sprintf("header[%d]", i)
		switch {
		case name == "":
			errs.add(RowError{Row: -1, Line: 1, Field: field, Msg: fmt.Sprintf("column %d of the header has no name; every column needs a field name", i+1)})
		case seen[name] > 0:
			errs.add(RowError{Row: -1, Line: 1, Field: field, Msg: fmt.Sprintf("column %d repeats the field name %q of column %d", i+1, name, seen[name])})
		default:
			seen[name] = i + 1
		}
	}
	if err := errs.err(); err != nil {
		return nil, nil, err
	}
	var (
		values []any
		lines  []int
	)
	for i := 0; ; i++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, csvSyntaxError(err, i, len(header))
		}
		if i >= maxRows {
			return nil, nil, &TooLargeError{Limit: int64(maxRows), Unit: "rows"}
		}
		line, _ := cr.FieldPos(0)
		row := make(Row, len(rec))
		for j, cell := range rec {
			if cell == "" {
				continue // no value; see CSVStrings
			}
			if types == CSVInfer {
				row[header[j]] = inferCell(cell)
			} else {
				row[header[j]] = cell
			}
		}
		values = append(values, row)
		lines = append(lines, line)
	}
	return values, lines, nil
}

func csvSyntaxError(err error, row, headerLen int) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return &SyntaxError{Format: FormatCSV, Row: row, Msg: err.Error()}
	}
	msg := pe.Err.Error()
	switch {
	case errors.Is(pe.Err, csv.ErrFieldCount):
		msg = fmt.Sprintf("the record has a different number of fields than the header's %d; every line needs one value per column (leave a cell empty for no value)", headerLen)
		return &SyntaxError{Format: FormatCSV, Line: pe.StartLine, Row: row, Msg: msg}
	case errors.Is(pe.Err, csv.ErrBareQuote), errors.Is(pe.Err, csv.ErrQuote):
		msg += `; put a cell that contains quotes, commas or line breaks in double quotes, and double each quote inside it ("")`
	}
	return &SyntaxError{Format: FormatCSV, Line: pe.Line, Column: pe.Column, Row: row, Msg: msg}
}

// inferCell types a CSV cell for CSVInfer.
func inferCell(cell string) any {
	switch cell {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if isJSONNumber(cell) {
		if _, msg := numberValue(cell); msg == "" {
			return json.Number(cell)
		}
		return cell // e.g. a 20-digit ID: keep it exact, as text
	}
	if c := cell[0]; c == '{' || c == '[' {
		dec := json.NewDecoder(strings.NewReader(cell))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) == nil && skipSpace([]byte(cell), int(dec.InputOffset())) == len(cell) {
			return v
		}
	}
	return cell
}

// checkRows validates rows to be inserted: a valid primary key in each, no
// key twice in the batch (RethinkDB would apply two writes of one key in no
// defined order), and only values RethinkDB stores as given. lines (may be
// nil) are the rows' lines in the body. It returns the normalized keys.
func checkRows(rows []Row, pk string, lines []int) ([]any, error) {
	values := make([]any, len(rows))
	for i, r := range rows {
		if r != nil {
			values[i] = r
		}
	}
	_, keys, err := checkValues(values, pk, lines)
	return keys, err
}

// checkValues is checkRows for decoded values, which must be objects.
func checkValues(values []any, pk string, lines []int) ([]Row, []any, error) {
	var errs rowErrors
	rows := make([]Row, len(values))
	keys := make([]any, len(values))
	first := make(map[string]int, len(values))
	for i, v := range values {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		row, ok := v.(map[string]any)
		if !ok {
			errs.add(RowError{Row: i, Line: line, Msg: fmt.Sprintf("the row is %s; each row must be a JSON object", typeName(v))})
			continue
		}
		rows[i] = row
		k := checkRow(row, pk, i, line, &errs)
		if k == nil {
			continue
		}
		keys[i] = k
		id := keyID(k)
		if j, dup := first[id]; dup {
			errs.add(RowError{Row: i, Line: line, Field: childPath("", pk), Msg: fmt.Sprintf("the key %s is also the key of rows[%d]; a batch may write each key once", keyText(k), j)})
			continue
		}
		first[id] = i
	}
	if err := errs.err(); err != nil {
		return nil, nil, err
	}
	return rows, keys, nil
}
