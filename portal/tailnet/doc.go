// Package tailnet is guildnet-portal's optional second listener: the portal
// on a tailnet (Tailscale, or a headscale control server), through an
// embedded tsnet node of its own, so other devices of the person's tailnet
// reach it without the portal ever listening on a LAN address.
//
// # Who gets in
//
// Every request on the tailnet listener is looked up with WhoIs (the
// tailnet's own, cryptographically bound answer to "which node and user is
// this source address") and admitted only when the allow list names it:
//
//   - a user's login name (alice@example.com, bob@github) admits that
//     user's untagged nodes;
//   - a tag (tag:portal-users) admits nodes carrying it; a tagged node is
//     identified by its tags only, since tagged nodes belong to no user
//     (their "user" is Tailscale's shared tagged-devices profile, which an
//     entry can never name);
//   - a node's full MagicDNS name (laptop.example-tailnet.ts.net) admits that
//     node whoever owns it. Bare host names are refused in the list: a node
//     shared in from another tailnet can carry the same first label.
//
// Everyone else gets 403 with a message naming the identity the portal saw
// and the flag that would admit it. The list is deny by default: an empty
// list is an error, not "everyone on the tailnet". The tailnet's ACLs still
// decide who can open a connection at all; the list is the portal's own
// check on top of them.
//
// # The token still opens the session
//
// WhoIs admits a request to the portal; it does not sign anyone in. The
// portal's usual token flow applies unchanged on the tailnet host (open
// http://NAME/?token=TOKEN once; the session cookie is set on that host).
// A tailnet identity is a node and its owner, not the person at the
// browser: every program and every account on an admitted node shares it
// (a shared family computer, a build server, a container on a laptop, a
// browser tab running some other site's JavaScript). Requiring the token
// too keeps the portal's rule the same on both listeners — whoever holds
// this device's token may use its cluster credentials — and keeps WhoIs as
// a narrowing of who may even try, not a second, weaker way in. It also
// keeps every other check (CSRF through Origin and Sec-Fetch-Site, cookies
// bound by MAC to the token) exactly as on loopback.
//
// # Host names
//
// The listener's Hosts are its MagicDNS name (NAME.TAILNET.ts.net), that
// name's first label (what MagicDNS users type), and its Tailscale
// addresses (100.x.y.z and fd7a:115c:a1e0::…), each with the listener's
// port. Listener.AllowHost reports them to portal/server's Host allow-list
// (server.Config.AllowHost); they are read again every 30 seconds, so a
// rename in the admin console is picked up. Any other Host gets the
// portal's 421, as on loopback: that is the DNS-rebinding defence.
//
// Workspaces cannot be opened from a tailnet device: they are served on
// http://WS--NS--CLUSTER.localhost:PORT, which a remote browser resolves to
// itself. The rest of the UI works.
//
// # State and logs
//
// The node's keys live in the tailnet folder of the portal's state dir
// (mode 0700), so the node keeps its name and addresses across restarts;
// an auth key is needed only for the first start (or a login URL that the
// portal logs). Log uploads to Tailscale's log server are off when the
// control server is not Tailscale's (there is no one to support it);
// with Tailscale's control server tsnet's default holds, and
// TS_NO_LOGS_NO_SUPPORT=true turns them off.
package tailnet
