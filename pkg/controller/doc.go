// Package controller runs guildnet-apiserver's reconcilers (controller-runtime)
// inside the server process: they turn Workspaces into Deployments,
// Services, volumes and password Secrets, and Databases and Tables into
// RethinkDB databases and tables, and report what they observe in status. They
// reach kube-apiserver with the server's identity and RBAC; they watch
// guildnet.io objects through the server's registry in the same process
// (see newInformerFunc) and write them over the server's own loopback
// connection (see routeOwnGroup); one replica at a time reconciles (leader
// election on a Lease).
package controller
