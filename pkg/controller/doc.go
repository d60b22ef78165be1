// Package controller runs guildnet-apiserver's reconcilers (controller-runtime)
// inside the server process: they turn Workspaces into Deployments,
// Services, volumes and password Secrets, and Databases and Tables into
// RethinkDB databases and tables, and report what they observe in status. They reach
// guildnet.io objects through kube-apiserver like any client, so they run
// with the server's own identity and RBAC, and one replica at a time
// reconciles (leader election on a Lease).
package controller
