package tablewatch

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/guildnet/guildnet/pkg/rows"
)

// token is the content of a resume token.
type token struct {
	Instance string `json:"i"` // Hub.id
	Table    string `json:"t"` // "<db>.<table>" inside RethinkDB
	Epoch    uint64 `json:"e"` // feed incarnation within the Hub
	Seq      uint64 `json:"s"` // the event's sequence number in that feed
}

// maxTokenLen bounds what is decoded from a request.
const maxTokenLen = 1024

func (t token) encode() string {
	b, _ := json.Marshal(t) // cannot fail: strings and numbers only
	return base64.RawURLEncoding.EncodeToString(b)
}

func badToken(msg string) error {
	return &rows.ParameterError{Param: "resumeToken", Msg: msg + "; use a token from an event of this table's watch, or reload with includeInitial=true"}
}

func parseToken(s string) (token, error) {
	if len(s) > maxTokenLen {
		return token{}, badToken(fmt.Sprintf("%d characters, longer than any resume token", len(s)))
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return token{}, badToken("not a resume token (not base64url)")
	}
	var t token
	if err := json.Unmarshal(b, &t); err != nil || t.Instance == "" || t.Table == "" || t.Epoch == 0 {
		return token{}, badToken("not a resume token")
	}
	return t, nil
}
