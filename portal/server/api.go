package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guildnet/guildnet/portal/join"
	"github.com/guildnet/guildnet/portal/store"
)

// clusterJSON is a cluster as the API shows it.
type clusterJSON struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"`
	Server   string       `json:"server"`
	Settings settingsJSON `json:"settings"`
}

// settingsJSON is store.Settings with every field always present, so the UI
// reads "" rather than a missing key.
type settingsJSON struct {
	DefaultNamespace string `json:"defaultNamespace"`
	ImagePullSecret  string `json:"imagePullSecret"`
	DefaultExposure  string `json:"defaultExposure"`
}

func toSettingsJSON(st store.Settings) settingsJSON {
	return settingsJSON{DefaultNamespace: st.DefaultNamespace, ImagePullSecret: st.ImagePullSecret, DefaultExposure: string(st.DefaultExposure)}
}

type clusterListJSON struct {
	Items []clusterJSON `json:"items"`
}

type openJSON struct {
	URL string `json:"url"`
}

// serveAPI routes /api/... . The routes are few and fixed; matching them
// by hand keeps every miss a Status rather than net/http's plain text.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/api/"), "/")
	route := func(method string, n int) bool { return len(parts) == n && r.Method == method }
	if parts[0] != "clusters" {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("%s is not a portal API path", r.URL.Path))
		return
	}
	switch {
	case len(parts) == 1:
		switch r.Method {
		case http.MethodGet:
			s.listClusters(w)
		case http.MethodPost:
			s.joinCluster(w, r)
		default:
			methodNotAllowed(w, r, "GET, POST")
		}
	case len(parts) == 2:
		if route(http.MethodDelete, 2) {
			s.removeCluster(w, parts[1])
		} else {
			methodNotAllowed(w, r, "DELETE")
		}
	case len(parts) == 3 && parts[2] == "settings":
		if route(http.MethodPut, 3) {
			s.putSettings(w, r, parts[1])
		} else {
			methodNotAllowed(w, r, "PUT")
		}
	case len(parts) == 3 && parts[2] == "export":
		if route(http.MethodGet, 3) {
			s.exportCluster(w, parts[1])
		} else {
			methodNotAllowed(w, r, "GET")
		}
	case len(parts) == 6 && parts[2] == "workspaces" && parts[5] == "open":
		if route(http.MethodPost, 6) {
			s.openWorkspace(w, parts[1], parts[3], parts[4])
		} else {
			methodNotAllowed(w, r, "POST")
		}
	default:
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, fmt.Sprintf("%s is not a portal API path", r.URL.Path))
	}
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request, allow string) {
	w.Header().Set("Allow", allow)
	writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, fmt.Sprintf("%s %s is not supported; use %s", r.Method, r.URL.Path, allow))
}

// storeError answers an error of the store: 404 for an unknown id.
func storeError(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, err.Error())
		return
	}
	writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
}

func (s *Server) clusterJSON(c store.Cluster) (clusterJSON, error) {
	st, err := s.cfg.Store.Settings(c.ID)
	if err != nil {
		return clusterJSON{}, err
	}
	return clusterJSON{ID: c.ID, Name: c.Name, Server: c.Server, Settings: toSettingsJSON(st)}, nil
}

func (s *Server) listClusters(w http.ResponseWriter) {
	cs, err := s.cfg.Store.List()
	if err != nil {
		storeError(w, err)
		return
	}
	out := clusterListJSON{Items: []clusterJSON{}}
	for _, c := range cs {
		cj, err := s.clusterJSON(c)
		if errors.Is(err, store.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			storeError(w, err)
			return
		}
		out.Items = append(out.Items, cj)
	}
	writeJSON(w, http.StatusOK, out)
}

// joinCluster joins the uploaded file. Every failure leaves the store as it
// was (join's guarantee) and says why in the Status message.
func (s *Server) joinCluster(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := join.Options{Name: strings.TrimSpace(q.Get("name")), Timeout: s.cfg.JoinTimeout}
	if v := q.Get("allowPlugins"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, fmt.Sprintf("allowPlugins=%q is not true or false", v))
			return
		}
		opts.AllowExecPlugins = b
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxJoinFile+1))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, fmt.Sprintf("reading the uploaded join file: %v", err))
		return
	}
	if len(data) > maxJoinFile {
		writeStatus(w, http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge,
			fmt.Sprintf("the join file is larger than %d bytes; a guildnet.config or kubeconfig is a few kilobytes", maxJoinFile))
		return
	}
	// Parse first, on its own, so that a bad file is told apart (400) from
	// a cluster that does not answer well (502). Join parses it again.
	if _, err := join.Parse(data, opts); err != nil {
		var pe *join.PluginError
		if errors.As(err, &pe) {
			writeStatus(w, http.StatusUnprocessableEntity, ReasonPluginRefused, pluginMessage(pe))
			return
		}
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, err.Error())
		return
	}
	res, err := join.Join(r.Context(), s.cfg.Store, data, opts)
	if err != nil {
		var ce *join.CheckError
		switch {
		case errors.As(err, &ce):
			// 502 whatever the cluster said: a 401 from the cluster must
			// not read as "the portal session is gone".
			writeStatus(w, http.StatusBadGateway, metav1.StatusReason(ce.Kind), ce.Message)
		case errors.Is(err, context.Canceled):
			writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "the join was cancelled; nothing was stored")
		default:
			writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		}
		return
	}
	// A cluster joined again under an id that was removed must not reuse
	// the old connections.
	s.clusters.invalidate(res.Cluster.ID)
	cj, err := s.clusterJSON(res.Cluster)
	if err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, cj)
}

// ReasonPluginRefused is the Status reason of a join refused because the
// kubeconfig runs a credential plugin and allowPlugins was not set.
const ReasonPluginRefused metav1.StatusReason = "PluginRefused"

// pluginMessage is join's PluginError in the UI's words (join's own
// message names the CLI flag).
func pluginMessage(pe *join.PluginError) string {
	return fmt.Sprintf("kubeconfig user %q runs an %s credential plugin (%s); kubeconfigs are code, and joining would let this file run that program on this device whenever the portal talks to the cluster. If you trust the file, join it again with credential plugins allowed",
		pe.User, pe.Plugin, pe.Detail)
}

func (s *Server) removeCluster(w http.ResponseWriter, id string) {
	if err := s.cfg.Store.Remove(id); err != nil {
		storeError(w, err)
		return
	}
	// Open watches and WebSockets of the cluster end now, not when the
	// browser gives up on them.
	s.clusters.invalidate(id)
	writeStatus(w, http.StatusOK, "", fmt.Sprintf("cluster %s removed", id))
}

func (s *Server) putSettings(w http.ResponseWriter, r *http.Request, id string) {
	var in settingsJSON
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest,
			fmt.Sprintf("the settings are not a JSON object of defaultNamespace, imagePullSecret and defaultExposure: %v", err))
		return
	}
	st := store.Settings{DefaultNamespace: in.DefaultNamespace, ImagePullSecret: in.ImagePullSecret, DefaultExposure: store.Exposure(in.DefaultExposure)}
	if err := st.Validate(); err != nil {
		writeStatus(w, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, err.Error())
		return
	}
	if err := s.cfg.Store.SetSettings(id, st); err != nil {
		storeError(w, err)
		return
	}
	got, err := s.cfg.Store.Settings(id)
	if err != nil {
		storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, toSettingsJSON(got))
}

func (s *Server) exportCluster(w http.ResponseWriter, id string) {
	data, err := join.Export(s.cfg.Store, id)
	if err != nil {
		storeError(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", id+".guildnet.config"))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// openWorkspace hands out the one-time URL that opens a workspace on its
// own origin.
func (s *Server) openWorkspace(w http.ResponseWriter, id, namespace, name string) {
	if _, err := s.cfg.Store.Get(id); err != nil {
		storeError(w, err)
		return
	}
	ref := workspaceRef{Cluster: id, Namespace: namespace, Name: name}
	if err := validateWorkspaceRef(ref); err != nil {
		writeStatus(w, http.StatusUnprocessableEntity, metav1.StatusReasonInvalid, err.Error())
		return
	}
	t, err := s.tickets.issue(ref)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, fmt.Sprintf("making a workspace ticket: %v", err))
		return
	}
	u := s.hosts.workspaceHost(ref).origin() + OpenPath + "?ticket=" + t
	writeJSON(w, http.StatusOK, openJSON{URL: u})
}
