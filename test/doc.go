// Package test holds GuildNet's integration and end-to-end tests and the
// harness they share (test/framework). They run against a real local
// control plane started by pkg/devenv; `make test-integration` runs them.
package test
