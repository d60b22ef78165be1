package printers

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/guildnet/guildnet/apis/guildnet"
)

func TestConvertListAndObject(t *testing.T) {
	c := New(Column[*guildnet.Database]{
		Def:   metav1.TableColumnDefinition{Name: "Ready", Type: "string"},
		Value: func(o *guildnet.Database) any { return ConditionStatus(o.Status.Conditions, "Ready") },
	})
	created := metav1.NewTime(time.Now().Add(-90 * time.Second))
	list := &guildnet.DatabaseList{
		ListMeta: metav1.ListMeta{ResourceVersion: "7", Continue: "next"},
		Items: []guildnet.Database{
			{ObjectMeta: metav1.ObjectMeta{Name: "a", CreationTimestamp: created}, Status: guildnet.DatabaseStatus{Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue}}}},
			{ObjectMeta: metav1.ObjectMeta{Name: "b", CreationTimestamp: created}},
		},
	}
	table, err := c.ConvertToTable(context.Background(), list, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range table.ColumnDefinitions {
		names = append(names, d.Name)
	}
	if len(names) != 3 || names[0] != "Name" || names[1] != "Ready" || names[2] != "Age" {
		t.Errorf("columns = %v, want [Name Ready Age]", names)
	}
	if len(table.Rows) != 2 || table.Rows[0].Cells[1] != "True" || table.Rows[1].Cells[1] != "Unknown" || table.Rows[0].Cells[2] != "90s" {
		t.Errorf("rows = %+v", table.Rows)
	}
	if table.ResourceVersion != "7" || table.Continue != "next" {
		t.Errorf("list metadata lost: rv %q continue %q", table.ResourceVersion, table.Continue)
	}

	noHeaders, err := c.ConvertToTable(context.Background(), &list.Items[0], &metav1.TableOptions{NoHeaders: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(noHeaders.ColumnDefinitions) != 0 || len(noHeaders.Rows) != 1 || noHeaders.Rows[0].Cells[0] != "a" {
		t.Errorf("single object without headers: %+v", noHeaders)
	}
}
