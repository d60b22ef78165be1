package reqlite

import "syscall"

// sysProcAttr puts the server in its own process group (so Stop can signal
// everything it started) and has the kernel kill it if this process dies
// without calling Stop, so a crashed test leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
