package store

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// These are the steps of an atomic write that a crash can interrupt. They
// are variables only so that tests can fail or kill the process in the
// middle of one and check what survives; production code never changes them.
var (
	// writeData copies data into the temp file.
	writeData = func(w io.Writer, data []byte) error {
		_, err := w.Write(data)
		return err
	}
	// rename moves a finished temp file or staging folder into place.
	rename = os.Rename
)

const (
	filePerm = 0o600
	dirPerm  = 0o700
	// tmpInfix marks temp files of writeFileAtomic; readers skip them and
	// Open sweeps stale ones.
	tmpInfix = ".tmp-"
)

// WriteFile writes data to path atomically with mode 0600: a reader (or the
// next start after a crash) sees either the previous content or all of data.
// It is what the store uses for its own files, exported for callers that
// write credentials elsewhere (an exported join file).
func WriteFile(path string, data []byte) error {
	return writeFileAtomic(path, data)
}

func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	// The temp file must be in the same folder: rename is only atomic within
	// one file system.
	f, err := os.CreateTemp(dir, "."+base+tmpInfix+"*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	// CreateTemp already uses 0600; say so explicitly because the mode is
	// the point (and a umask cannot widen it).
	if err := f.Chmod(filePerm); err != nil && runtime.GOOS != "windows" {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := writeData(f, data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// Without this fsync a crash after the rename can leave an empty or
	// partial file under the final name on some file systems.
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: flushing to disk: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// The rename itself lives in the folder's metadata; fsync the folder so
	// the new name survives a power loss.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("writing %s: flushing folder: %w", path, err)
	}
	return nil
}

// syncDir fsyncs a folder so that renames and creations in it are durable.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		// Windows cannot open folders for syncing; NTFS journals metadata.
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
