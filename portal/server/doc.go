// Package server is guildnet-portal's HTTP server: the single-page UI, the
// small JSON API over the state dir (portal/store, portal/join), and the
// forwarding of /clusters/{id}/k8s/... to each joined cluster's
// kube-apiserver with the stored credentials (HTTP, watch streams,
// WebSockets). portal/CONTRACT.md is the interface the UI is built against;
// `guildnet-portal serve` (portal/cli) runs it.
//
// # Two kinds of host
//
// The portal answers to its own host, http://127.0.0.1:PORT (also
// localhost:PORT and [::1]:PORT), and to one host per opened workspace,
// http://<workspace>--<namespace>--<cluster>.localhost:PORT. Any other Host
// header gets 421: that allow-list is what stops DNS rebinding, since a
// rebinding page sends its own name. Another listener adds its own Hosts,
// with its own port, through Config.AllowHost (the tailnet listener of
// portal/tailnet does).
//
// On its own host the portal needs a session: the printed URL
// /?token=TOKEN sets the cookie guildnet_session (HttpOnly,
// SameSite=Strict, a MAC of the token so it survives restarts and dies
// with the token file) and redirects to /. The UI stays on 127.0.0.1, the
// printed origin: an IP is its own site, so no *.localhost page is ever
// same-site with it, whatever a browser thinks of *.localhost.
//
// A workspace host exists so that JavaScript inside a workspace (an
// extension, a dev server's page) cannot act with the portal's session.
// POST /api/clusters/{id}/workspaces/{ns}/{name}/open hands out a one-time
// URL on the workspace's host (single use, one minute); redeeming it sets
// guildnet_workspace, a cookie bound by MAC to exactly that host, and
// redirects to the workspace's workspaces/proxy path. That host then
// serves only paths under that prefix, forwarded unchanged to the cluster;
// everything else is 403, and neither cookie works on the other's host.
//
// The UI frames the workspace host, and to the browser that frame is a
// third party: Chromium (checked with Chromium 156, headless) sends
// Sec-Fetch-Site: cross-site for a *.localhost frame inside localhost as
// well as inside 127.0.0.1, drops SameSite=Lax cookies there and, with
// third-party cookies blocked, SameSite=None ones too. Only a partitioned
// cookie (CHIPS: SameSite=None; Secure; Partitioned, and Secure is allowed
// on http://*.localhost) is set and sent. So the workspace cookie is
// partitioned, and so is every cookie the workspace's app sets (rewritten on
// the way through). Partitioning also means a cookie set inside the
// portal's frame is never sent when another site frames or links the
// workspace host; opening a workspace in a tab of its own needs a fresh
// one-time URL.
//
// # Checks on every request
//
//   - Host on the allow-list (421 otherwise).
//   - An Origin header, when present, equals the origin of the host the
//     request came to; requests that change something and WebSocket
//     upgrades must carry one (403 otherwise). This is the CSRF check,
//     and it also keeps one workspace's JavaScript from driving another
//     workspace, whose cookie the browser would otherwise attach.
//   - Sec-Fetch-Site cross-site or same-site is refused, except for page
//     loads (GET navigations) of the UI and of workspace pages.
//   - Security headers: nosniff, a Referrer-Policy, a CSP (the UI's admits
//     frames from http://*.localhost:PORT; API and forwarded answers get a
//     sandbox so HTML a cluster serves there can never run script on the
//     portal's origin; workspace hosts may be framed only by the portal's
//     origins), X-Frame-Options DENY and Cache-Control no-store on the
//     portal's host.
//
// # Forwarding
//
// One reverse proxy per cluster over client-go's transport (client
// certificates, bearer tokens, CA, allowed credential plugins), cached and
// rebuilt when the cluster is joined again; removing a cluster closes every
// connection to it, open watches and WebSockets included. Responses are
// flushed as they arrive. Forwarded requests lose Authorization,
// impersonation and X-Remote-* headers, bearer-token WebSocket
// subprotocols, and the portal's cookies. Answers on the portal's host lose
// Set-Cookie and CORS headers; on a workspace host, Set-Cookie is kept but
// made partitioned and host-only.
package server
