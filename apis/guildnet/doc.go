// +k8s:deepcopy-gen=package
// +groupName=guildnet.io

// Package guildnet holds the internal (hub) version of the guildnet.io API
// types. The server converts every versioned object to these, validates them
// (package validation) and stores them encoded as the storage version.
package guildnet
