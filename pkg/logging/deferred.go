package logging

import (
	"github.com/go-logr/logr"
)

// deferred is a logr.LogSink that keeps what WithName and WithValues add and
// hands it to the sink it wraps only when a line is written.
//
// zap encodes a logger's values when they are added, into a buffer of their
// own. controller-runtime adds four values to a new logger for every
// reconcile, and the reconcilers resync every Database and Table each
// minute: with a thousand of each that was most of the garbage an idle
// guildnet-apiserver made, for lines that are almost never written.
type deferred struct {
	base logr.LogSink
	// added holds the names and values in the order they were added; a
	// logger derived from this one copies it before appending.
	added []addition
}

// addition is one WithName or WithValues call.
type addition struct {
	isName bool
	name   string
	values []any
}

// Defer returns a logger that writes to l's sink, passing names and values
// on when a line is written.
func Defer(l logr.Logger) logr.Logger {
	// Lines pass through one frame more here, which l's sink must skip to
	// report the caller's file and line.
	return logr.New(&deferred{base: l.WithCallDepth(1).GetSink()})
}

var (
	_ logr.LogSink          = &deferred{}
	_ logr.CallDepthLogSink = &deferred{}
)

// Init does nothing: the wrapped sink was set up by its own logger.
func (d *deferred) Init(logr.RuntimeInfo) {}

func (d *deferred) Enabled(level int) bool { return d.base.Enabled(level) }

func (d *deferred) Info(level int, msg string, keysAndValues ...any) {
	d.sink().Info(level, msg, keysAndValues...)
}

func (d *deferred) Error(err error, msg string, keysAndValues ...any) {
	d.sink().Error(err, msg, keysAndValues...)
}

func (d *deferred) WithValues(keysAndValues ...any) logr.LogSink {
	return d.with(addition{values: keysAndValues})
}

func (d *deferred) WithName(name string) logr.LogSink {
	return d.with(addition{isName: true, name: name})
}

func (d *deferred) WithCallDepth(depth int) logr.LogSink {
	base := d.base
	if cd, ok := base.(logr.CallDepthLogSink); ok {
		base = cd.WithCallDepth(depth)
	}
	return &deferred{base: base, added: d.added}
}

func (d *deferred) with(a addition) logr.LogSink {
	// The three-index slice makes append copy: siblings derived from one
	// parent never write into each other's additions.
	return &deferred{base: d.base, added: append(d.added[:len(d.added):len(d.added)], a)}
}

// sink is the wrapped sink with everything added so far.
func (d *deferred) sink() logr.LogSink {
	s := d.base
	for _, a := range d.added {
		if a.isName {
			s = s.WithName(a.name)
		} else {
			s = s.WithValues(a.values...)
		}
	}
	return s
}
