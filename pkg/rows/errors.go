package rows

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/pkg/rethinkdb"
)

// MaxReportedErrors bounds how many failed rows an error lists. A batch of
// 10,000 bad rows is still rejected as a whole; the answer names the first
// ones and counts the rest, so it stays readable and small.
const MaxReportedErrors = 20

// SyntaxError says the body is not well-formed JSON, NDJSON or CSV. Callers
// answer 400 Bad Request.
type SyntaxError struct {
	Format Format
	Line   int // 1-based line of the body; 0 when unknown
	Column int // 1-based column (in characters) of that line; 0 when unknown
	Row    int // index of the row being read, -1 when not inside a row
	Msg    string
}

func (e *SyntaxError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "malformed %s body", e.Format.name())
	if e.Line > 0 {
		fmt.Fprintf(&b, " at line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
	}
	if e.Row >= 0 {
		fmt.Fprintf(&b, " (rows[%d])", e.Row)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// TooLargeError says the body is over the size limit or holds more rows
// than one request may carry. Callers answer 413 Request Entity Too Large.
type TooLargeError struct {
	Limit int64
	Unit  string // "bytes" or "rows"
}

func (e *TooLargeError) Error() string {
	if e.Unit == "rows" {
		return fmt.Sprintf("the body holds more than %d rows, the most one request may carry; split it into several requests", e.Limit)
	}
	return fmt.Sprintf("the body is larger than the limit of %d bytes; split it into several requests", e.Limit)
}

// UnsupportedMediaTypeError says the Content-Type is not one the rows
// endpoint reads. Callers answer 415 Unsupported Media Type.
type UnsupportedMediaTypeError struct {
	ContentType string
	Supported   []string
}

func (e *UnsupportedMediaTypeError) Error() string {
	ct := e.ContentType
	if ct == "" {
		return fmt.Sprintf("the request has no Content-Type; send one of %s", strings.Join(e.Supported, ", "))
	}
	return fmt.Sprintf("unsupported Content-Type %q; send one of %s", ct, strings.Join(e.Supported, ", "))
}

// ParameterError says a request parameter (query parameter, continue token,
// row key in the path) is invalid. Callers answer 400 Bad Request.
type ParameterError struct {
	Param string // e.g. "continue", "keyType", "key"
	Msg   string
}

func (e *ParameterError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Param, e.Msg)
}

// RowError is one problem with one row of a request.
type RowError struct {
	Row   int    // index of the row in the batch; -1 when the body is a single row (PUT, PATCH)
	Line  int    // 1-based line in the body where the row starts; 0 when unknown
	Field string // path of the field inside the row ("id", "address.city", "tags[2]"); "" for the row itself
	Msg   string // what is wrong and what to do
}

// Path is the field path of the error as Kubernetes reports it in a
// StatusCause, e.g. "rows[3].id". A single-row body has no "rows[i]" prefix.
func (e RowError) Path() string {
	prefix := ""
	if e.Row >= 0 {
		prefix = fmt.Sprintf("rows[%d]", e.Row)
	}
	switch {
	case prefix == "":
		return e.Field
	case e.Field == "":
		return prefix
	case strings.HasPrefix(e.Field, "["):
		return prefix + e.Field
	default:
		return prefix + "." + e.Field
	}
}

func (e RowError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path())
	if e.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", e.Line)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// InvalidError lists the rows that cannot be stored: a row that is not an
// object, a missing or invalid primary key, a value or field name RethinkDB
// would reject. Callers answer 422 Unprocessable Entity. Nothing was written.
type InvalidError struct {
	Errors []RowError // the first MaxReportedErrors problems
	Total  int        // all problems found, ≥ len(Errors)
}

func (e *InvalidError) Error() string {
	return listMessage("invalid rows, nothing was written", e.Errors, e.Total)
}

// NotFoundError says the row with Key does not exist. Callers answer 404.
type NotFoundError struct {
	Key any
}

func (e *NotFoundError) Error() string {
	msg := fmt.Sprintf("row %s not found", keyText(e.Key))
	// Keys in a URL path are strings. When a table keys its rows by numbers,
	// say how to address them instead of leaving the user guessing.
	if s, ok := e.Key.(string); ok {
		if _, err := parseNumberKey(s); err == nil {
			msg += "; if the table's keys are numbers, add ?keyType=number"
		}
	}
	return msg
}

// TableNotFoundError says the RethinkDB table behind a Table does not exist
// (yet). Callers answer 404.
type TableNotFoundError struct {
	RethinkDB string // "<database>.<table>" inside RethinkDB
}

func (e *TableNotFoundError) Error() string {
	return fmt.Sprintf("RethinkDB table %s does not exist; wait until the Table is Ready", e.RethinkDB)
}

// KeyConflict names a row of a batch whose key is taken.
type KeyConflict struct {
	Row int // index in the batch; -1 for a single-row request
	Key any
}

// ConflictError says rows could not be written because of other data:
// their keys already exist (insert with conflict=error), or the row kept
// changing under a merge patch. Callers answer 409 Conflict.
type ConflictError struct {
	Msg   string
	Rows  []KeyConflict // the first MaxReportedErrors conflicting rows
	Total int           // all conflicting rows, ≥ len(Rows)
}

func (e *ConflictError) Error() string {
	errs := make([]RowError, len(e.Rows))
	for i, c := range e.Rows {
		errs[i] = conflictRowError(c)
	}
	return listMessage(e.Msg, errs, e.Total)
}

func conflictRowError(c KeyConflict) RowError {
	return RowError{Row: c.Row, Msg: fmt.Sprintf("a row with key %s already exists", keyText(c.Key))}
}

// BatchError says a batch write failed part way (RethinkDB writes each
// document atomically, not a batch; see doc.go, "Atomicity"). Cause says why
// (*ConflictError, *InvalidError, or a RethinkDB error) and decides the
// status code. The rows written before the failure were rolled back, except
// those listed in Left.
type BatchError struct {
	Cause      error
	RolledBack int   // rows restored to their state before the request
	Left       []any // keys of rows this request changed and could not restore
	// Uncertain is set when RethinkDB did not answer a write, so whether
	// that part of the batch was applied is unknown (and not rolled back).
	Uncertain []any
}

func (e *BatchError) Error() string {
	var b strings.Builder
	b.WriteString(e.Cause.Error())
	switch {
	case len(e.Left) == 0 && len(e.Uncertain) == 0:
		if e.RolledBack > 0 {
			fmt.Fprintf(&b, "; the %d rows written before the failure were rolled back, nothing is changed", e.RolledBack)
		}
	default:
		if len(e.Left) > 0 {
			fmt.Fprintf(&b, "; %d rows were written and could not be rolled back (changed by another writer meanwhile or RethinkDB unreachable): %s", len(e.Left), keyList(e.Left))
		}
		if len(e.Uncertain) > 0 {
			fmt.Fprintf(&b, "; RethinkDB did not confirm the write of %d rows, they may or may not be stored: %s", len(e.Uncertain), keyList(e.Uncertain))
		}
		b.WriteString("; check these rows, or repeat the request with conflict=replace, which is idempotent")
	}
	return b.String()
}

func (e *BatchError) Unwrap() error { return e.Cause }

// StatusError turns an error of this package into the Kubernetes Status the
// rows endpoint answers with. table is the Table's name ("orders.items"),
// used in messages and details. A nil err gives nil. Errors that already are
// API statuses pass unchanged; RethinkDB being unreachable is 503; anything
// unknown is 500.
func StatusError(err error, table string) *apierrors.StatusError {
	if err == nil {
		return nil
	}
	var (
		status    *apierrors.StatusError
		syntax    *SyntaxError
		tooLarge  *TooLargeError
		media     *UnsupportedMediaTypeError
		param     *ParameterError
		invalid   *InvalidError
		notFound  *NotFoundError
		noTable   *TableNotFoundError
		conflict  *ConflictError
		batch     *BatchError
		unavail   *rethinkdb.UnavailableError
		errPrefix = fmt.Sprintf("table %s: ", table)
	)
	msg := errPrefix + err.Error()
	details := &metav1.StatusDetails{Group: guildnet.GroupName, Kind: "tables", Name: table}
	mk := func(code int32, reason metav1.StatusReason, causes []metav1.StatusCause) *apierrors.StatusError {
		d := *details
		d.Causes = causes
		return &apierrors.StatusError{ErrStatus: metav1.Status{
			Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg, Details: &d,
		}}
	}
	// A BatchError's message says what was rolled back; its class comes
	// from its cause.
	errors.As(err, &batch)
	switch {
	case errors.As(err, &status):
		return status
	case errors.As(err, &syntax):
		return mk(http.StatusBadRequest, metav1.StatusReasonBadRequest, nil)
	case errors.As(err, &param):
		return mk(http.StatusBadRequest, metav1.StatusReasonBadRequest,
			[]metav1.StatusCause{{Type: metav1.CauseTypeFieldValueInvalid, Field: param.Param, Message: param.Msg}})
	case errors.As(err, &tooLarge):
		return mk(http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge, nil)
	case errors.As(err, &media):
		return mk(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType, nil)
	case errors.As(err, &invalid):
		causes := make([]metav1.StatusCause, 0, len(invalid.Errors))
		for _, e := range invalid.Errors {
			causes = append(causes, metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: e.Path(), Message: e.causeMessage()})
		}
		return mk(http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, causes)
	case errors.As(err, &notFound):
		d := *details
		d.Kind, d.Name = "rows", keyString(notFound.Key)
		details = &d
		return mk(http.StatusNotFound, metav1.StatusReasonNotFound, nil)
	case errors.As(err, &noTable):
		return mk(http.StatusNotFound, metav1.StatusReasonNotFound, nil)
	case errors.As(err, &conflict):
		causes := make([]metav1.StatusCause, 0, len(conflict.Rows))
		for _, c := range conflict.Rows {
			e := conflictRowError(c)
			causes = append(causes, metav1.StatusCause{Type: metav1.CauseTypeFieldValueDuplicate, Field: e.Path(), Message: e.Msg})
		}
		return mk(http.StatusConflict, metav1.StatusReasonConflict, causes)
	case errors.As(err, &unavail), rethinkdb.IsUnavailable(err) && !errors.Is(err, context.DeadlineExceeded):
		return mk(http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable, nil)
	case errors.Is(err, context.DeadlineExceeded):
		return mk(http.StatusGatewayTimeout, metav1.StatusReasonTimeout, nil)
	}
	return mk(http.StatusInternalServerError, metav1.StatusReasonInternalError, nil)
}

// causeMessage is the message of a StatusCause: the path is in the cause's
// field already, the line is not.
func (e RowError) causeMessage() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d)", e.Msg, e.Line)
	}
	return e.Msg
}

func listMessage(head string, errs []RowError, total int) string {
	var b strings.Builder
	b.WriteString(head)
	for i, e := range errs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(e.Error())
	}
	if more := total - len(errs); more > 0 {
		fmt.Fprintf(&b, "; and %d more", more)
	}
	return b.String()
}

func keyList(keys []any) string {
	var b strings.Builder
	for i, k := range keys {
		if i == MaxReportedErrors {
			fmt.Fprintf(&b, " and %d more", len(keys)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(keyText(k))
	}
	return b.String()
}

// rowErrors collects row problems, keeping the first MaxReportedErrors.
type rowErrors struct {
	list  []RowError
	total int
}

func (c *rowErrors) add(e RowError) {
	c.total++
	if len(c.list) < MaxReportedErrors {
		c.list = append(c.list, e)
	}
}

func (c *rowErrors) err() error {
	if c.total == 0 {
		return nil
	}
	return &InvalidError{Errors: c.list, Total: c.total}
}
