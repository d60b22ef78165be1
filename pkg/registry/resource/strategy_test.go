package resource

import (
	"context"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/guildnet/guildnet/apis/guildnet"
)

type db = *guildnet.Database

var funcs = Funcs[db]{
	Validate:             func(db) field.ErrorList { return nil },
	ValidateUpdate:       func(db, db) field.ErrorList { return nil },
	ValidateStatusUpdate: func(db, db) field.ErrorList { return nil },
	Spec:                 func(o db) any { return &o.Spec },
	Status:               func(o db) any { return &o.Status },
	SetSpec:              func(dst, src db) { dst.Spec = src.Spec },
	SetStatus:            func(dst, src db) { dst.Status = src.Status },
	ResetStatus:          func(o db) { o.Status = guildnet.DatabaseStatus{} },
}

func TestCreateDropsStatusAndStartsGeneration(t *testing.T) {
	s := New(runtime.NewScheme(), funcs)
	obj := &guildnet.Database{Status: guildnet.DatabaseStatus{RethinkDBName: "forged"}}
	s.PrepareForCreate(context.Background(), obj)
	if obj.Status.RethinkDBName != "" || obj.Generation != 1 {
		t.Fatalf("after create: status %+v generation %d", obj.Status, obj.Generation)
	}
}

// A new object carries the resource's finalizers from its first write,
// once each, next to the ones its creator set.
func TestCreateAddsTheFinalizers(t *testing.T) {
	f := funcs
	f.Finalizers = []string{guildnet.RethinkDBFinalizer}
	s := New(runtime.NewScheme(), f)
	for _, given := range [][]string{nil, {"example.com/mine"}, {guildnet.RethinkDBFinalizer}} {
		obj := &guildnet.Database{ObjectMeta: metav1.ObjectMeta{Finalizers: slices.Clone(given)}}
		s.PrepareForCreate(context.Background(), obj)
		want := given
		if !slices.Contains(want, guildnet.RethinkDBFinalizer) {
			want = append(slices.Clone(given), guildnet.RethinkDBFinalizer)
		}
		if !slices.Equal(obj.Finalizers, want) {
			t.Errorf("created with finalizers %v: got %v, want %v", given, obj.Finalizers, want)
		}
	}
}

func TestUpdateKeepsStatusAndBumpsGenerationOnlyForSpec(t *testing.T) {
	s := New(runtime.NewScheme(), funcs)
	old := &guildnet.Database{ObjectMeta: metav1.ObjectMeta{Generation: 3}, Status: guildnet.DatabaseStatus{Tables: 2}}

	labelsOnly := old.DeepCopy()
	labelsOnly.Labels = map[string]string{"a": "b"}
	labelsOnly.Status = guildnet.DatabaseStatus{}
	s.PrepareForUpdate(context.Background(), labelsOnly, old)
	if labelsOnly.Generation != 3 || labelsOnly.Status.Tables != 2 {
		t.Errorf("metadata-only update: generation %d, status %+v; want 3 and the stored status", labelsOnly.Generation, labelsOnly.Status)
	}

	specChange := old.DeepCopy()
	specChange.Spec.DeletionPolicy = guildnet.DeletionPolicyDelete
	s.PrepareForUpdate(context.Background(), specChange, old)
	if specChange.Generation != 4 {
		t.Errorf("spec update: generation %d, want 4", specChange.Generation)
	}
}

func TestStatusUpdateKeepsSpec(t *testing.T) {
	s := NewStatus(New(runtime.NewScheme(), funcs))
	old := &guildnet.Database{Spec: guildnet.DatabaseSpec{DeletionPolicy: guildnet.DeletionPolicyRetain}}
	obj := old.DeepCopy()
	obj.Spec.DeletionPolicy = guildnet.DeletionPolicyDelete
	obj.Status.Tables = 5
	s.PrepareForUpdate(context.Background(), obj, old)
	if obj.Spec.DeletionPolicy != guildnet.DeletionPolicyRetain || obj.Status.Tables != 5 {
		t.Fatalf("status update: spec %+v status %+v", obj.Spec, obj.Status)
	}
}
