package boundedmap

import (
	"fmt"
	"testing"
)

// Entries survive one turnover of generations, and those read again
// survive more; the map never holds more than two generations.
func TestGenerations(t *testing.T) {
	m := New[string, int](3, nil)
	for i := range 3 {
		m.Put(fmt.Sprint(i), i)
	}
	// The fourth entry turns the generations over: 0..2 are the previous one.
	m.Put("3", 3)
	if v, ok := m.Get("0"); !ok || v != 0 {
		t.Fatalf("0 from the previous generation: %d, %v", v, ok)
	}
	// 0 moved to the current generation (3, 0); 4 fills it, 5 turns it over,
	// which drops 1 and 2.
	m.Put("4", 4)
	m.Put("5", 5)
	if _, ok := m.Get("1"); ok {
		t.Error("1, never read again, survived two turnovers")
	}
	if v, ok := m.Get("0"); !ok || v != 0 {
		t.Errorf("0, read after the first turnover, is gone (%d, %v)", v, ok)
	}
	for i := range 100 {
		m.Put(fmt.Sprint("x", i), i)
		if m.Len() > 6 {
			t.Fatalf("after %d more entries the map holds %d, more than two generations of 3", i+1, m.Len())
		}
	}
}

// With a weight, each generation holds up to the limit in weight, and
// Weight is what the entries weigh, through replacements, moves and
// deletions.
func TestWeight(t *testing.T) {
	m := New[int, string](10, func(v string) int { return len(v) })
	want := map[int]string{}
	check := func(when string) {
		t.Helper()
		total := 0
		for k := range want {
			if v, ok := m.cur[k]; ok {
				total += len(v)
			} else if v, ok := m.prev[k]; ok {
				total += len(v)
			} else {
				delete(want, k)
			}
		}
		if m.Weight() != total {
			t.Fatalf("%s: Weight is %d, the entries weigh %d", when, m.Weight(), total)
		}
		if total > 20 {
			t.Fatalf("%s: the map holds %d, more than two generations of 10", when, total)
		}
	}
	for i := range 20 {
		v := fmt.Sprint("v", i) // 2 or 3 long
		m.Put(i%7, v)
		want[i%7] = v
		check(fmt.Sprintf("put %d", i))
	}
	m.Get(0)
	check("after a read")
	m.Delete(1)
	delete(want, 1)
	check("after a delete")
	if _, ok := m.Get(1); ok {
		t.Error("1 is there after its deletion")
	}
}
