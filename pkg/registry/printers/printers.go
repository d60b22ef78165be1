// Package printers turns guildnet.io objects into the tables `kubectl get`
// prints, with columns chosen per resource.
package printers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/apiserver/pkg/registry/rest"
)

// Column is one printer column: its definition and how to read it.
type Column[T runtime.Object] struct {
	Def   metav1.TableColumnDefinition
	Value func(obj T) any
}

// NameColumn and AgeColumn frame every resource's table.
var (
	nameDef = metav1.TableColumnDefinition{Name: "Name", Type: "string", Format: "name", Description: "Name of the object."}
	ageDef  = metav1.TableColumnDefinition{Name: "Age", Type: "string", Description: "Time since the object was created."}
)

type convertor[T runtime.Object] struct {
	columns []Column[T]
}

// New returns a table convertor with Name, the given columns, then Age.
func New[T runtime.Object](columns ...Column[T]) rest.TableConvertor {
	return convertor[T]{columns: columns}
}

func (c convertor[T]) ConvertToTable(_ context.Context, obj runtime.Object, opts runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{}
	if o, ok := opts.(*metav1.TableOptions); !ok || !o.NoHeaders {
		table.ColumnDefinitions = append(table.ColumnDefinitions, nameDef)
		for _, col := range c.columns {
			table.ColumnDefinitions = append(table.ColumnDefinitions, col.Def)
		}
		table.ColumnDefinitions = append(table.ColumnDefinitions, ageDef)
	}
	addRow := func(o runtime.Object) error {
		typed, ok := o.(T)
		if !ok {
			return fmt.Errorf("cannot print %T as a table", o)
		}
		m, err := meta.Accessor(o)
		if err != nil {
			return err
		}
		cells := []any{m.GetName()}
		for _, col := range c.columns {
			cells = append(cells, col.Value(typed))
		}
		cells = append(cells, Age(m.GetCreationTimestamp()))
		table.Rows = append(table.Rows, metav1.TableRow{Cells: cells, Object: runtime.RawExtension{Object: o}})
		return nil
	}
	if meta.IsListType(obj) {
		if err := meta.EachListItem(obj, addRow); err != nil {
			return nil, err
		}
		if l, err := meta.ListAccessor(obj); err == nil {
			table.ResourceVersion = l.GetResourceVersion()
			table.Continue = l.GetContinue()
			table.RemainingItemCount = l.GetRemainingItemCount()
		}
		return table, nil
	}
	if err := addRow(obj); err != nil {
		return nil, err
	}
	if m, err := meta.Accessor(obj); err == nil {
		table.ResourceVersion = m.GetResourceVersion()
	}
	return table, nil
}

// Age prints how long ago t was, as kubectl does ("<unknown>" when unset).
func Age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t.Time))
}

// ConditionStatus returns the status of condition typ ("True", "False",
// "Unknown"), or "Unknown" when it is not reported yet.
func ConditionStatus(conds []metav1.Condition, typ string) string {
	for _, c := range conds {
		if c.Type == typ {
			return string(c.Status)
		}
	}
	return string(metav1.ConditionUnknown)
}
