// Package registry holds one folder per guildnet.io resource (workspace,
// database, table), each with its strategy, REST storage and subresources, so
// everything about one resource is found in one place. Shared pieces live in
// resource (strategy and stores common to all three) and printers
// (kubectl get columns).
package registry
