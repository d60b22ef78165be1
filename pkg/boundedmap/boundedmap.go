// Package boundedmap is a map bounded in size without tracking the use of
// each entry: it keeps two generations. New entries go into the current
// one; when it is full it becomes the previous one and the older is
// dropped. An entry read from the previous generation moves to the current
// one, so what is still used survives a turnover and what is not ages out,
// without a sweep. The server's caches of derived values (list item JSON,
// field sets) use it to stay bounded while their objects come and go.
//
// A Map is not safe for concurrent use.
package boundedmap

// Map holds at most twice its limit: the current generation up to the
// limit (one entry may cross it) and the previous one.
type Map[K comparable, V any] struct {
	limit      int
	weight     func(V) int
	cur, prev  map[K]V
	curWeight  int
	prevWeight int
}

// New returns a map whose generations each hold up to limit, counted by
// weight (nil counts each entry as 1).
func New[K comparable, V any](limit int, weight func(V) int) *Map[K, V] {
	if weight == nil {
		weight = func(V) int { return 1 }
	}
	return &Map[K, V]{limit: limit, weight: weight, cur: map[K]V{}}
}

// Get returns k's value, moving it to the current generation if it was in
// the previous one.
func (m *Map[K, V]) Get(k K) (V, bool) {
	if v, ok := m.cur[k]; ok {
		return v, true
	}
	v, ok := m.prev[k]
	if ok {
		m.Put(k, v)
	}
	return v, ok
}

// Put sets k's value in the current generation, turning generations over
// first when the value would not fit. A value k had is dropped.
func (m *Map[K, V]) Put(k K, v V) {
	m.Delete(k)
	w := m.weight(v)
	if len(m.cur) > 0 && m.curWeight+w > m.limit {
		m.prev, m.prevWeight = m.cur, m.curWeight
		m.cur, m.curWeight = make(map[K]V, len(m.cur)), 0
	}
	m.cur[k] = v
	m.curWeight += w
}

// Delete removes k from both generations.
func (m *Map[K, V]) Delete(k K) {
	if v, ok := m.cur[k]; ok {
		m.curWeight -= m.weight(v)
		delete(m.cur, k)
	}
	if v, ok := m.prev[k]; ok {
		m.prevWeight -= m.weight(v)
		delete(m.prev, k)
	}
}

// Len is the number of entries in both generations.
func (m *Map[K, V]) Len() int { return len(m.cur) + len(m.prev) }

// Weight is the weight of all entries in both generations.
func (m *Map[K, V]) Weight() int { return m.curWeight + m.prevWeight }
