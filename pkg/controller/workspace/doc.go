// Package workspace reconciles Workspaces: each becomes a Deployment of one
// pod running the workspace's container, a Service in front of it, a
// PersistentVolumeClaim for its home when spec.storage is set, and, for a
// code-server image without spec.passwordSecretName, a Secret holding a
// generated password. Status reports the phase, the ready replicas, where
// workspaces/proxy forwards to, and a Ready condition that says what to do
// when the workspace cannot start.
//
// Objects are written with server-side apply (field owner
// "guildnet-workspace"), so a spec change rolls the Deployment and a field
// the reconciler no longer sets goes away. Somebody else's change to what it
// applied (kubectl edit, kubectl scale) is undone at the next reconcile: it
// applies again when what it would apply changed, or when the object is not
// at the version its last apply returned: a Deployment's generation (so an
// edit of a Deployment's labels or annotations alone stays until its spec
// changes or the reconciler restarts), a Service's or claim's
// resourceVersion. After a restart every object is applied once more. The
// password Secret is only ever created, never applied: it is generated once
// and never rotated.
//
// Every object carries the guildnet.io/workspace label and a controller
// owner reference to its Workspace. The reconciler watches and caches only
// labelled objects (pods included, so a pod that cannot pull its image shows
// in status), and deletion is left to Kubernetes' garbage collector: deleting
// a Workspace deletes its Deployment, Service, Secret and
// PersistentVolumeClaim, so the home volume's data goes with the workspace
// unless its PersistentVolume's reclaim policy is Retain or the Workspace is
// deleted with --cascade=orphan. Suspending (spec.suspend) only scales the
// Deployment to zero; the claim stays. Removing spec.storage unmounts the
// claim but keeps it until the Workspace is deleted, so no edit of the spec
// loses data.
//
// Idle auto-stop: with spec.idleTimeout set, a workspace nobody used for that
// long is suspended (spec.suspend=true) and its Ready condition says
// IdleTimeout. The idle clock starts at the latest of creation,
// status.lastActivityTime (written by workspaces/proxy, never by the
// reconciler) and the last resume. A resume is recorded in a Suspended
// condition, like a Job's: True while suspended (reason Suspended or
// IdleTimeout), False with reason Resumed once spec.suspend is false again,
// and its lastTransitionTime is when the reconciler saw the resume; so a
// resumed workspace gets a full idleTimeout before it is suspended again.
package workspace
