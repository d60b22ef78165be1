package server

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"

	"github.com/guildnet/guildnet/portal/store"
)

// TokenFileName is the token's file in the state dir.
const TokenFileName = "portal-token"

// tokenBytes is the token's entropy: 256 bits.
const tokenBytes = 32

// tokenPattern is what a token file may hold: base64url, long enough to be
// a real secret. Anything else is refused rather than trusted.
var tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{32,256}$`)

// LoadOrCreateToken returns the device's portal token from path, creating
// it (256 random bits, mode 0600, written atomically) when the file does
// not exist. The token stays the same across restarts, so sessions and
// bookmarked URLs survive them; deleting the file and restarting the portal
// logs every browser out.
func LoadOrCreateToken(path string) (string, error) {
	if tok, err := readToken(path); !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("creating the portal token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("creating the portal token: %w", err)
	}
	// Write it complete under a temporary name, then link it into place:
	// link fails when the file exists, so two portals starting at once
	// agree on the first one's token instead of overwriting each other.
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmp := fmt.Sprintf("%s.new-%x", path, suffix)
	if err := store.WriteFile(tmp, []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("creating the portal token: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readToken(path)
		}
		// No hard links on this file system (some network or FAT ones): a
		// rename still never leaves half a file; only "first one wins"
		// between two starting portals is lost.
		if err := os.Rename(tmp, path); err != nil {
			return "", fmt.Errorf("creating the portal token %s: %w", path, err)
		}
	}
	return tok, nil
}

func readToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		return "", fmt.Errorf("reading the portal token: %w", err)
	}
	tok := string(bytes.TrimSpace(data))
	if !tokenPattern.MatchString(tok) {
		return "", fmt.Errorf("the portal token file %s does not hold a token; delete it and start the portal again to make a new one", path)
	}
	// Windows has no such mode bits; its ACLs are the user profile's.
	if fi, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("the portal token file %s is readable by other users (mode %v); run chmod 600 %s, or delete it and start the portal again for a new token", path, fi.Mode().Perm(), path)
	}
	return tok, nil
}
