package rows

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Row is one document of a table, as decoded from JSON: values are nil,
// bool, string, json.Number (from a request body) or float64 (from
// RethinkDB), []any and map[string]any.
type Row = map[string]any

// DefaultPrimaryKey is the primary key of a table that names none.
const DefaultPrimaryKey = "id"

const (
	// MaxKeyBytes is the longest string primary key RethinkDB stores (its
	// internal key is the string plus one type byte, at most 128 bytes).
	MaxKeyBytes = 127
	// MaxDepth bounds how deeply objects and arrays nest inside a row. The
	// driver and RethinkDB both walk values recursively; a bound keeps a
	// hostile body from exhausting their stacks.
	MaxDepth = 100
	// MaxArrayLen is RethinkDB's default array size limit: it refuses to
	// build longer arrays.
	MaxArrayLen = 100_000
	// reqlType is the field RethinkDB reserves to mark pseudotypes (times,
	// binary data, geometry).
	reqlType = "$reql_type$"
)

// pseudotypes RethinkDB accepts in stored documents, in the raw form the
// rows endpoint also reads them back (TIME, BINARY, GEOMETRY).
var pseudotypes = map[string]bool{"TIME": true, "BINARY": true, "GEOMETRY": true}

// KeyType says how a row key from a URL path is read.
type KeyType string

const (
	// KeyString reads the path segment as a string key (the default).
	KeyString KeyType = "string"
	// KeyNumber reads it as a JSON number, for tables keyed by numbers.
	KeyNumber KeyType = "number"
)

// ParseKeyType reads the keyType query parameter; "" means KeyString.
func ParseKeyType(s string) (KeyType, error) {
	switch KeyType(s) {
	case "", KeyString:
		return KeyString, nil
	case KeyNumber:
		return KeyNumber, nil
	}
	return "", &ParameterError{Param: "keyType", Msg: fmt.Sprintf("%q is not a key type; use %q (the default) or %q", s, KeyString, KeyNumber)}
}

// ParseKey turns the row key of a URL path into a primary key value: the
// string itself, or with KeyNumber a float64 (RethinkDB numbers are
// doubles). A key that could never name a row is a *ParameterError.
func ParseKey(s string, kt KeyType) (any, error) {
	switch kt {
	case "", KeyString:
		if err := checkStringKey(s); err != "" {
			return nil, &ParameterError{Param: "key", Msg: err}
		}
		return s, nil
	case KeyNumber:
		f, err := parseNumberKey(s)
		if err != nil {
			return nil, &ParameterError{Param: "key", Msg: fmt.Sprintf("%q is not a number (keyType=number): %v", s, err)}
		}
		return f, nil
	}
	return nil, &ParameterError{Param: "keyType", Msg: fmt.Sprintf("%q is not a key type", kt)}
}

// parseNumberKey reads s as a JSON number that RethinkDB stores exactly.
func parseNumberKey(s string) (float64, error) {
	if !isJSONNumber(s) {
		return 0, fmt.Errorf("not a JSON number")
	}
	f, msg := numberValue(s)
	if msg != "" {
		return 0, fmt.Errorf("%s", msg)
	}
	return f, nil
}

// checkStringKey returns why s cannot be a primary key, or "".
func checkStringKey(s string) string {
	switch {
	case s == "":
		return "the key is empty; a row needs a non-empty key (an empty one could not be addressed as rows/<key>)"
	case len(s) > MaxKeyBytes:
		return fmt.Sprintf("the key is %d bytes long; RethinkDB primary keys are at most %d bytes", len(s), MaxKeyBytes)
	case strings.IndexByte(s, 0) >= 0:
		return "the key contains a NUL character, which RethinkDB does not allow in keys"
	case !utf8.ValidString(s):
		return "the key is not valid UTF-8"
	}
	return ""
}

// normalizeKey checks a primary key value given by a Go caller and returns
// it in the form queries use: a string or a float64.
func normalizeKey(k any) (any, error) {
	v, msg := keyValue(k)
	if msg != "" {
		return nil, &ParameterError{Param: "key", Msg: msg}
	}
	return v, nil
}

// keyValue returns k as a string or float64, or why it cannot be a key.
func keyValue(k any) (any, string) {
	switch k := k.(type) {
	case string:
		if msg := checkStringKey(k); msg != "" {
			return nil, msg
		}
		return k, ""
	case nil:
		return nil, "the key is null; a primary key must be a string or a number"
	default:
		if f, ok, msg := asNumber(k); ok {
			if msg != "" {
				return nil, msg
			}
			return f, ""
		}
		return nil, fmt.Sprintf("a primary key must be a string or a number, not %s", typeName(k))
	}
}

// asNumber reports whether v is a number and returns it as a float64 (or
// why RethinkDB could not store it exactly).
func asNumber(v any) (f float64, ok bool, msg string) {
	switch v := v.(type) {
	case json.Number:
		f, msg := numberValue(string(v))
		return f, true, msg
	case float64:
		f = v
	case float32:
		f = float64(v)
	case int:
		return intValue(int64(v))
	case int32:
		return intValue(int64(v))
	case int64:
		return intValue(v)
	default:
		return 0, false, ""
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, true, "the number is not finite; RethinkDB stores finite numbers only"
	}
	if f == 0 {
		f = 0 // -0 and 0 are different keys inside RethinkDB; store one zero
	}
	return f, true, ""
}

func intValue(i int64) (float64, bool, string) {
	f := float64(i)
	if f >= math.MaxInt64 || int64(f) != i {
		return 0, true, fmt.Sprintf("the integer %d cannot be stored exactly: RethinkDB numbers are 64-bit floats, exact up to 2^53; send it as a string", i)
	}
	return f, true, ""
}

// numberValue converts the text of a JSON number to the float64 RethinkDB
// stores. An integer written without fraction or exponent must survive the
// conversion exactly: silently turning an ID like 9007199254740993 into
// ...992 would corrupt data, so it is refused with advice instead.
func numberValue(s string) (float64, string) {
	if !strings.ContainsAny(s, ".eE") {
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return 0, fmt.Sprintf("%q is not a number", s)
		}
		f, acc := new(big.Float).SetInt(n).Float64()
		if acc != big.Exact || math.IsInf(f, 0) {
			return 0, fmt.Sprintf("the integer %s cannot be stored exactly: RethinkDB numbers are 64-bit floats, exact up to 2^53 (9007199254740992); send it as a string", s)
		}
		if f == 0 {
			f = 0
		}
		return f, ""
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
		return 0, fmt.Sprintf("the number %s is out of range: RethinkDB numbers are 64-bit floats", s)
	}
	if err != nil {
		return 0, fmt.Sprintf("%q is not a number", s)
	}
	if f == 0 {
		f = 0
	}
	return f, ""
}

// isJSONNumber reports whether s is a number in JSON's grammar: no leading
// "+", no leading zeros, no hex, no NaN or Infinity.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(s)
}

// keyID identifies a key for duplicate detection: the string "1" and the
// number 1 are different keys, the numbers 1 and 1.0 the same.
func keyID(k any) string {
	switch k := k.(type) {
	case string:
		return "s" + k
	case float64:
		return "n" + strconv.FormatFloat(k, 'g', -1, 64)
	}
	return fmt.Sprintf("?%v", k)
}

// keyText shows a key in a message: strings quoted, numbers as JSON.
func keyText(k any) string {
	if s, ok := k.(string); ok {
		return strconv.Quote(s)
	}
	return keyString(k)
}

// keyString is a key as plain text (the form of a URL path segment).
func keyString(k any) string {
	switch k := k.(type) {
	case string:
		return k
	case float64:
		b, _ := json.Marshal(k)
		return string(b)
	}
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Sprint(k)
	}
	return string(b)
}

// sameKey reports whether a primary key value in a body names the same row
// as key (both already normalized).
func sameKey(a, b any) bool { return keyID(a) == keyID(b) }

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, float32, int, int32, int64:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("a Go %T", v)
}

// childPath is the path of field name inside parent, in Kubernetes' style
// ("a.b"), with names that are not plain identifiers quoted in brackets.
func childPath(parent, name string) string {
	if !isIdent(name) {
		return parent + "[" + strconv.Quote(name) + "]"
	}
	if parent == "" {
		return name
	}
	return parent + "." + name
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'):
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// checkRow validates one row to be inserted: it must carry a valid primary
// key and only values RethinkDB stores as given. It returns the normalized
// key (nil when invalid).
func checkRow(row Row, pk string, idx, line int, errs *rowErrors) any {
	add := func(field, msg string) { errs.add(RowError{Row: idx, Line: line, Field: field, Msg: msg}) }
	var key any
	if v, ok := row[pk]; !ok {
		add(childPath("", pk), fmt.Sprintf("the row has no primary key %q; every row needs one (a string or a number)", pk))
	} else if k, msg := keyValue(v); msg != "" {
		add(childPath("", pk), msg)
	} else {
		key = k
	}
	if _, ok := row[reqlType]; ok {
		add(childPath("", reqlType), "a row must be a plain object; the field \"$reql_type$\" is reserved by RethinkDB for times, binary data and geometry inside rows")
	}
	checkFields(row, "", 1, idx, line, errs, pk)
	return key
}

// checkFields validates the fields of an object at depth (a row is depth 1).
// skip names a top-level field already checked (the primary key).
func checkFields(obj map[string]any, path string, depth, idx, line int, errs *rowErrors, skip string) {
	// Sorted, so the errors of a row come in a stable order.
	names := make([]string, 0, len(obj))
	for k := range obj {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		p := childPath(path, k)
		if !utf8.ValidString(k) {
			errs.add(RowError{Row: idx, Line: line, Field: p, Msg: "the field name is not valid UTF-8"})
			continue
		}
		if depth == 1 && k == skip || depth == 1 && k == reqlType {
			continue
		}
		if k == reqlType {
			if s, ok := obj[k].(string); !ok || !pseudotypes[s] {
				errs.add(RowError{Row: idx, Line: line, Field: p, Msg: "the field \"$reql_type$\" is reserved by RethinkDB; its value must be \"TIME\", \"BINARY\" or \"GEOMETRY\" with that type's fields"})
			}
			continue
		}
		checkValue(obj[k], p, depth, idx, line, errs)
	}
}

func checkValue(v any, path string, depth, idx, line int, errs *rowErrors) {
	add := func(msg string) { errs.add(RowError{Row: idx, Line: line, Field: path, Msg: msg}) }
	switch v := v.(type) {
	case nil, bool:
	case string:
		if !utf8.ValidString(v) {
			add("the string is not valid UTF-8")
		}
	case map[string]any:
		if depth >= MaxDepth {
			add(fmt.Sprintf("objects and arrays nest more than %d levels deep", MaxDepth))
			return
		}
		checkFields(v, path, depth+1, idx, line, errs, "")
	case []any:
		if depth >= MaxDepth {
			add(fmt.Sprintf("objects and arrays nest more than %d levels deep", MaxDepth))
			return
		}
		if len(v) > MaxArrayLen {
			add(fmt.Sprintf("the array has %d elements; RethinkDB stores at most %d", len(v), MaxArrayLen))
			return
		}
		for i, e := range v {
			checkValue(e, fmt.Sprintf("%s[%d]", path, i), depth+1, idx, line, errs)
		}
	default:
		if _, ok, msg := asNumber(v); ok {
			if msg != "" {
				add(msg)
			}
			return
		}
		add(fmt.Sprintf("unsupported value of Go type %T", v))
	}
}

// toDatum converts a validated value to what the driver sends: json.Number
// becomes float64 (the driver would send json.Number as a string), maps and
// slices are copied so the caller's rows stay untouched.
func toDatum(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = toDatum(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = toDatum(e)
		}
		return s
	case nil, bool, string:
		return v
	}
	if f, ok, _ := asNumber(v); ok {
		return f
	}
	return v
}

// canonicalJSON encodes v the way the encoders do: sorted keys, no HTML
// escaping, no trailing newline.
func canonicalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
