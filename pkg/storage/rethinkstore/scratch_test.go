package rethinkstore

import (
	"testing"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

func TestScratch(t *testing.T) {
	c := testClient(t)
	ctx, s := testSetupWith(t, c, testOptions)
	_ = ctx
	sess := c.Session()
	log := s.b.log
	for i := 2; i < 6; i++ {
		if _, err := log.Insert(map[string]any{"id": i, "key": "/a/" + string(rune('a'+i))}).RunWrite(sess); err != nil {
			t.Fatal(err)
		}
	}
	try := func(name string, q r.Term) {
		var rows []map[string]any
		cur, err := q.Run(sess)
		if err != nil {
			t.Logf("%s: run: %v", name, err)
			return
		}
		err = cur.All(&rows)
		t.Logf("%s: %v %v", name, rows, err)
	}
	try("between", log.Between("/a/", "/a0", r.BetweenOpts{Index: keyIndex}))
	try("between open", log.Between("/a/", "/a0", r.BetweenOpts{Index: keyIndex, LeftBound: "open", RightBound: "open"}))
	try("between order", log.Between("/a/", "/a0", r.BetweenOpts{Index: keyIndex}).OrderBy(r.OrderByOpts{Index: keyIndex}))
	try("between order filter", log.Between("/a/", "/a0", r.BetweenOpts{Index: keyIndex}).OrderBy(r.OrderByOpts{Index: keyIndex}).Filter(func(row r.Term) r.Term { return row.Field("id").Le(4) }))
	try("between open exact", log.Between("/a/c", "/a0", r.BetweenOpts{Index: keyIndex, LeftBound: "open", RightBound: "open"}).OrderBy(r.OrderByOpts{Index: keyIndex}))
	try("getall", log.GetAllByIndex(keyIndex, "/a/c").Filter(func(row r.Term) r.Term { return row.Field("id").Le(4) }))
	try("orderby index", log.OrderBy(r.OrderByOpts{Index: keyIndex}))
}
