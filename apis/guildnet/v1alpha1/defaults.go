package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime"
)

// Defaults carried over from the original GuildNet Host App.
const (
	// DefaultPort is the port a workspace listens on when spec.ports is empty;
	// the container also always gets PORT set to it.
	DefaultPort int32 = 8080
	// DefaultPortName names the first port when it has no name.
	DefaultPortName = "http"
	// DefaultHomeMountPath is where a persistent home volume is mounted.
	DefaultHomeMountPath = "/home/coder"
	// DefaultPrimaryKey is a table's primary key when spec.primaryKey is empty.
	DefaultPrimaryKey = "id"
)

func addDefaultingFuncs(scheme *runtime.Scheme) error {
	return RegisterDefaults(scheme)
}

// SetDefaults_WorkspaceSpec fills in the port, exposure and mount path.
func SetDefaults_WorkspaceSpec(spec *WorkspaceSpec) {
	if len(spec.Ports) == 0 {
		spec.Ports = []WorkspacePort{{Name: DefaultPortName, Port: DefaultPort}}
	}
	if spec.Ports[0].Name == "" {
		spec.Ports[0].Name = DefaultPortName
	}
	if spec.Exposure == "" {
		spec.Exposure = ExposureClusterIP
	}
	if spec.Storage != nil && spec.Storage.MountPath == "" {
		spec.Storage.MountPath = DefaultHomeMountPath
	}
}

// SetDefaults_DatabaseSpec keeps data on deletion unless asked otherwise.
func SetDefaults_DatabaseSpec(spec *DatabaseSpec) {
	if spec.DeletionPolicy == "" {
		spec.DeletionPolicy = DeletionPolicyRetain
	}
}

// SetDefaults_TableSpec fills in the primary key, durability, deletion
// policy and index fields.
func SetDefaults_TableSpec(spec *TableSpec) {
	if spec.PrimaryKey == "" {
		spec.PrimaryKey = DefaultPrimaryKey
	}
	if spec.Durability == "" {
		spec.Durability = DurabilityHard
	}
	if spec.DeletionPolicy == "" {
		spec.DeletionPolicy = DeletionPolicyRetain
	}
	for i := range spec.Indexes {
		if len(spec.Indexes[i].Fields) == 0 && spec.Indexes[i].Name != "" {
			spec.Indexes[i].Fields = []string{spec.Indexes[i].Name}
		}
	}
}
