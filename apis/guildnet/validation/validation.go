// Package validation checks guildnet.io objects (internal version) and
// reports every problem with the path of the field that is wrong.
package validation

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/guildnet/guildnet/apis/guildnet"
)

var (
	pullPolicies    = sets.New("Always", "IfNotPresent", "Never")
	exposures       = sets.New(string(guildnet.ExposureClusterIP), string(guildnet.ExposureLoadBalancer))
	deletionPolices = sets.New(string(guildnet.DeletionPolicyRetain), string(guildnet.DeletionPolicyDelete))
	durabilities    = sets.New(string(guildnet.DurabilityHard), string(guildnet.DurabilitySoft))
	resourceNames   = sets.New("cpu", "memory", "ephemeral-storage")
	// A RethinkDB field or index name: what a user can write in JSON and
	// ReQL without quoting trouble.
	fieldNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_\-]{0,127}$`)
)

// ValidateWorkspace checks a new Workspace.
func ValidateWorkspace(ws *guildnet.Workspace) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&ws.ObjectMeta, true, apimachineryvalidation.NameIsDNS1035Label, field.NewPath("metadata"))
	return append(allErrs, validateWorkspaceSpec(&ws.Spec, field.NewPath("spec"))...)
}

// ValidateWorkspaceUpdate checks an update of a Workspace's spec.
func ValidateWorkspaceUpdate(ws, old *guildnet.Workspace) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&ws.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateWorkspaceSpec(&ws.Spec, field.NewPath("spec"))...)
}

// ValidateWorkspaceStatusUpdate checks an update of a Workspace's status.
func ValidateWorkspaceStatusUpdate(ws, old *guildnet.Workspace) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&ws.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	p := field.NewPath("status")
	if ws.Status.ReadyReplicas < 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("readyReplicas"), ws.Status.ReadyReplicas, "must not be negative"))
	}
	return append(allErrs, validateObservedGeneration(ws.Status.ObservedGeneration, p)...)
}

func validateWorkspaceSpec(spec *guildnet.WorkspaceSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if strings.TrimSpace(spec.Image) == "" {
		allErrs = append(allErrs, field.Required(p.Child("image"), "the container image to run, e.g. codercom/code-server:4.99.0"))
	} else if strings.ContainsAny(spec.Image, " \t\n") {
		allErrs = append(allErrs, field.Invalid(p.Child("image"), spec.Image, "must not contain white space"))
	}
	if spec.ImagePullPolicy != "" && !pullPolicies.Has(spec.ImagePullPolicy) {
		allErrs = append(allErrs, field.NotSupported(p.Child("imagePullPolicy"), spec.ImagePullPolicy, sets.List(pullPolicies)))
	}
	for i, s := range spec.ImagePullSecrets {
		for _, msg := range utilvalidation.IsDNS1123Subdomain(s) {
			allErrs = append(allErrs, field.Invalid(p.Child("imagePullSecrets").Index(i), s, msg))
		}
	}
	envNames := sets.New[string]()
	for i, e := range spec.Env {
		ep := p.Child("env").Index(i)
		for _, msg := range utilvalidation.IsEnvVarName(e.Name) {
			allErrs = append(allErrs, field.Invalid(ep.Child("name"), e.Name, msg))
		}
		if envNames.Has(e.Name) {
			allErrs = append(allErrs, field.Duplicate(ep.Child("name"), e.Name))
		}
		envNames.Insert(e.Name)
		if e.Name == "PORT" {
			allErrs = append(allErrs, field.Forbidden(ep.Child("name"), "PORT is always set to 8080 for the workspace container"))
		}
		if e.SecretKeyRef != nil {
			if e.Value != "" {
				allErrs = append(allErrs, field.Invalid(ep.Child("value"), e.Value, "may not be set together with secretKeyRef"))
			}
			if e.SecretKeyRef.Name == "" {
				allErrs = append(allErrs, field.Required(ep.Child("secretKeyRef", "name"), ""))
			}
			if e.SecretKeyRef.Key == "" {
				allErrs = append(allErrs, field.Required(ep.Child("secretKeyRef", "key"), ""))
			}
		}
	}
	ports := sets.New[int32]()
	names := sets.New[string]()
	for i, port := range spec.Ports {
		pp := p.Child("ports").Index(i)
		for _, msg := range utilvalidation.IsValidPortNum(int(port.Port)) {
			allErrs = append(allErrs, field.Invalid(pp.Child("port"), port.Port, msg))
		}
		if ports.Has(port.Port) {
			allErrs = append(allErrs, field.Duplicate(pp.Child("port"), port.Port))
		}
		ports.Insert(port.Port)
		if port.Name != "" {
			for _, msg := range utilvalidation.IsValidPortName(port.Name) {
				allErrs = append(allErrs, field.Invalid(pp.Child("name"), port.Name, msg))
			}
			if names.Has(port.Name) {
				allErrs = append(allErrs, field.Duplicate(pp.Child("name"), port.Name))
			}
			names.Insert(port.Name)
		}
	}
	allErrs = append(allErrs, validateResourceList(spec.Resources.Requests, p.Child("resources", "requests"))...)
	allErrs = append(allErrs, validateResourceList(spec.Resources.Limits, p.Child("resources", "limits"))...)
	for name, req := range spec.Resources.Requests {
		if lim, ok := spec.Resources.Limits[name]; ok && req.Cmp(lim) > 0 {
			allErrs = append(allErrs, field.Invalid(p.Child("resources", "requests").Key(name), req.String(), fmt.Sprintf("must be less than or equal to the limit %s", lim.String())))
		}
	}
	if s := spec.Storage; s != nil {
		sp := p.Child("storage")
		if s.Size.Sign() <= 0 {
			allErrs = append(allErrs, field.Invalid(sp.Child("size"), s.Size.String(), "must be greater than zero, e.g. 10Gi"))
		}
		if s.StorageClassName != nil {
			for _, msg := range utilvalidation.IsDNS1123Subdomain(*s.StorageClassName) {
				allErrs = append(allErrs, field.Invalid(sp.Child("storageClassName"), *s.StorageClassName, msg))
			}
		}
		if s.MountPath != "" && !strings.HasPrefix(s.MountPath, "/") {
			allErrs = append(allErrs, field.Invalid(sp.Child("mountPath"), s.MountPath, "must be an absolute path"))
		}
	}
	if spec.Exposure != "" && !exposures.Has(string(spec.Exposure)) {
		allErrs = append(allErrs, field.NotSupported(p.Child("exposure"), spec.Exposure, sets.List(exposures)))
	}
	if spec.PasswordSecretName != "" {
		for _, msg := range utilvalidation.IsDNS1123Subdomain(spec.PasswordSecretName) {
			allErrs = append(allErrs, field.Invalid(p.Child("passwordSecretName"), spec.PasswordSecretName, msg))
		}
	}
	if spec.IdleTimeout != nil && spec.IdleTimeout.Duration < 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("idleTimeout"), spec.IdleTimeout.Duration.String(), "must not be negative (0 or unset never suspends)"))
	}
	return allErrs
}

func validateResourceList(list map[string]resource.Quantity, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	for name, q := range list {
		if !resourceNames.Has(name) {
			allErrs = append(allErrs, field.NotSupported(p.Key(name), name, sets.List(resourceNames)))
		}
		if q.Sign() < 0 {
			allErrs = append(allErrs, field.Invalid(p.Key(name), q.String(), "must not be negative"))
		}
	}
	return allErrs
}

// ValidateDatabase checks a new Database.
func ValidateDatabase(db *guildnet.Database) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&db.ObjectMeta, true, apimachineryvalidation.NameIsDNSLabel, field.NewPath("metadata"))
	return append(allErrs, validateDeletionPolicy(db.Spec.DeletionPolicy, field.NewPath("spec", "deletionPolicy"))...)
}

// ValidateDatabaseUpdate checks an update of a Database's spec.
func ValidateDatabaseUpdate(db, old *guildnet.Database) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&db.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateDeletionPolicy(db.Spec.DeletionPolicy, field.NewPath("spec", "deletionPolicy"))...)
}

// ValidateDatabaseStatusUpdate checks an update of a Database's status.
func ValidateDatabaseStatusUpdate(db, old *guildnet.Database) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&db.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	return append(allErrs, validateObservedGeneration(db.Status.ObservedGeneration, field.NewPath("status"))...)
}

// ValidateTable checks a new Table, including that its name is "<database>.<table>".
func ValidateTable(t *guildnet.Table) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMeta(&t.ObjectMeta, true, validateTableName, field.NewPath("metadata"))
	return append(allErrs, validateTableSpec(&t.Spec, field.NewPath("spec"))...)
}

// ValidateTableUpdate checks an update of a Table's spec; the primary key is immutable.
func ValidateTableUpdate(t, old *guildnet.Table) field.ErrorList {
	p := field.NewPath("spec")
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&t.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	allErrs = append(allErrs, validateTableSpec(&t.Spec, p)...)
	allErrs = append(allErrs, apimachineryvalidation.ValidateImmutableField(t.Spec.PrimaryKey, old.Spec.PrimaryKey, p.Child("primaryKey"))...)
	return allErrs
}

// ValidateTableStatusUpdate checks an update of a Table's status.
func ValidateTableStatusUpdate(t, old *guildnet.Table) field.ErrorList {
	allErrs := apimachineryvalidation.ValidateObjectMetaUpdate(&t.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	p := field.NewPath("status")
	if t.Status.ApproximateRows < 0 {
		allErrs = append(allErrs, field.Invalid(p.Child("approximateRows"), t.Status.ApproximateRows, "must not be negative"))
	}
	return append(allErrs, validateObservedGeneration(t.Status.ObservedGeneration, p)...)
}

// validateTableName requires "<database>.<table>", each part a DNS label,
// so that both map one-to-one onto RethinkDB names.
func validateTableName(name string, prefix bool) []string {
	if prefix {
		// generateName: the generated suffix lands in the table part.
		db, _, _ := strings.Cut(name, ".")
		if !strings.Contains(name, ".") {
			return []string{`generateName must be "<database>." followed by an optional table prefix`}
		}
		return prefixed("database part", utilvalidation.IsDNS1123Label(db))
	}
	db, table, ok := guildnet.SplitTableName(name)
	if !ok {
		return []string{fmt.Sprintf(`must be "<database>.<table>", e.g. "orders.items" (got %q)`, name)}
	}
	msgs := prefixed("database part", utilvalidation.IsDNS1123Label(db))
	return append(msgs, prefixed("table part", utilvalidation.IsDNS1123Label(table))...)
}

func prefixed(what string, msgs []string) []string {
	for i := range msgs {
		msgs[i] = what + ": " + msgs[i]
	}
	return msgs
}

func validateTableSpec(spec *guildnet.TableSpec, p *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	if spec.PrimaryKey != "" && !fieldNameRE.MatchString(spec.PrimaryKey) {
		allErrs = append(allErrs, field.Invalid(p.Child("primaryKey"), spec.PrimaryKey, "must be a field name: letters, digits, '_' or '-', starting with a letter or '_'"))
	}
	if spec.Durability != "" && !durabilities.Has(string(spec.Durability)) {
		allErrs = append(allErrs, field.NotSupported(p.Child("durability"), spec.Durability, sets.List(durabilities)))
	}
	allErrs = append(allErrs, validateDeletionPolicy(spec.DeletionPolicy, p.Child("deletionPolicy"))...)
	names := sets.New[string]()
	for i, idx := range spec.Indexes {
		ip := p.Child("indexes").Index(i)
		if !fieldNameRE.MatchString(idx.Name) {
			allErrs = append(allErrs, field.Invalid(ip.Child("name"), idx.Name, "must be an index name: letters, digits, '_' or '-', starting with a letter or '_'"))
		}
		if idx.Name == spec.PrimaryKey {
			allErrs = append(allErrs, field.Invalid(ip.Child("name"), idx.Name, "the primary key is already indexed"))
		}
		if names.Has(idx.Name) {
			allErrs = append(allErrs, field.Duplicate(ip.Child("name"), idx.Name))
		}
		names.Insert(idx.Name)
		for j, f := range idx.Fields {
			if !fieldNameRE.MatchString(f) {
				allErrs = append(allErrs, field.Invalid(ip.Child("fields").Index(j), f, "must be a field name: letters, digits, '_' or '-', starting with a letter or '_'"))
			}
		}
		if idx.Multi && len(idx.Fields) > 1 {
			allErrs = append(allErrs, field.Invalid(ip.Child("multi"), idx.Multi, "a multi index is built from one field"))
		}
	}
	return allErrs
}

func validateDeletionPolicy(policy guildnet.DeletionPolicy, p *field.Path) field.ErrorList {
	if policy != "" && !deletionPolices.Has(string(policy)) {
		return field.ErrorList{field.NotSupported(p, policy, sets.List(deletionPolices))}
	}
	return nil
}

func validateObservedGeneration(g int64, p *field.Path) field.ErrorList {
	if g < 0 {
		return field.ErrorList{field.Invalid(p.Child("observedGeneration"), g, "must not be negative")}
	}
	return nil
}
