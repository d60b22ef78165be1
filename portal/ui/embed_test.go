package ui

import (
	"io/fs"
	"regexp"
	"testing"
)

// TestFSServesThePage checks that the embedded build is there and that
// every asset index.html links to is in it (a half-built or stale dist/
// fails here; verify.sh compares it with src/ byte for byte).
func TestFSServesThePage(t *testing.T) {
	fsys := FS()
	page, err := fs.ReadFile(fsys, "index.html")
	if err != nil {
		t.Fatalf("index.html: %v", err)
	}
	links := regexp.MustCompile(`(?:src|href)="/([^"]+)"`).FindAllStringSubmatch(string(page), -1)
	if len(links) == 0 {
		t.Fatalf("index.html links to no assets:\n%s", page)
	}
	for _, l := range links {
		info, err := fs.Stat(fsys, l[1])
		if err != nil {
			t.Errorf("index.html links to /%s: %v", l[1], err)
			continue
		}
		if info.Size() == 0 {
			t.Errorf("/%s is empty", l[1])
		}
	}
	for _, want := range []string{"assets/app.js", "assets/app.css"} {
		if _, err := fs.Stat(fsys, want); err != nil {
			t.Errorf("%s: %v", want, err)
		}
	}
}
