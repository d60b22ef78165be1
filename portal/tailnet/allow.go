package tailnet

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"tailscale.com/client/tailscale/apitype"
	"tailscale.com/tailcfg"
)

// AllowList says which tailnet identities the listener admits. Build it
// with ParseAllowList; the zero value admits nobody.
type AllowList struct {
	logins map[string]bool
	tags   map[string]bool
	nodes  map[string]bool
}

// ParseAllowList reads the entries of --tailnet-allow: login names
// (containing @), tags (tag:NAME) and full MagicDNS node names. Empty
// entries are skipped; a list with none left is an error, since the
// listener admits nobody by default.
func ParseAllowList(entries []string) (*AllowList, error) {
	a := &AllowList{logins: map[string]bool{}, tags: map[string]bool{}, nodes: map[string]bool{}}
	var errs []error
	n := 0
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		n++
		switch {
		case strings.HasPrefix(e, "tag:"):
			if err := tailcfg.CheckTag(e); err != nil {
				errs = append(errs, fmt.Errorf("%q is not a tag: %v", e, err))
				continue
			}
			a.tags[e] = true
		case strings.Contains(e, "@"):
			if strings.ContainsAny(e, " \t,") || strings.HasPrefix(e, "@") {
				errs = append(errs, fmt.Errorf("%q is not a login name (like alice@example.com)", e))
				continue
			}
			a.logins[strings.ToLower(e)] = true
		default:
			name := strings.ToLower(strings.TrimSuffix(e, "."))
			if !strings.Contains(name, ".") {
				errs = append(errs, fmt.Errorf("%q is neither a login name (alice@example.com), a tag (tag:NAME) nor a full MagicDNS node name (%s.TAILNET.ts.net); node names must be given in full, since a node shared in from another tailnet can have the same first label", e, name))
				continue
			}
			if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
				errs = append(errs, fmt.Errorf("%q is not a node name: %s", e, strings.Join(msgs, "; ")))
				continue
			}
			a.nodes[name] = true
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errors.New("the tailnet allow list is empty, and the tailnet listener admits nobody by default; name who may use the portal: login names (you@example.com), tags (tag:portal-users) or full MagicDNS node names")
	}
	return a, nil
}

// Identity is who a request on the tailnet comes from, as WhoIs tells.
type Identity struct {
	// LoginName is the node owner's login name; for tagged nodes it is
	// Tailscale's shared profile ("tagged-devices") and never matched.
	LoginName string
	// Tags are the node's tags; a node with tags belongs to no user.
	Tags []string
	// Node is the node's full MagicDNS name, lower-case, no final dot.
	Node string
}

// identityOf reads a WhoIs answer.
func identityOf(w *apitype.WhoIsResponse) Identity {
	var id Identity
	if w == nil {
		return id
	}
	if w.Node != nil {
		id.Node = strings.ToLower(strings.TrimSuffix(w.Node.Name, "."))
		id.Tags = slices.Clone(w.Node.Tags)
	}
	if w.UserProfile != nil {
		id.LoginName = w.UserProfile.LoginName
	}
	return id
}

// String names the identity for a person: user and node, or node and tags.
func (id Identity) String() string {
	node := id.Node
	if node == "" {
		node = "(no name)"
	}
	if len(id.Tags) > 0 {
		return fmt.Sprintf("node %s tagged %s", node, strings.Join(id.Tags, ", "))
	}
	if id.LoginName == "" {
		return "node " + node
	}
	return fmt.Sprintf("user %s on node %s", id.LoginName, node)
}

// entry is what --tailnet-allow would need to admit id: its login name,
// else its first tag, else its node name.
func (id Identity) entry() string {
	switch {
	case len(id.Tags) > 0:
		return id.Tags[0]
	case id.LoginName != "":
		return id.LoginName
	default:
		return id.Node
	}
}

// Admits reports whether the list names id: its node, one of its tags
// when it is tagged, else its owner's login name.
func (a *AllowList) Admits(id Identity) bool {
	if a == nil {
		return false
	}
	if id.Node != "" && a.nodes[id.Node] {
		return true
	}
	if len(id.Tags) > 0 {
		return slices.ContainsFunc(id.Tags, func(t string) bool { return a.tags[t] })
	}
	return id.LoginName != "" && a.logins[strings.ToLower(id.LoginName)]
}
