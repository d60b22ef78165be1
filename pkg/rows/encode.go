package rows

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"sort"
	"strconv"
	"strings"
)

// Encoder writes rows to a response body one at a time, so an export of a
// large table streams instead of being built in memory.
type Encoder interface {
	// Encode writes one row.
	Encode(row Row) error
	// Flush writes out anything buffered. Call it before flushing the
	// HTTP response, and once at the end.
	Flush() error
	// ContentType is the media type of what the encoder writes.
	ContentType() string
}

// ExportFormat picks the streamed export format from an Accept header:
// FormatNDJSON for application/x-ndjson (or application/ndjson,
// application/jsonl), FormatCSV for text/csv. ok is false when Accept asks
// for neither (the caller then answers with a RowList page). The first
// acceptable entry of the header wins; q-values are not weighed.
func ExportFormat(accept string) (f Format, ok bool) {
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case MediaTypeNDJSON, "application/ndjson", "application/jsonl", "application/x-jsonlines":
			return FormatNDJSON, true
		case MediaTypeCSV:
			return FormatCSV, true
		}
	}
	return "", false
}

// NDJSONEncoder writes one JSON object per line, keys sorted, numbers as
// RethinkDB stores them.
type NDJSONEncoder struct {
	enc *json.Encoder
}

// NewNDJSONEncoder returns an encoder writing to w. Each row is one Write.
func NewNDJSONEncoder(w io.Writer) *NDJSONEncoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &NDJSONEncoder{enc: enc}
}

// Encode writes row and a newline.
func (e *NDJSONEncoder) Encode(row Row) error {
	if row == nil {
		row = Row{}
	}
	return e.enc.Encode(row)
}

// Flush does nothing: every row is written when encoded.
func (e *NDJSONEncoder) Flush() error { return nil }

// ContentType is application/x-ndjson.
func (e *NDJSONEncoder) ContentType() string { return MediaTypeNDJSON }

// UnknownFieldError says a row has a field the CSV header has no column
// for. A CSV header cannot grow once written, and dropping the value would
// make the export silently incomplete, so the export stops instead.
type UnknownFieldError struct {
	Key   any
	Field string
}

func (e *UnknownFieldError) Error() string {
	return fmt.Sprintf("row %s has the field %q, which is not a column of this CSV export (a row was written with a new field while exporting); export again", keyText(e.Key), e.Field)
}

// CSVEncoder writes a header row of column names, then one line per row.
//
// Cells: a missing field is an empty cell; a string is written as is; a
// number as JSON writes it (e.g. 42, 0.5, 1e+21); a boolean as true/false;
// null as null; an object or array as compact JSON text. Import with
// csvTypes=infer reads these back (see CSVInfer).
type CSVEncoder struct {
	w          *csv.Writer
	columns    []string
	index      map[string]int
	primaryKey string
	header     bool
	record     []string
}

// NewCSVEncoder returns an encoder writing to w with the given columns (see
// Table.Columns for a table's exact set, CSVColumns for the rule applied
// to a page of rows). primaryKey names rows in errors.
func NewCSVEncoder(w io.Writer, columns []string, primaryKey string) *CSVEncoder {
	if primaryKey == "" {
		primaryKey = DefaultPrimaryKey
	}
	index := make(map[string]int, len(columns))
	for i, c := range columns {
		index[c] = i
	}
	return &CSVEncoder{w: csv.NewWriter(w), columns: columns, index: index, primaryKey: primaryKey, record: make([]string, len(columns))}
}

// CSVColumns is the column order of a CSV export: the primary key first,
// then the union of the other fields of rows, sorted. Sorting keeps the
// order stable between exports whatever order rows come in.
func CSVColumns(primaryKey string, rows []Row) []string {
	fields := map[string]bool{}
	for _, r := range rows {
		for k := range r {
			fields[k] = true
		}
	}
	return columnsOf(primaryKey, fields)
}

func columnsOf(primaryKey string, fields map[string]bool) []string {
	if primaryKey == "" {
		primaryKey = DefaultPrimaryKey
	}
	delete(fields, primaryKey)
	cols := make([]string, 0, len(fields)+1)
	for k := range fields {
		cols = append(cols, k)
	}
	sort.Strings(cols)
	return append([]string{primaryKey}, cols...)
}

func (e *CSVEncoder) writeHeader() error {
	if e.header {
		return nil
	}
	e.header = true
	return e.w.Write(e.columns)
}

// Encode writes one row. A field with no column is an *UnknownFieldError
// and nothing of the row is written.
func (e *CSVEncoder) Encode(row Row) error {
	if err := e.writeHeader(); err != nil {
		return err
	}
	clear(e.record)
	for k, v := range row {
		i, ok := e.index[k]
		if !ok {
			return &UnknownFieldError{Key: row[e.primaryKey], Field: k}
		}
		cell, err := csvCell(v)
		if err != nil {
			return fmt.Errorf("row %s, field %q: %w", keyText(row[e.primaryKey]), k, err)
		}
		e.record[i] = cell
	}
	return e.w.Write(e.record)
}

// Flush writes the header (also for an export of no rows) and everything
// buffered.
func (e *CSVEncoder) Flush() error {
	if err := e.writeHeader(); err != nil {
		return err
	}
	e.w.Flush()
	return e.w.Error()
}

// ContentType is text/csv with its charset.
func (e *CSVEncoder) ContentType() string { return MediaTypeCSV + "; charset=utf-8" }

func csvCell(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case nil:
		return "null", nil
	case bool:
		return strconv.FormatBool(v), nil
	case json.Number:
		return string(v), nil
	}
	b, err := canonicalJSON(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
