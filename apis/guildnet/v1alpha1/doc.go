// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=github.com/guildnet/guildnet/apis/guildnet
// +k8s:defaulter-gen=TypeMeta
// +k8s:openapi-gen=true
// +k8s:openapi-model-package=io.guildnet.v1alpha1
// +groupName=guildnet.io

// Package v1alpha1 is version v1alpha1 of the guildnet.io API: workspaces,
// databases and tables, as clients see them on the wire.
package v1alpha1
