package tailnet

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
)

// ReadAuthKeyFile reads a Tailscale (or headscale) auth key from path: one
// line, surrounding space ignored. The key is a credential that joins
// machines to the tailnet, so the file must not be readable by other
// users; the key is never taken on the command line, where ps shows it.
func ReadAuthKeyFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading the tailnet auth key: %w", err)
	}
	key := string(bytes.TrimSpace(data))
	if key == "" || bytes.ContainsAny([]byte(key), " \t\r\n") {
		return "", fmt.Errorf("the tailnet auth key file %s must hold one auth key on one line", path)
	}
	// Windows has no such mode bits; its ACLs are the user profile's.
	if fi, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("the tailnet auth key file %s is readable by other users (mode %v); run chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	return key, nil
}
