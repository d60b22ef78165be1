package store

import (
	"fmt"
	"regexp"
	"strings"
)

const (
	// maxIDBase bounds the sanitised name so that an id with a collision
	// suffix stays short enough to be part of a host name label.
	maxIDBase = 20
	// maxIDSuffix bounds the search for a free id; reaching it means
	// something other than real collisions is wrong.
	maxIDSuffix = 1000
)

// idPattern is what every cluster id matches: lower-case letters, digits and
// single hyphens, starting and ending with a letter or digit. It is a valid
// DNS label and URL path segment, and never contains "--", which later work
// uses as a separator in workspace host names.
var idPattern = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// ValidID reports whether id has the shape of a cluster id. Callers that
// take ids from outside (a URL, a command line) can check before touching
// the file system; the store checks too.
func ValidID(id string) bool {
	return len(id) <= maxIDBase+1+len(fmt.Sprint(maxIDSuffix)) && idPattern.MatchString(id)
}

// idBase turns a display name into the base of an id: lower-cased, every run
// of other characters replaced by one hyphen, trimmed, truncated.
func idBase(name string) string {
	var b strings.Builder
	hyphen := false
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			hyphen = false
			continue
		}
		if !hyphen && b.Len() > 0 {
			b.WriteByte('-')
			hyphen = true
		}
	}
	s := b.String()
	if len(s) > maxIDBase {
		s = s[:maxIDBase]
	}
	s = strings.Trim(s, "-")
	if s == "" {
		return "cluster"
	}
	return s
}

// idCandidate is the n-th id to try for base: base, base-2, base-3, …
func idCandidate(base string, n int) string {
	if n <= 1 {
		return base
	}
	return fmt.Sprintf("%s-%d", base, n)
}
