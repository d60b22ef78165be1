// Package codegen checks that hack/verify-codegen.sh catches generated code
// that no longer matches the API types.
package codegen

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A hand edit of an API type without regenerating makes verify-codegen fail
// and name what is stale.
func TestVerifyCodegenFailsAfterHandEditOfAType(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerates code (about a minute)")
	}
	root := repoRoot(t)
	tree := copyTree(t, root)

	types := filepath.Join(tree, "apis", "guildnet", "v1alpha1", "types.go")
	src, err := os.ReadFile(types)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(src), "type DatabaseSpec struct {\n",
		"type DatabaseSpec struct {\n\t// Comment is a field added by hand.\n\t// +optional\n\tComment string `json:\"comment,omitempty\"`\n", 1)
	if edited == string(src) {
		t.Fatal("DatabaseSpec not found in types.go; update this test")
	}
	if err := os.WriteFile(types, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	// The internal type gets the field too, so the tree still compiles and
	// only the generated code is stale.
	internal := filepath.Join(tree, "apis", "guildnet", "types.go")
	isrc, _ := os.ReadFile(internal)
	if err := os.WriteFile(internal, []byte(strings.Replace(string(isrc), "type DatabaseSpec struct {\n",
		"type DatabaseSpec struct {\n\tComment string `json:\"comment,omitempty\"`\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("bash", filepath.Join(tree, "hack", "verify-codegen.sh"))
	cmd.Dir = tree
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err == nil {
		t.Fatalf("verify-codegen passed after a hand edit of DatabaseSpec:\n%s", out.String())
	}
	for _, want := range []string{"is out of date; run hack/update-codegen.sh", "Comment"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("verify-codegen output lacks %q:\n%s", want, out.String())
		}
	}
}

func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// copyTree copies the files git knows about into a fresh git work tree.
func copyTree(t *testing.T, root string) string {
	t.Helper()
	dst := t.TempDir()
	files, err := exec.Command("git", "-C", root, "ls-files", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Split(strings.TrimSpace(string(files)), "\n") {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the work tree
		}
		p := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		info, _ := os.Stat(filepath.Join(root, f))
		if err := os.WriteFile(p, data, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}} {
		if out, err := exec.Command("git", append([]string{"-C", dst}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dst
}
