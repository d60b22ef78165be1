// Package logging sets up the process logger: zap behind logr (zapr), with
// klog (used by k8s.io libraries) and controller-runtime writing to the same
// logger, so every line has one format.
package logging

import (
	"fmt"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/spf13/pflag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Options choose the log format and verbosity.
type Options struct {
	// Format is "json" (for log collectors) or "text" (for people).
	Format string
	// Verbosity is the highest logr V-level printed (0 = info only).
	Verbosity int
}

// NewOptions returns the defaults: text, verbosity 0.
func NewOptions() *Options { return &Options{Format: "text"} }

// AddFlags adds --log-format and --v.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Format, "log-format", o.Format, `Log format: "text" for people, "json" for log collectors.`)
	fs.IntVarP(&o.Verbosity, "v", "v", o.Verbosity, "Log verbosity: 0 logs info and errors, 1 adds detail for debugging; higher values add the Kubernetes libraries' own debug output.")
}

// Validate names the flag that is wrong.
func (o *Options) Validate() []error {
	var errs []error
	if o.Format != "text" && o.Format != "json" {
		errs = append(errs, fmt.Errorf(`--log-format must be "text" or "json", got %q`, o.Format))
	}
	if o.Verbosity < 0 {
		errs = append(errs, fmt.Errorf("--v must not be negative, got %d", o.Verbosity))
	}
	return errs
}

// Setup builds the logger and installs it for klog and controller-runtime.
func (o *Options) Setup() (logr.Logger, error) {
	cfg := zap.NewProductionConfig()
	if o.Format == "text" {
		cfg.Encoding = "console"
		cfg.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	}
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil
	cfg.DisableStacktrace = true
	// zap levels are negative logr V-levels.
	cfg.Level = zap.NewAtomicLevelAt(zapcore.Level(-o.Verbosity))
	z, err := cfg.Build()
	if err != nil {
		return logr.Discard(), fmt.Errorf("cannot set up logging: %w", err)
	}
	log := Defer(zapr.NewLogger(z))
	klog.SetLogger(log)
	ctrllog.SetLogger(log)
	return log, nil
}
