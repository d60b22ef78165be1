// Package fuzzer makes random guildnet.io objects that are valid inputs of
// a round trip: empty lists and maps are nil (JSON omits them) and
// defaulted fields hold values, since decoding applies the v1alpha1
// defaults.
package fuzzer

import (
	runtimeserializer "k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/randfill"

	"github.com/guildnet/guildnet/apis/guildnet"
)

// Funcs returns the fuzzer functions of the guildnet.io group.
var Funcs = func(runtimeserializer.CodecFactory) []any {
	return []any{
		func(w *guildnet.Workspace, c randfill.Continue) {
			c.FillNoCustom(w)
			normalizeMeta(&w.ManagedFields)
			s := &w.Spec
			s.ImagePullSecrets, s.Command, s.Args = nilIfEmpty(s.ImagePullSecrets), nilIfEmpty(s.Command), nilIfEmpty(s.Args)
			if len(s.Env) == 0 {
				s.Env = nil
			}
			if len(s.Ports) == 0 {
				s.Ports = []guildnet.WorkspacePort{{Name: "http", Port: 8080}}
			}
			if s.Ports[0].Name == "" {
				s.Ports[0].Name = "http"
			}
			if len(s.Resources.Requests) == 0 {
				s.Resources.Requests = nil
			}
			if len(s.Resources.Limits) == 0 {
				s.Resources.Limits = nil
			}
			if s.Exposure == "" {
				s.Exposure = guildnet.ExposureClusterIP
			}
			if s.Storage != nil && s.Storage.MountPath == "" {
				s.Storage.MountPath = "/home/coder"
			}
			if len(w.Status.Conditions) == 0 {
				w.Status.Conditions = nil
			}
		},
		func(d *guildnet.Database, c randfill.Continue) {
			c.FillNoCustom(d)
			normalizeMeta(&d.ManagedFields)
			if d.Spec.DeletionPolicy == "" {
				d.Spec.DeletionPolicy = guildnet.DeletionPolicyRetain
			}
			if len(d.Status.Conditions) == 0 {
				d.Status.Conditions = nil
			}
		},
		func(t *guildnet.Table, c randfill.Continue) {
			c.FillNoCustom(t)
			normalizeMeta(&t.ManagedFields)
			s := &t.Spec
			if s.PrimaryKey == "" {
				s.PrimaryKey = "id"
			}
			if s.Durability == "" {
				s.Durability = guildnet.DurabilityHard
			}
			if s.DeletionPolicy == "" {
				s.DeletionPolicy = guildnet.DeletionPolicyRetain
			}
			if len(s.Indexes) == 0 {
				s.Indexes = nil
			}
			for i := range s.Indexes {
				if len(s.Indexes[i].Fields) == 0 {
					s.Indexes[i].Fields = nil
					if s.Indexes[i].Name != "" {
						s.Indexes[i].Fields = []string{s.Indexes[i].Name}
					}
				}
			}
			if len(t.Status.Conditions) == 0 {
				t.Status.Conditions = nil
			}
		},
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func normalizeMeta[T any](managed *[]T) {
	if len(*managed) == 0 {
		*managed = nil
	}
}
