package rows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// Table is a RethinkDB table the rows endpoint serves.
type Table struct {
	// DB and Name are the table's names inside RethinkDB (see
	// guildnet.RethinkDBDatabaseName and guildnet.RethinkDBTableName).
	DB, Name string
	// PrimaryKey is the table's primary key; "" means "id".
	PrimaryKey string
	// Indexes are the secondary indexes a list may be ordered by, as the
	// Table's spec declares them. Ordering by an index not listed here is
	// refused with a 400 that names the ones that are.
	Indexes []Index
}

// Index is a secondary index as the reconciler creates it: a simple index
// on one field, or a compound index on the array of Fields' values.
type Index struct {
	Name string
	// Fields the index is built from; empty means [Name].
	Fields []string
	// Multi indexes list a row once per array element; lists cannot be
	// paged by them (a row would come back several times).
	Multi bool
}

const (
	// DefaultLimit is the page size of a list that asks for none.
	DefaultLimit = 100
	// MaxLimit is the largest page served; a larger limit is served in
	// pages of MaxLimit, and metadata.continue fetches the rest (as
	// Kubernetes lists may return fewer items than the limit).
	MaxLimit = 1000
)

func (t Table) pk() string {
	if t.PrimaryKey == "" {
		return DefaultPrimaryKey
	}
	return t.PrimaryKey
}

func (t Table) term() r.Term { return r.DB(t.DB).Table(t.Name) }

func (t Table) qualified() string { return t.DB + "." + t.Name }

// runOpts bounds a query by ctx and reads times, binary data and geometry in
// their raw JSON form ({"$reql_type$": "TIME", ...}): that is what the API
// shows, and what can be written back unchanged.
func runOpts(ctx context.Context) r.RunOpts {
	return r.RunOpts{Context: ctx, TimeFormat: "raw", BinaryFormat: "raw", GeometryFormat: "raw"}
}

// queryError is a failed query: what was attempted, and the driver's error
// on one line (the driver appends the whole query, with the user's data).
type queryError struct {
	what string
	err  error
}

func (e *queryError) Error() string {
	msg := strings.TrimPrefix(e.err.Error(), "rethinkdb: ")
	if i := strings.Index(msg, " in:\n"); i >= 0 {
		msg = msg[:i]
	}
	return e.what + ": " + firstLine(msg)
}

func (e *queryError) Unwrap() error { return e.err }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSpace(s)
}

// queryError classifies a driver error: the table missing (404), an index
// missing (400), the caller's context ending; everything else keeps the
// driver's error (rethinkdb.IsUnavailable tells 503 apart).
func (t Table) queryError(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	// Checked first: RethinkDB reports a missing table as an "op failed"
	// error, which IsUnavailable would take for an outage.
	if strings.Contains(msg, "Table `"+t.qualified()+"` does not exist") ||
		strings.Contains(msg, "Database `"+t.DB+"` does not exist") {
		return &TableNotFoundError{RethinkDB: t.qualified()}
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s: %w", what, cerr)
	}
	if i := strings.Index(msg, "Index `"); i >= 0 && strings.Contains(msg, "was not found") {
		return &ParameterError{Param: "index", Msg: firstLine(msg[i:]) + "; the Table's indexes may not be ready yet"}
	}
	return &queryError{what: what, err: err}
}

// readOne runs a query that returns one value (nil for null or nothing).
func (t Table) readOne(ctx context.Context, s *r.Session, what string, q r.Term) (any, error) {
	cur, err := q.Run(s, runOpts(ctx))
	if err != nil {
		return nil, t.queryError(ctx, what, err)
	}
	defer cur.Close()
	var v any
	if err := cur.One(&v); err != nil {
		if errors.Is(err, r.ErrEmptyResult) {
			return nil, nil
		}
		return nil, t.queryError(ctx, what, err)
	}
	return v, nil
}

// readAll runs a query that returns an array or a sequence. (The driver
// spreads an array result over the cursor, so readOne would see only its
// first element.)
func (t Table) readAll(ctx context.Context, s *r.Session, what string, q r.Term) ([]any, error) {
	cur, err := q.Run(s, runOpts(ctx))
	if err != nil {
		return nil, t.queryError(ctx, what, err)
	}
	defer cur.Close()
	var v []any
	if err := cur.All(&v); err != nil {
		return nil, t.queryError(ctx, what, err)
	}
	return v, nil
}

// write runs a write query. Errors of single documents (a duplicate key, an
// r.error of a conditional write) are in the response, not in the error.
func (t Table) write(ctx context.Context, s *r.Session, what string, q r.Term) (r.WriteResponse, error) {
	var resp r.WriteResponse
	cur, err := q.Run(s, runOpts(ctx))
	if err != nil {
		return resp, t.queryError(ctx, what, err)
	}
	defer cur.Close()
	if err := cur.One(&resp); err != nil {
		return resp, t.queryError(ctx, what, err)
	}
	return resp, nil
}

// Get returns the row with key (a string or a number, see ParseKey), or a
// *NotFoundError.
func (t Table) Get(ctx context.Context, s *r.Session, key any) (Row, error) {
	k, err := normalizeKey(key)
	if err != nil {
		return nil, err
	}
	v, err := t.readOne(ctx, s, "read row", t.term().Get(k))
	if err != nil {
		return nil, err
	}
	row, ok := v.(map[string]any)
	if !ok {
		return nil, &NotFoundError{Key: k}
	}
	return row, nil
}

// Count returns the number of rows.
func (t Table) Count(ctx context.Context, s *r.Session) (int64, error) {
	v, err := t.readOne(ctx, s, "count rows", t.term().Count())
	if err != nil {
		return 0, err
	}
	n, _ := v.(float64)
	return int64(n), nil
}

// ListOptions select a page of rows.
type ListOptions struct {
	// Limit is the page size: 0 means DefaultLimit, more than MaxLimit is
	// served as MaxLimit. Negative is a *ParameterError.
	Limit int
	// Continue is metadata.continue of the previous page, "" for the first.
	Continue string
	// Index orders the rows by a secondary index of Table.Indexes; "" (or
	// the primary key's name) orders by primary key. Rows without the
	// indexed field are not in the index and so not listed (RethinkDB's
	// behaviour); rows with equal index values come in primary key order.
	Index string
	// Desc lists in descending order.
	Desc bool
}

// Page is one page of a list.
type Page struct {
	Rows []Row
	// Continue fetches the next page; "" when this is the last.
	Continue string
}

// List returns one page of rows in index order. Paging is by key range: a
// continue token holds the last row's key (and index value), and the next
// page starts right after it, so every row that exists throughout the
// listing is returned exactly once however many pages it takes; rows
// written meanwhile appear if they sort after the current position. A page
// costs one range read of limit+1 rows, however deep into the table it is.
func (t Table) List(ctx context.Context, s *r.Session, opts ListOptions) (Page, error) {
	limit := opts.Limit
	switch {
	case limit < 0:
		return Page{}, &ParameterError{Param: "limit", Msg: fmt.Sprintf("%d is negative; give a page size from 1 to %d, or none for %d", limit, MaxLimit, DefaultLimit)}
	case limit == 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	q, idx, err := t.listQuery(opts)
	if err != nil {
		return Page{}, err
	}
	cur, err := q.Limit(limit+1).Run(s, runOpts(ctx))
	if err != nil {
		return Page{}, t.queryError(ctx, "list rows", err)
	}
	defer cur.Close()
	var rows []Row
	if err := cur.All(&rows); err != nil {
		return Page{}, t.queryError(ctx, "list rows", err)
	}
	if rows == nil {
		rows = []Row{}
	}
	page := Page{Rows: rows}
	if len(rows) > limit {
		page.Rows = rows[:limit]
		last := rows[limit-1]
		c := Continue{Desc: opts.Desc, Key: last[t.pk()]}
		if idx != nil {
			c.Index, c.IndexValue = idx.Name, idx.valueOf(last)
		}
		if page.Continue, err = EncodeContinue(c); err != nil {
			return Page{}, err
		}
	}
	return page, nil
}

// Each calls fn with every row from the position and in the order opts
// name (Limit is ignored), streaming them from RethinkDB: the export. It
// stops at the first error of fn, which it returns.
func (t Table) Each(ctx context.Context, s *r.Session, opts ListOptions, fn func(Row) error) error {
	q, _, err := t.listQuery(opts)
	if err != nil {
		return err
	}
	cur, err := q.Run(s, runOpts(ctx))
	if err != nil {
		return t.queryError(ctx, "export rows", err)
	}
	defer cur.Close()
	for {
		var row Row
		if !cur.Next(&row) {
			break
		}
		if err := fn(row); err != nil {
			return err
		}
	}
	return t.queryError(ctx, "export rows", cur.Err())
}

// Columns returns the CSV columns of the whole table: the primary key, then
// every other field any row has, sorted. RethinkDB computes the union
// (one pass over the table, sending back field names only), so the CSV
// header is exact, not a guess from the first rows.
func (t Table) Columns(ctx context.Context, s *r.Session) ([]string, error) {
	list, err := t.readAll(ctx, s, "list the table's fields",
		t.term().ConcatMap(func(row r.Term) any { return row.Keys() }).Distinct())
	if err != nil {
		return nil, err
	}
	fields := map[string]bool{}
	for _, f := range list {
		if name, ok := f.(string); ok {
			fields[name] = true
		}
	}
	return columnsOf(t.pk(), fields), nil
}

// index returns the declared secondary index name, or a *ParameterError.
func (t Table) index(name string) (*Index, error) {
	var names []string
	for i := range t.Indexes {
		idx := t.Indexes[i]
		if idx.Name == name {
			if idx.Multi {
				return nil, &ParameterError{Param: "index", Msg: fmt.Sprintf("%q is a multi index, which lists a row once per array element; rows cannot be paged by it", name)}
			}
			return &idx, nil
		}
		names = append(names, idx.Name)
	}
	slices.Sort(names)
	avail := fmt.Sprintf("the primary key %q", t.pk())
	if len(names) > 0 {
		avail += " or " + strings.Join(names, ", ")
	}
	return nil, &ParameterError{Param: "index", Msg: fmt.Sprintf("the table has no index %q; order by %s", name, avail)}
}

func (idx *Index) fields() []string {
	if len(idx.Fields) == 0 {
		return []string{idx.Name}
	}
	return idx.Fields
}

// valueOf is row's value in the index.
func (idx *Index) valueOf(row Row) any {
	f := idx.fields()
	if len(f) == 1 {
		return row[f[0]]
	}
	v := make([]any, len(f))
	for i, name := range f {
		v[i] = row[name]
	}
	return v
}

// term is the index value of row inside a query.
func (idx *Index) term(row r.Term) r.Term {
	f := idx.fields()
	if len(f) == 1 {
		return row.Field(f[0])
	}
	v := make([]any, len(f))
	for i, name := range f {
		v[i] = row.Field(name)
	}
	return r.Expr(v)
}

// listQuery builds the ordered range read of a list, starting after the
// continue token's position.
//
// By primary key the range starts strictly after the last key. By a
// secondary index it starts at the last index value, inclusive, and a
// filter drops the rows of that value up to the last key: RethinkDB orders
// rows with equal index values by primary key.
func (t Table) listQuery(opts ListOptions) (r.Term, *Index, error) {
	pk := t.pk()
	name := opts.Index
	if name == pk {
		name = ""
	}
	var idx *Index
	if name != "" {
		var err error
		if idx, err = t.index(name); err != nil {
			return r.Term{}, nil, err
		}
	}
	var after *Continue
	if opts.Continue != "" {
		c, err := DecodeContinue(opts.Continue)
		if err != nil {
			return r.Term{}, nil, err
		}
		if c.Index != name || c.Desc != opts.Desc {
			return r.Term{}, nil, &ParameterError{Param: "continue", Msg: fmt.Sprintf("the token continues a list ordered by %s; repeat the same index and order with it, or start the list again without continue", describeOrder(c.Index, c.Desc, pk))}
		}
		after = &c
	}

	tbl := t.term()
	if idx == nil {
		if !opts.Desc {
			var lo any = r.MinVal
			bound := "closed"
			if after != nil {
				lo, bound = after.Key, "open"
			}
			return tbl.Between(lo, r.MaxVal, r.BetweenOpts{LeftBound: bound}).OrderBy(r.OrderByOpts{Index: pk}), nil, nil
		}
		var hi any = r.MaxVal
		if after != nil {
			hi = after.Key
		}
		return tbl.Between(r.MinVal, hi, r.BetweenOpts{RightBound: "open"}).OrderBy(r.OrderByOpts{Index: r.Desc(pk)}), nil, nil
	}

	if !opts.Desc {
		var lo any = r.MinVal
		if after != nil {
			lo = after.IndexValue
		}
		q := tbl.Between(lo, r.MaxVal, r.BetweenOpts{Index: idx.Name, LeftBound: "closed"}).OrderBy(r.OrderByOpts{Index: idx.Name})
		if after != nil {
			q = q.Filter(func(row r.Term) r.Term {
				return idx.term(row).Ne(after.IndexValue).Or(row.Field(pk).Gt(after.Key))
			})
		}
		return q, idx, nil
	}
	var hi any = r.MaxVal
	if after != nil {
		hi = after.IndexValue
	}
	q := tbl.Between(r.MinVal, hi, r.BetweenOpts{Index: idx.Name, RightBound: "closed"}).OrderBy(r.OrderByOpts{Index: r.Desc(idx.Name)})
	if after != nil {
		q = q.Filter(func(row r.Term) r.Term {
			return idx.term(row).Ne(after.IndexValue).Or(row.Field(pk).Lt(after.Key))
		})
	}
	return q, idx, nil
}

func describeOrder(index string, desc bool, pk string) string {
	s := fmt.Sprintf("the primary key %q", pk)
	if index != "" {
		s = fmt.Sprintf("the index %q", index)
	}
	if desc {
		return s + ", descending"
	}
	return s + ", ascending"
}
