package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types and reasons shared by every GuildNet resource.
const (
	// ConditionReady is True when the object's backing resources exist and serve.
	ConditionReady = "Ready"
)

// DeletionPolicy says what happens to the data behind a Database or Table
// when the object is deleted.
// +enum
type DeletionPolicy string

const (
	// DeletionPolicyRetain keeps the RethinkDB database or table when the object is deleted.
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyDelete drops the RethinkDB database or table, and its data, with the object.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// ---------------------------------------------------------------- Workspace

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Workspace is a container (code-server by default) that runs in the cluster
// and is reached through its workspaces/proxy subresource.
type Workspace struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the workspace.
	// +optional
	Spec WorkspaceSpec `json:"spec,omitempty"`
	// Status is the observed state of the workspace, written by the reconciler.
	// +optional
	Status WorkspaceStatus `json:"status,omitempty"`
}

// WorkspaceSpec is the desired state of a Workspace.
type WorkspaceSpec struct {
	// Image is the container image the workspace runs. An image whose name
	// contains "code-server" gets code-server's arguments and a password.
	Image string `json:"image"`
	// ImagePullPolicy is the container's image pull policy: Always, IfNotPresent or Never.
	// Empty means the cluster's default for the image.
	// +optional
	ImagePullPolicy string `json:"imagePullPolicy,omitempty"`
	// ImagePullSecrets are names of Secrets in the workspace's namespace used to pull the image.
	// +optional
	// +listType=atomic
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`
	// Command overrides the image's entrypoint.
	// +optional
	// +listType=atomic
	Command []string `json:"command,omitempty"`
	// Args overrides the image's arguments (and code-server's defaults).
	// +optional
	// +listType=atomic
	Args []string `json:"args,omitempty"`
	// Env is extra environment for the container. PORT is always set to 8080.
	// +optional
	// +listType=map
	// +listMapKey=name
	Env []EnvVar `json:"env,omitempty"`
	// Ports the workspace listens on. The first one is what workspaces/proxy
	// opens. Defaults to one port named "http" on 8080.
	// +optional
	// +listType=map
	// +listMapKey=port
	Ports []WorkspacePort `json:"ports,omitempty"`
	// Resources are the container's compute requests and limits.
	// +optional
	Resources ResourceRequirements `json:"resources,omitempty"`
	// Storage, when set, gives the workspace a persistent home volume that
	// survives suspend and restarts.
	// +optional
	Storage *WorkspaceStorage `json:"storage,omitempty"`
	// Exposure is how the workspace's Service is reachable: ClusterIP (only
	// through workspaces/proxy and inside the cluster) or LoadBalancer.
	// Defaults to ClusterIP.
	// +optional
	Exposure WorkspaceExposure `json:"exposure,omitempty"`
	// PasswordSecretName names a Secret in the workspace's namespace whose
	// key "password" is code-server's password. An optional key
	// "hashed-password" holding its argon2 hash (code-server's
	// HASHED_PASSWORD) spares code-server hashing the password again for
	// every request. Empty means a Secret with both is generated for this
	// workspace.
	// +optional
	PasswordSecretName string `json:"passwordSecretName,omitempty"`
	// Suspend scales the workspace to zero while keeping its volume.
	// +optional
	Suspend bool `json:"suspend,omitempty"`
	// IdleTimeout suspends the workspace when nobody used it through
	// workspaces/proxy for this long. Unset or zero never suspends.
	// +optional
	IdleTimeout *metav1.Duration `json:"idleTimeout,omitempty"`
}

// EnvVar is one environment variable of a workspace container.
type EnvVar struct {
	// Name of the variable; a C identifier.
	Name string `json:"name"`
	// Value of the variable. Exclusive with secretKeyRef.
	// +optional
	Value string `json:"value,omitempty"`
	// SecretKeyRef takes the value from a key of a Secret in the workspace's namespace.
	// +optional
	SecretKeyRef *SecretKeySelector `json:"secretKeyRef,omitempty"`
}

// SecretKeySelector selects a key of a Secret in the same namespace.
type SecretKeySelector struct {
	// Name of the Secret.
	Name string `json:"name"`
	// Key within the Secret.
	Key string `json:"key"`
}

// WorkspacePort is a TCP port the workspace listens on.
type WorkspacePort struct {
	// Name of the port, a DNS label. Defaults to "http" for the first port.
	// +optional
	Name string `json:"name,omitempty"`
	// Port number, 1-65535.
	Port int32 `json:"port"`
}

// ResourceRequirements are compute requests and limits, keyed by resource
// name (cpu, memory, ephemeral-storage).
type ResourceRequirements struct {
	// Requests is the minimum the container is scheduled with.
	// +optional
	Requests map[string]resource.Quantity `json:"requests,omitempty"`
	// Limits is the maximum the container may use.
	// +optional
	Limits map[string]resource.Quantity `json:"limits,omitempty"`
}

// WorkspaceStorage is a persistent home volume.
type WorkspaceStorage struct {
	// Size of the volume, e.g. 10Gi.
	Size resource.Quantity `json:"size"`
	// StorageClassName of the PersistentVolumeClaim. Empty uses the cluster default.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`
	// MountPath in the container. Defaults to /home/coder.
	// +optional
	MountPath string `json:"mountPath,omitempty"`
}

// WorkspaceExposure is how a workspace's Service is reachable.
// +enum
type WorkspaceExposure string

const (
	// ExposureClusterIP keeps the workspace inside the cluster (reached through workspaces/proxy).
	ExposureClusterIP WorkspaceExposure = "ClusterIP"
	// ExposureLoadBalancer gives the workspace's Service an external load balancer.
	ExposureLoadBalancer WorkspaceExposure = "LoadBalancer"
)

// WorkspacePhase is a summary of where a workspace is in its life.
// +enum
type WorkspacePhase string

const (
	// WorkspacePending: accepted, nothing created yet.
	WorkspacePending WorkspacePhase = "Pending"
	// WorkspaceStarting: created, not ready yet.
	WorkspaceStarting WorkspacePhase = "Starting"
	// WorkspaceRunning: at least one ready replica.
	WorkspaceRunning WorkspacePhase = "Running"
	// WorkspaceStopped: suspended (by spec.suspend or idle timeout).
	WorkspaceStopped WorkspacePhase = "Stopped"
	// WorkspaceFailed: cannot start; the Ready condition says why.
	WorkspaceFailed WorkspacePhase = "Failed"
)

// WorkspaceStatus is the observed state of a Workspace.
type WorkspaceStatus struct {
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Phase summarises the workspace's state.
	// +optional
	Phase WorkspacePhase `json:"phase,omitempty"`
	// ReadyReplicas is the number of ready workspace pods.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
	// ServiceDNS is the DNS name of the workspace's Service.
	// +optional
	ServiceDNS string `json:"serviceDNS,omitempty"`
	// ServiceIP is the ClusterIP of the workspace's Service.
	// +optional
	ServiceIP string `json:"serviceIP,omitempty"`
	// ProxyTarget is the URL workspaces/proxy forwards to, e.g. http://ws.ns.svc:8080.
	// +optional
	ProxyTarget string `json:"proxyTarget,omitempty"`
	// LastActivityTime is when the workspace was last used through workspaces/proxy.
	// +optional
	LastActivityTime *metav1.Time `json:"lastActivityTime,omitempty"`
	// Conditions: Ready, with the reason a workspace is not ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// WorkspaceList is a list of Workspaces.
type WorkspaceList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the workspaces.
	Items []Workspace `json:"items"`
}

// ---------------------------------------------------------------- Database

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Database is a RethinkDB database owned by a namespace. Its RethinkDB name
// is derived from namespace and name, so namespaces never collide.
type Database struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the database.
	// +optional
	Spec DatabaseSpec `json:"spec,omitempty"`
	// Status is the observed state of the database.
	// +optional
	Status DatabaseStatus `json:"status,omitempty"`
}

// DatabaseSpec is the desired state of a Database.
type DatabaseSpec struct {
	// DeletionPolicy says whether deleting the object drops the RethinkDB
	// database (Delete) or keeps it (Retain). Defaults to Retain.
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// DatabaseStatus is the observed state of a Database.
type DatabaseStatus struct {
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// RethinkDBName is the database's name inside RethinkDB.
	// +optional
	RethinkDBName string `json:"rethinkDBName,omitempty"`
	// Tables is the number of tables in the database.
	// +optional
	Tables int32 `json:"tables,omitempty"`
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// DatabaseList is a list of Databases.
type DatabaseList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the databases.
	Items []Database `json:"items"`
}

// ---------------------------------------------------------------- Table

// +genclient
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// Table is a RethinkDB table. Its name is "<database>.<table>", where
// <database> is a Database in the same namespace (e.g. "orders.items").
type Table struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state of the table.
	// +optional
	Spec TableSpec `json:"spec,omitempty"`
	// Status is the observed state of the table.
	// +optional
	Status TableStatus `json:"status,omitempty"`
}

// TableSpec is the desired state of a Table.
type TableSpec struct {
	// PrimaryKey is the field rows are keyed by. Defaults to "id"; immutable.
	// +optional
	PrimaryKey string `json:"primaryKey,omitempty"`
	// Indexes are secondary indexes to create on the table.
	// +optional
	// +listType=map
	// +listMapKey=name
	Indexes []TableIndex `json:"indexes,omitempty"`
	// Durability of writes: "hard" (acknowledged once on disk) or "soft".
	// Defaults to hard.
	// +optional
	Durability TableDurability `json:"durability,omitempty"`
	// DeletionPolicy says whether deleting the object drops the RethinkDB
	// table (Delete) or keeps it (Retain). Defaults to Retain.
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// TableIndex is a secondary index.
type TableIndex struct {
	// Name of the index.
	Name string `json:"name"`
	// Fields the index is built from: one field makes a simple index, more
	// make a compound index. Defaults to [name].
	// +optional
	// +listType=atomic
	Fields []string `json:"fields,omitempty"`
	// Multi makes a multi index (one entry per element of an array field).
	// +optional
	Multi bool `json:"multi,omitempty"`
}

// TableDurability is RethinkDB's write durability.
// +enum
type TableDurability string

const (
	// DurabilityHard acknowledges a write once it is on disk.
	DurabilityHard TableDurability = "hard"
	// DurabilitySoft acknowledges a write once it is in memory.
	DurabilitySoft TableDurability = "soft"
)

// TableStatus is the observed state of a Table.
type TableStatus struct {
	// ObservedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Database is the Database object this table belongs to.
	// +optional
	Database string `json:"database,omitempty"`
	// RethinkDBName is "<rethinkdb database>.<rethinkdb table>".
	// +optional
	RethinkDBName string `json:"rethinkDBName,omitempty"`
	// PrimaryKey is the primary key the table was created with.
	// +optional
	PrimaryKey string `json:"primaryKey,omitempty"`
	// ApproximateRows is the number of rows at the last count.
	// +optional
	ApproximateRows int64 `json:"approximateRows,omitempty"`
	// Conditions: Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// TableList is a list of Tables.
type TableList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the tables.
	Items []Table `json:"items"`
}

// ---------------------------------------------------------------- Subresource options

// +k8s:conversion-gen:explicit-from=net/url.Values
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// TableRowsOptions are the query parameters of the tables/rows subresource.
type TableRowsOptions struct {
	metav1.TypeMeta `json:",inline"`

	// Path is the part of the URL after rows/: a row's primary key, or empty
	// for the whole table.
	// +optional
	Path string `json:"path,omitempty"`
	// Limit is the largest number of rows one GET returns (a page).
	// +optional
	Limit int64 `json:"limit,omitempty"`
	// Continue is the token from the previous page's metadata.continue.
	// +optional
	Continue string `json:"continue,omitempty"`
	// Index orders the rows by a secondary index instead of the primary key.
	// +optional
	Index string `json:"index,omitempty"`
	// Desc orders the rows from the last to the first.
	// +optional
	Desc bool `json:"desc,omitempty"`
	// Conflict says what an insert does with a row whose key exists:
	// "error" (default; nothing is written), "replace" or "update".
	// +optional
	Conflict string `json:"conflict,omitempty"`
	// KeyType says how to read the key in the path: "string" (default) or
	// "number", for tables whose primary keys are numbers.
	// +optional
	KeyType string `json:"keyType,omitempty"`
	// CSVTypes says how CSV cells are read on import: "strings" (default:
	// every cell stays text) or "infer" (JSON numbers, booleans, null,
	// objects and arrays become those types).
	// +optional
	CSVTypes string `json:"csvTypes,omitempty"`
}

// +k8s:conversion-gen:explicit-from=net/url.Values
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// TableWatchOptions are the query parameters of the tables/watch subresource.
type TableWatchOptions struct {
	metav1.TypeMeta `json:",inline"`

	// IncludeInitial sends every row as an ADDED event before the changes.
	// +optional
	IncludeInitial bool `json:"includeInitial,omitempty"`
	// ResumeToken continues a stream after the event that carried it.
	// +optional
	ResumeToken string `json:"resumeToken,omitempty"`
	// TimeoutSeconds ends the stream gracefully (with a BOOKMARK) after this
	// long; the server caps it below kube-apiserver's request timeout.
	// +optional
	TimeoutSeconds *int64 `json:"timeoutSeconds,omitempty"`
}

// +k8s:conversion-gen:explicit-from=net/url.Values
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// WorkspaceProxyOptions are the query parameters of the workspaces/proxy subresource.
type WorkspaceProxyOptions struct {
	metav1.TypeMeta `json:",inline"`

	// Path is the path forwarded to the workspace, below .../proxy/.
	// +optional
	Path string `json:"path,omitempty"`
}

// +k8s:conversion-gen:explicit-from=net/url.Values
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// WorkspaceLogOptions are the query parameters of the workspaces/log subresource.
type WorkspaceLogOptions struct {
	metav1.TypeMeta `json:",inline"`

	// Follow keeps the stream open and sends new lines as they are written.
	// +optional
	Follow bool `json:"follow,omitempty"`
	// TailLines starts with this many of the last lines (all lines when unset).
	// +optional
	TailLines *int64 `json:"tailLines,omitempty"`
	// SinceSeconds starts with the lines written in the last this-many seconds.
	// +optional
	SinceSeconds *int64 `json:"sinceSeconds,omitempty"`
	// Previous shows the log of the previous, terminated container (after a crash).
	// +optional
	Previous bool `json:"previous,omitempty"`
	// Timestamps prefixes every line with its RFC 3339 time.
	// +optional
	Timestamps bool `json:"timestamps,omitempty"`
}
