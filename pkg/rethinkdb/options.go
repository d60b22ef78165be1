package rethinkdb

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Defaults of Options.
const (
	DefaultServicePort = 28015
	DefaultDatabase    = "guildnet_system"
	DefaultUsername    = "admin"
	DefaultDialTimeout = 3 * time.Second
	DefaultTimeout     = 10 * time.Second
	DefaultMaxOpen     = 8
	// keepAlivePeriod is the TCP keep-alive idle time and probe interval: a
	// peer that vanished without closing the connection is noticed within a
	// few minutes instead of the kernel's default two hours.
	keepAlivePeriod = 15 * time.Second
)

// Options are the settings of the RethinkDB connection (the --rethinkdb-* flags).
type Options struct {
	// Address is host:port of a RethinkDB server. Takes precedence over ServiceName.
	Address string
	// ServiceName and ServiceNamespace name a Kubernetes Service in front of
	// RethinkDB; its address is discovered at Connect. An empty namespace means
	// the namespace this process runs in (from its service account), else "default".
	ServiceName, ServiceNamespace string
	// ServicePort is the Service port of the driver protocol (matched by port
	// number, or a port named "client" or "driver").
	ServicePort int
	// Database is the system database that holds the apiserver's own objects.
	Database string
	// Username and PasswordFile are the credentials; the file's content is the
	// password (a trailing newline is ignored). No file: empty password.
	Username     string
	PasswordFile string
	// DialTimeout bounds opening a connection; Timeout bounds a query that has
	// no context of its own.
	DialTimeout, Timeout time.Duration
	// MaxOpen is the size of the connection pool of Client.Session.
	MaxOpen int
}

// NewOptions returns Options with the defaults.
func NewOptions() *Options {
	return &Options{
		ServicePort: DefaultServicePort,
		Database:    DefaultDatabase,
		Username:    DefaultUsername,
		DialTimeout: DefaultDialTimeout,
		Timeout:     DefaultTimeout,
		MaxOpen:     DefaultMaxOpen,
	}
}

// AddFlags adds the --rethinkdb-* flags to fs.
func (o *Options) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Address, "rethinkdb-address", o.Address,
		"host:port of the RethinkDB server that stores guildnet.io objects. Takes precedence over --rethinkdb-service.")
	fs.StringVar(&o.ServiceName, "rethinkdb-service", o.ServiceName,
		"Name of a Kubernetes Service in front of RethinkDB; its address is discovered at start: LoadBalancer ingress, then NodePort on a node address, then ClusterIP. Used when --rethinkdb-address is empty.")
	fs.StringVar(&o.ServiceNamespace, "rethinkdb-service-namespace", o.ServiceNamespace,
		"Namespace of --rethinkdb-service. Empty: the namespace this server runs in, else \"default\".")
	fs.IntVar(&o.ServicePort, "rethinkdb-service-port", o.ServicePort,
		"Port of --rethinkdb-service that speaks RethinkDB's driver protocol (a port named \"client\" or \"driver\" is also accepted).")
	fs.StringVar(&o.Database, "rethinkdb-database", o.Database,
		"RethinkDB database that holds the apiserver's own objects (created if missing).")
	fs.StringVar(&o.Username, "rethinkdb-username", o.Username,
		"RethinkDB user to connect as.")
	fs.StringVar(&o.PasswordFile, "rethinkdb-password-file", o.PasswordFile,
		"File whose content is the RethinkDB user's password (a trailing newline is ignored). Empty: no password.")
	fs.DurationVar(&o.DialTimeout, "rethinkdb-dial-timeout", o.DialTimeout,
		"Maximum time to open a connection to RethinkDB, including the first one at start.")
	fs.DurationVar(&o.Timeout, "rethinkdb-timeout", o.Timeout,
		"Maximum time of a RethinkDB query that has no deadline of its own.")
	fs.IntVar(&o.MaxOpen, "rethinkdb-max-connections", o.MaxOpen,
		"Maximum number of pooled connections to RethinkDB (changefeeds use their own).")
}

// dbNameRE is RethinkDB's rule for database and table names.
var dbNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Validate checks the options; every error names its flag.
func (o *Options) Validate() []error {
	var errs []error
	switch {
	case o.Address != "":
		host, port, err := net.SplitHostPort(o.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("--rethinkdb-address %q: want host:port: %v", o.Address, err))
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			errs = append(errs, fmt.Errorf("--rethinkdb-address %q: want host:port with a port from 1 to 65535", o.Address))
		}
	case o.ServiceName != "":
		// Resolved at Connect.
	default:
		errs = append(errs, fmt.Errorf("--rethinkdb-address or --rethinkdb-service is required"))
	}
	if o.ServicePort < 1 || o.ServicePort > 65535 {
		errs = append(errs, fmt.Errorf("--rethinkdb-service-port %d: want a port from 1 to 65535", o.ServicePort))
	}
	if !dbNameRE.MatchString(o.Database) {
		errs = append(errs, fmt.Errorf("--rethinkdb-database %q: want letters, digits, '_' or '-'", o.Database))
	}
	if strings.TrimSpace(o.Username) == "" {
		errs = append(errs, fmt.Errorf("--rethinkdb-username must not be empty"))
	}
	if o.PasswordFile != "" {
		if _, err := os.Stat(o.PasswordFile); err != nil {
			errs = append(errs, fmt.Errorf("--rethinkdb-password-file: %v", err))
		}
	}
	if o.DialTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--rethinkdb-dial-timeout %s: must be positive", o.DialTimeout))
	}
	if o.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--rethinkdb-timeout %s: must be positive", o.Timeout))
	}
	if o.MaxOpen < 1 {
		errs = append(errs, fmt.Errorf("--rethinkdb-max-connections %d: must be at least 1", o.MaxOpen))
	}
	return errs
}

// readPassword returns the password from PasswordFile ("" without a file).
func (o *Options) readPassword() (string, error) {
	if o.PasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(o.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("read --rethinkdb-password-file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
