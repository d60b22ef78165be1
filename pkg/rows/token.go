package rows

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// tokenVersion is the format of continue tokens. A server that changes the
// format bumps it, so a token of another version is refused with a clear
// 400 ("start the list again") instead of being misread.
const tokenVersion = 1

// maxTokenLen bounds the continue tokens accepted. A real token holds one
// key (≤ 127 bytes) and one index value; 4 KiB leaves room for compound
// index values and refuses junk before decoding it.
const maxTokenLen = 4096

// Continue is the position a continue token carries: the last row of the
// page served, in the order of the list (index and direction), so the next
// page starts right after it.
//
// Tokens are base64url (no padding) of a small JSON object. They are opaque
// to clients but not secret or signed: they hold only a position in a table
// the caller may read anyway, and a forged one can do no more than start a
// list elsewhere. Decoding checks everything and never panics.
type Continue struct {
	// Index is the secondary index the list is ordered by; "" for the
	// primary key.
	Index string
	// Desc is true for a descending list.
	Desc bool
	// Key is the primary key of the last row served.
	Key any
	// IndexValue is that row's value of Index (an array for a compound
	// index); nil when Index is "".
	IndexValue any
}

type tokenJSON struct {
	V  int    `json:"v"`
	I  string `json:"i,omitempty"`
	D  bool   `json:"d,omitempty"`
	K  any    `json:"k"`
	IV any    `json:"iv,omitempty"`
}

// EncodeContinue returns the token for position c.
func EncodeContinue(c Continue) (string, error) {
	if _, msg := tokenKey(c.Key); msg != "" {
		return "", fmt.Errorf("rows: continue token for an invalid key %v: %s", c.Key, msg)
	}
	b, err := json.Marshal(tokenJSON{V: tokenVersion, I: c.Index, D: c.Desc, K: c.Key, IV: c.IndexValue})
	if err != nil {
		return "", fmt.Errorf("rows: encode continue token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// DecodeContinue reads a token made by EncodeContinue. A token that is
// garbled, forged into an impossible position, or of another version is a
// *ParameterError (400).
func DecodeContinue(token string) (Continue, error) {
	bad := func(why string) (Continue, error) {
		return Continue{}, &ParameterError{Param: "continue", Msg: why + "; start the list again without continue"}
	}
	if len(token) > maxTokenLen {
		return bad(fmt.Sprintf("the token is %d characters long, more than any token this server issues", len(token)))
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return bad("the token is not one this server issued (not base64url)")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var t tokenJSON
	if err := dec.Decode(&t); err != nil || dec.More() {
		return bad("the token is not one this server issued (garbled)")
	}
	if t.V != tokenVersion {
		return bad(fmt.Sprintf("the token has version %d, this server reads version %d", t.V, tokenVersion))
	}
	key, msg := tokenKey(t.K)
	if msg != "" {
		return bad("the token holds an invalid key: " + msg)
	}
	c := Continue{Index: t.I, Desc: t.D, Key: key}
	if t.I != "" {
		if t.IV == nil {
			return bad("the token has an index but no index value")
		}
		var errs rowErrors
		checkValue(t.IV, "", 1, -1, 0, &errs)
		if errs.total > 0 {
			return bad("the token holds an invalid index value: " + errs.list[0].Msg)
		}
		c.IndexValue = toDatum(t.IV)
	} else if t.IV != nil {
		return bad("the token has an index value but no index")
	}
	return c, nil
}

// tokenKey checks the key a token carries. Rows written through this API
// have string or number keys, but a table may hold rows written directly to
// RethinkDB with other key types (booleans, arrays, times); a list must be
// able to page past them too.
func tokenKey(k any) (any, string) {
	switch k := k.(type) {
	case bool:
		return k, ""
	case []any:
		var errs rowErrors
		checkValue(k, "", 1, -1, 0, &errs)
		if errs.total > 0 {
			return nil, errs.list[0].Msg
		}
		return toDatum(k), ""
	case map[string]any:
		if s, ok := k[reqlType].(string); ok && pseudotypes[s] {
			return toDatum(k), ""
		}
		return nil, "a primary key cannot be an object"
	}
	return keyValue(k)
}
