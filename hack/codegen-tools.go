//go:build tools

// Package hack pins k8s.io/code-generator in the main module so that
// hack/update-codegen.sh runs the generators at the version of the API
// libraries the server is built with.
package hack

import _ "k8s.io/code-generator"
