package rethinkdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	r "gopkg.in/rethinkdb/rethinkdb-go.v6"
)

// UnavailableError says that RethinkDB could not be reached or did not answer.
// Callers answer it with 503 Service Unavailable.
type UnavailableError struct {
	Address string // host:port of RethinkDB
	Err     error  // the connection-level cause
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("RethinkDB at %s is unreachable: %s", e.Address, driverMessage(e.Err))
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// IsUnavailable reports whether err is a connection-level failure (refused,
// reset, timeout, closed connection or pool, RethinkDB reporting that a table
// has no available replica) rather than an error of the query itself.
//
// The driver reports a cancelled context as a query timeout too, so a caller
// whose own context is done should report that instead.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var (
		ue    *UnavailableError
		conn  r.RQLConnectionError
		avail r.RQLAvailabilityError
		opf   r.RQLOpFailedError
		opi   r.RQLOpIndeterminateError
		nerr  net.Error
	)
	switch {
	case errors.As(err, &ue), errors.As(err, &conn), errors.As(err, &avail),
		errors.As(err, &opf), errors.As(err, &opi), errors.As(err, &nerr):
		return true
	case errors.Is(err, r.ErrConnectionClosed), errors.Is(err, r.ErrNoConnections),
		errors.Is(err, r.ErrNoConnectionsStarted), errors.Is(err, r.ErrQueryTimeout),
		errors.Is(err, r.ErrInvalidNode), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed):
		return true
	}
	// The driver's pool and cluster errors are unexported.
	msg := err.Error()
	return strings.Contains(msg, "rethinkdb: pool is closed") || strings.Contains(msg, "rethinkdb: cluster is closed")
}

// driverMessage is err's message on one line without the driver's "rethinkdb: " prefix.
func driverMessage(err error) string {
	if err == nil {
		return "unknown error"
	}
	return oneLine(strings.TrimPrefix(err.Error(), "rethinkdb: "))
}
