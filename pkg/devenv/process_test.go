package devenv

import (
	"os"
	"path/filepath"
	"testing"
)

// A failed start shows the last lines of the component's log, indented.
func TestTailShowsLastLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(p, []byte("one\ntwo\nthree\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := tail(p, 2), "  two\n  three\n"; got != want {
		t.Errorf("tail = %q, want %q", got, want)
	}
	if got := tail(filepath.Join(t.TempDir(), "missing"), 2); got[:8] != "(no log:" {
		t.Errorf("tail of a missing file = %q", got)
	}
}
