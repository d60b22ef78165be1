package table

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	genericapirequest "k8s.io/apiserver/pkg/endpoints/request"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/klog/v2"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/pkg/rethinkdb"
	"github.com/guildnet/guildnet/pkg/rows"
)

// DefaultRowsMaxBodyBytes bounds a tables/rows request body unless the
// server is told otherwise (--rows-max-body-bytes).
const DefaultRowsMaxBodyBytes = 16 << 20

// RowsREST is the tables/rows subresource: row CRUD, paging, import and
// export on the RethinkDB table behind a Table. The rest of the URL after
// rows/ is a row's primary key. RBAC checks the verb of the HTTP method:
// GET get, POST create, PUT update, PATCH patch, DELETE delete.
type RowsREST struct {
	tables       rest.Getter
	rethinkdb    *rethinkdb.Client
	maxBodyBytes int64
}

// NewRowsREST returns the tables/rows subresource on tables (the Table
// storage) and the RethinkDB client.
func NewRowsREST(tables rest.Getter, rdb *rethinkdb.Client, maxBodyBytes int64) *RowsREST {
	if maxBodyBytes <= 0 {
		maxBodyBytes = DefaultRowsMaxBodyBytes
	}
	return &RowsREST{tables: tables, rethinkdb: rdb, maxBodyBytes: maxBodyBytes}
}

var _ rest.Connecter = &RowsREST{}

// New returns the kind the subresource belongs to.
func (r *RowsREST) New() runtime.Object { return &guildnet.Table{} }

// Destroy does nothing: the RethinkDB client is shared.
func (r *RowsREST) Destroy() {}

// ConnectMethods are the HTTP methods tables/rows answers.
func (r *RowsREST) ConnectMethods() []string {
	return []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
}

// NewConnectOptions returns the query parameters; the rest of the path
// lands in TableRowsOptions.Path.
func (r *RowsREST) NewConnectOptions() (runtime.Object, bool, string) {
	return &guildnet.TableRowsOptions{}, true, "path"
}

// Connect returns the handler of one request on table name.
func (r *RowsREST) Connect(ctx context.Context, name string, options runtime.Object, _ rest.Responder) (http.Handler, error) {
	opts, ok := options.(*guildnet.TableRowsOptions)
	if !ok {
		return nil, fmt.Errorf("invalid options object: %#v", options)
	}
	table, err := rowsTable(ctx, r.tables, name)
	if err != nil {
		return nil, err
	}
	return &rowsHandler{rest: r, table: table, name: name, opts: opts}, nil
}

// rowsTable finds the RethinkDB table behind Table name in the request's
// namespace; a missing Table is the registry's 404.
func rowsTable(ctx context.Context, tables rest.Getter, name string) (rows.Table, error) {
	obj, err := tables.Get(ctx, name, &metav1.GetOptions{})
	if err != nil {
		return rows.Table{}, err
	}
	t := obj.(*guildnet.Table)
	ns, _ := genericapirequest.NamespaceFrom(ctx)
	dbName, tableName, ok := guildnet.SplitTableName(t.Name)
	if !ok {
		return rows.Table{}, apierrors.NewBadRequest(fmt.Sprintf("table %q has no valid <database>.<table> name", t.Name))
	}
	table := rows.Table{
		DB:         guildnet.RethinkDBDatabaseName(ns, dbName),
		Name:       guildnet.RethinkDBTableName(tableName),
		PrimaryKey: t.Spec.PrimaryKey,
	}
	for _, idx := range t.Spec.Indexes {
		table.Indexes = append(table.Indexes, rows.Index{Name: idx.Name, Fields: idx.Fields, Multi: idx.Multi})
	}
	return table, nil
}

type rowsHandler struct {
	rest  *RowsREST
	table rows.Table
	name  string
	opts  *guildnet.TableRowsOptions
}

func (h *rowsHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if err := h.serve(w, req); err != nil {
		writeStatus(w, rows.StatusError(err, h.name))
	}
}

func (h *rowsHandler) serve(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	sess := h.rest.rethinkdb.Session()
	path := strings.TrimPrefix(h.opts.Path, "/")
	var key any
	if path != "" {
		kt, err := rows.ParseKeyType(h.opts.KeyType)
		if err != nil {
			return err
		}
		if key, err = rows.ParseKey(path, kt); err != nil {
			return err
		}
	}
	switch req.Method {
	case http.MethodGet:
		if key != nil {
			row, err := h.table.Get(ctx, sess, key)
			if err != nil {
				return err
			}
			return writeJSON(w, http.StatusOK, row)
		}
		list := rows.ListOptions{Limit: int(h.opts.Limit), Continue: h.opts.Continue, Index: h.opts.Index, Desc: h.opts.Desc}
		if format, ok := rows.ExportFormat(req.Header.Get("Accept")); ok {
			return h.export(w, req, format, list)
		}
		page, err := h.table.List(ctx, sess, list)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, rowList{
			Kind: "RowList", APIVersion: "guildnet.io/v1alpha1",
			Metadata: metav1.ListMeta{Continue: page.Continue}, Items: nonNil(page.Rows),
		})
	case http.MethodPost:
		if key != nil {
			return &rows.ParameterError{Param: "path", Msg: "POST inserts into the table: send it to …/rows, not to a row's key"}
		}
		conflict, err := rows.ParseOnConflict(h.opts.Conflict)
		if err != nil {
			return err
		}
		csvTypes, err := rows.ParseCSVTypes(h.opts.CSVTypes)
		if err != nil {
			return err
		}
		batch, err := rows.Parse(contentType(req), req.Body, rows.ParseOptions{
			Limit: h.rest.maxBodyBytes, PrimaryKey: h.table.PrimaryKey, CSVTypes: csvTypes,
		})
		if err != nil {
			return err
		}
		res, err := h.table.Insert(ctx, sess, batch, conflict)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusCreated, insertResult{
			Kind: "RowInsertResult", APIVersion: "guildnet.io/v1alpha1",
			Inserted: res.Inserted, Replaced: res.Replaced, Unchanged: res.Unchanged,
		})
	}
	if key == nil {
		return &rows.ParameterError{Param: "path", Msg: req.Method + " acts on one row: add its primary key, …/rows/<key>"}
	}
	switch req.Method {
	case http.MethodPut:
		row, err := rows.ParseObject(contentType(req), req.Body, h.rest.maxBodyBytes)
		if err != nil {
			return err
		}
		stored, err := h.table.Replace(ctx, sess, key, row)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, stored)
	case http.MethodPatch:
		ct := req.Header.Get("Content-Type")
		if !strings.HasPrefix(ct, "application/merge-patch+json") {
			return &rows.UnsupportedMediaTypeError{ContentType: ct, Supported: []string{"application/merge-patch+json"}}
		}
		patch, err := rows.ParseObject("application/json", req.Body, h.rest.maxBodyBytes)
		if err != nil {
			return err
		}
		stored, err := h.table.MergePatch(ctx, sess, key, patch)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, stored)
	case http.MethodDelete:
		deleted, err := h.table.Delete(ctx, sess, key)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, deleted)
	}
	return apierrors.NewMethodNotSupported(guildnet.Resource("tables/rows"), req.Method)
}

// export streams every row (from the continue point on) as NDJSON or CSV,
// flushing as it goes, so a large table never sits in memory.
func (h *rowsHandler) export(w http.ResponseWriter, req *http.Request, format rows.Format, list rows.ListOptions) error {
	ctx := req.Context()
	sess := h.rest.rethinkdb.Session()
	var enc rows.Encoder
	if format == rows.FormatCSV {
		cols, err := h.table.Columns(ctx, sess)
		if err != nil {
			return err
		}
		enc = rows.NewCSVEncoder(w, cols, h.table.PrimaryKey)
	} else {
		enc = rows.NewNDJSONEncoder(w)
	}
	// Headers go out with the first row; an error before it is still a
	// proper Status.
	started := false
	flusher, _ := w.(http.Flusher)
	n := 0
	err := h.table.Each(ctx, sess, list, func(row rows.Row) error {
		if !started {
			w.Header().Set("Content-Type", enc.ContentType())
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if err := enc.Encode(row); err != nil {
			return err
		}
		if n++; n%500 == 0 && flusher != nil {
			if err := enc.Flush(); err != nil {
				return err
			}
			flusher.Flush()
		}
		return nil
	})
	if err != nil && !started {
		return err
	}
	if !started {
		w.Header().Set("Content-Type", enc.ContentType())
		w.WriteHeader(http.StatusOK)
	}
	if ferr := enc.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		// After the first byte a failure can only end the stream early: the
		// client sees a truncated body, and the log says why.
		klog.FromContext(ctx).Error(err, "Row export ended early", "table", h.name, "rows", n)
	}
	return nil
}

// contentType is the request's Content-Type, JSON when it has none:
// `kubectl create --raw -f rows.json` sends its body without one.
func contentType(req *http.Request) string {
	if ct := req.Header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "application/json"
}

type rowList struct {
	Kind       string          `json:"kind"`
	APIVersion string          `json:"apiVersion"`
	Metadata   metav1.ListMeta `json:"metadata"`
	Items      []rows.Row      `json:"items"`
}

type insertResult struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Inserted   int    `json:"inserted"`
	Replaced   int    `json:"replaced"`
	Unchanged  int    `json:"unchanged"`
}

func nonNil(r []rows.Row) []rows.Row {
	if r == nil {
		return []rows.Row{}
	}
	return r
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

// writeStatus answers with a Kubernetes Status, as every API error is.
func writeStatus(w http.ResponseWriter, err *apierrors.StatusError) {
	status := err.ErrStatus
	status.Kind, status.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(int(status.Code))
	_ = json.NewEncoder(w).Encode(status)
}
