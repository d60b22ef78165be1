package logging

import (
	"errors"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// observed is a zapr logger at verbosity 1 that records its lines, with the
// caller as production logging reports it.
func observed() (logr.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.Level(-1))
	return zapr.NewLogger(zap.New(core, zap.AddCaller())), logs
}

// A deferred logger writes the same lines, names, values and caller as the
// logger it wraps.
func TestDeferredWritesWhatTheWrappedLoggerWrites(t *testing.T) {
	direct, directLogs := observed()
	wrapped, deferredLogs := observed()
	lazy := Defer(wrapped)

	write := func(l logr.Logger) (line int) {
		l = l.WithName("controller").WithValues("namespace", "ns", "name", "db-1").WithName("database").WithValues("reconcileID", "42")
		_, _, line, _ = runtime.Caller(0)
		l.Info("Reconciled", "tables", 3)
		l.V(1).Info("Detail")
		l.Error(errors.New("boom"), "Failed", "retry", true)
		l.V(2).Info("Not written at verbosity 1")
		return line + 1
	}
	write(direct)
	line := write(lazy)

	got, want := deferredLogs.AllUntimed(), directLogs.AllUntimed()
	if len(got) != 3 || len(got) != len(want) {
		t.Fatalf("deferred logger wrote %d lines, the wrapped logger %d; want 3 each", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.LoggerName != w.LoggerName || g.Message != w.Message || g.Level != w.Level {
			t.Errorf("line %d = %s %q %q, want %s %q %q", i, g.Level, g.LoggerName, g.Message, w.Level, w.LoggerName, w.Message)
		}
		if gm, wm := g.ContextMap(), w.ContextMap(); len(gm) != len(wm) {
			t.Errorf("line %d has values %v, want %v", i, gm, wm)
		} else {
			for k, v := range wm {
				if gm[k] != v {
					t.Errorf("line %d: %s = %v, want %v", i, k, gm[k], v)
				}
			}
		}
	}
	if c := got[0].Caller; !c.Defined || filepath.Base(c.File) != "deferred_test.go" || c.Line != line {
		t.Errorf("caller = %s, want deferred_test.go:%d (the line that logged)", c.TrimmedPath(), line)
	}
	if got[0].LoggerName != "controller.database" || got[0].ContextMap()["reconcileID"] != "42" {
		t.Errorf("first line = %q %v, want logger controller.database with reconcileID 42", got[0].LoggerName, got[0].ContextMap())
	}
}

// Loggers derived from one parent keep their own values.
func TestDeferredSiblingsDoNotShareValues(t *testing.T) {
	l, logs := observed()
	parent := Defer(l).WithValues("a", 1)
	for range 3 { // grow the parent's additions so that appending could alias
		parent = parent.WithValues("pad", 0)
	}
	first := parent.WithValues("request", "first")
	second := parent.WithValues("request", "second")
	first.Info("one")
	second.Info("two")
	lines := logs.AllUntimed()
	if len(lines) != 2 {
		t.Fatalf("wrote %d lines, want 2", len(lines))
	}
	if got := lines[0].ContextMap()["request"]; got != "first" {
		t.Errorf("first logger's request = %v, want first", got)
	}
	if got := lines[1].ContextMap()["request"]; got != "second" {
		t.Errorf("second logger's request = %v, want second", got)
	}
}

// countingSink counts the calls that would make zap encode values.
type countingSink struct {
	logr.LogSink
	withs *int
}

func (c countingSink) WithValues(kv ...any) logr.LogSink {
	*c.withs++
	return countingSink{c.LogSink.WithValues(kv...), c.withs}
}

func (c countingSink) WithName(n string) logr.LogSink {
	*c.withs++
	return countingSink{c.LogSink.WithName(n), c.withs}
}

// Adding names and values costs the wrapped sink nothing until a line is
// written, and nothing at all for lines below the verbosity.
func TestDeferredPassesValuesOnOnlyForWrittenLines(t *testing.T) {
	l, logs := observed()
	withs := 0
	lazy := Defer(logr.New(countingSink{l.GetSink(), &withs}))
	for i := range 100 {
		lazy.WithValues("i", i).WithName("n").V(2).Info("below the verbosity")
	}
	if withs != 0 || logs.Len() != 0 {
		t.Fatalf("100 unwritten lines made %d WithValues/WithName calls and %d lines, want 0", withs, logs.Len())
	}
	lazy.WithValues("i", 1).WithName("n").Info("written")
	if withs != 2 || logs.Len() != 1 {
		t.Fatalf("one written line made %d calls and %d lines, want 2 and 1", withs, logs.Len())
	}
}
