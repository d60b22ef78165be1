package rethinkdb

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Options)
		want   []string // substrings, one per expected error
	}{
		{"address", func(o *Options) { o.Address = "127.0.0.1:28015" }, nil},
		{"service", func(o *Options) { o.ServiceName = "rethinkdb" }, nil},
		{"neither", func(o *Options) {}, []string{"--rethinkdb-address or --rethinkdb-service is required"}},
		{"bad address", func(o *Options) { o.Address = "localhost" }, []string{"--rethinkdb-address"}},
		{"bad port", func(o *Options) { o.Address = "localhost:99999" }, []string{"--rethinkdb-address"}},
		{"bad database", func(o *Options) { o.Address = "a:1"; o.Database = "a.b" }, []string{"--rethinkdb-database"}},
		{"missing password file", func(o *Options) {
			o.Address = "a:1"
			o.PasswordFile = filepath.Join(t.TempDir(), "nope")
		}, []string{"--rethinkdb-password-file"}},
		{"bad numbers", func(o *Options) {
			o.Address = "a:1"
			o.DialTimeout, o.Timeout, o.MaxOpen, o.ServicePort = 0, -1, 0, 0
		}, []string{"--rethinkdb-service-port", "--rethinkdb-dial-timeout", "--rethinkdb-timeout", "--rethinkdb-max-connections"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOptions()
			tt.modify(o)
			errs := o.Validate()
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate() = %v, want %d errors", errs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(errs[i].Error(), w) {
					t.Errorf("error %d = %q, want it to name %q", i, errs[i], w)
				}
			}
		})
	}
}

func TestAddFlags(t *testing.T) {
	o := NewOptions()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	o.AddFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Usage == "" {
			t.Errorf("flag --%s has no usage text", f.Name)
		}
	})
	if err := fs.Parse([]string{"--rethinkdb-address=db:28015", "--rethinkdb-database=sys", "--rethinkdb-timeout=2s"}); err != nil {
		t.Fatal(err)
	}
	if o.Address != "db:28015" || o.Database != "sys" || o.Timeout.String() != "2s" {
		t.Fatalf("flags not applied: %+v", o)
	}
}
