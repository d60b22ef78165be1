package server

import (
	"context"
	"io"
	"testing"

	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
)

// The watch cache must not keep an index snapshot per write unless asked
// to: that is most of what a burst of writes leaves in the heap.
func TestListFromCacheSnapshotIsOffByDefault(t *testing.T) {
	cmd := NewCommand(context.Background(), io.Discard, io.Discard)
	if err := cmd.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if err := cmd.PersistentPreRunE(cmd, nil); err != nil {
		t.Fatal(err)
	}
	if utilfeature.DefaultFeatureGate.Enabled(features.ListFromCacheSnapshot) {
		t.Error("ListFromCacheSnapshot is enabled without --feature-gates asking for it")
	}
	if cmd.Flags().Lookup("feature-gates") == nil {
		t.Error("no --feature-gates flag to turn it back on")
	}
}
