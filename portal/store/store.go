package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// EnvStateDir names the environment variable that moves the state dir; a
// --state-dir flag, where a command has one, wins over it.
const EnvStateDir = "GUILDNET_STATE_DIR"

const (
	clustersDirName  = "clusters"
	kubeconfigFile   = "kubeconfig"
	clusterFileName  = "cluster.json"
	settingsFileName = "settings.json"
	stagingPrefix    = ".staging-"
	trashPrefix      = ".trash-"
	clusterVersion   = 1
)

// staleAfter is how old a hidden leftover must be before Open removes it. No
// Add or settings write takes this long, so a leftover this old belongs to an
// operation that crashed rather than to one running in another process.
const staleAfter = time.Hour

// ErrNotFound is matched (errors.Is) by the error for an id that names no
// joined cluster.
var ErrNotFound = errors.New("cluster not found")

// NotFoundError says which id was not found.
type NotFoundError struct{ ID string }

func (e *NotFoundError) Error() string        { return fmt.Sprintf("no joined cluster has id %q", e.ID) }
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// Cluster describes a joined cluster. Its credentials are read separately
// with Store.Kubeconfig so that listing never touches them.
type Cluster struct {
	// ID names the cluster in URLs and commands; see the package doc.
	ID string `json:"id"`
	// Name is the display name it was joined under.
	Name string `json:"name"`
	// Server is the kube-apiserver URL its kubeconfig talks to.
	Server string `json:"server"`
	// AllowExecPlugins records that the person allowed this kubeconfig's
	// exec or auth-provider credential plugin when joining; whoever builds a
	// client from the kubeconfig must refuse plugins when it is false.
	AllowExecPlugins bool `json:"allowExecPlugins,omitempty"`
	// AddedAt is when the cluster was joined.
	AddedAt time.Time `json:"addedAt"`
}

// NewCluster is what Add stores.
type NewCluster struct {
	// Name is the display name; the id is derived from it.
	Name string
	// Server is the kube-apiserver URL, kept for listing without parsing
	// the kubeconfig.
	Server string
	// Kubeconfig must be self-contained (no references to other files):
	// the store keeps bytes, not the files they point at.
	Kubeconfig []byte
	// AllowExecPlugins: see Cluster.
	AllowExecPlugins bool
	// Settings are the initial settings; empty fields mean defaults.
	Settings Settings
}

// clusterFile is the on-disk form of cluster.json. The id is not in it: the
// folder name is the id, so the two cannot disagree.
type clusterFile struct {
	Version          int       `json:"version"`
	Name             string    `json:"name"`
	Server           string    `json:"server"`
	AllowExecPlugins bool      `json:"allowExecPlugins,omitempty"`
	AddedAt          time.Time `json:"addedAt"`
}

// Store is a state dir. Its methods are safe for concurrent use, also by
// several processes sharing the dir: every change is a single rename.
type Store struct {
	dir string
}

// DefaultDir is the state dir when no flag says otherwise: $GUILDNET_STATE_DIR
// if set, else ~/.guildnet.
func DefaultDir() (string, error) {
	if dir := os.Getenv(EnvStateDir); dir != "" {
		return dir, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the state dir: %w; set %s or pass --state-dir", err, EnvStateDir)
	}
	return filepath.Join(home, ".guildnet"), nil
}

// Open opens the state dir at dir, creating it (0700) if needed, and sweeps
// stale leftovers of interrupted operations.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("opening the state dir: no folder given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the state dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, dirPerm); err != nil {
		return nil, fmt.Errorf("creating the state dir: %w", err)
	}
	s := &Store{dir: abs}
	clusters := s.clustersDir()
	if err := os.Mkdir(clusters, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("creating the state dir: %w", err)
	}
	// The state dir itself may be a folder the person chose and shares; the
	// clusters folder is ours and holds credentials, so it is always 0700.
	if err := os.Chmod(clusters, dirPerm); err != nil {
		return nil, fmt.Errorf("securing %s: %w", clusters, err)
	}
	s.sweep()
	return s, nil
}

// Dir is the state dir's absolute path.
func (s *Store) Dir() string { return s.dir }

func (s *Store) clustersDir() string { return filepath.Join(s.dir, clustersDirName) }

func (s *Store) clusterPath(id, file string) string {
	return filepath.Join(s.clustersDir(), id, file)
}

// Add stores a new cluster under a fresh id and returns it. Either the whole
// cluster is stored or, on error or crash, nothing visible is.
func (s *Store) Add(nc NewCluster) (_ Cluster, err error) {
	if strings.TrimSpace(nc.Name) == "" {
		return Cluster{}, errors.New("adding a cluster: it needs a name")
	}
	if len(nc.Kubeconfig) == 0 {
		return Cluster{}, errors.New("adding a cluster: its kubeconfig is empty")
	}
	if err := nc.Settings.Validate(); err != nil {
		return Cluster{}, fmt.Errorf("adding a cluster: %w", err)
	}
	cf := clusterFile{
		Version:          clusterVersion,
		Name:             nc.Name,
		Server:           nc.Server,
		AllowExecPlugins: nc.AllowExecPlugins,
		AddedAt:          time.Now().UTC().Truncate(time.Second),
	}
	meta, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return Cluster{}, fmt.Errorf("adding a cluster: %w", err)
	}
	settings, err := json.MarshalIndent(nc.Settings, "", "  ")
	if err != nil {
		return Cluster{}, fmt.Errorf("adding a cluster: %w", err)
	}

	// Build the cluster where no reader looks, then publish it with one
	// rename.
	staging, err := os.MkdirTemp(s.clustersDir(), stagingPrefix+"*")
	if err != nil {
		return Cluster{}, fmt.Errorf("adding a cluster: %w", err)
	}
	published := false
	defer func() {
		if !published {
			_ = os.RemoveAll(staging)
		}
	}()
	if err := os.Chmod(staging, dirPerm); err != nil {
		return Cluster{}, fmt.Errorf("adding a cluster: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{kubeconfigFile, nc.Kubeconfig},
		{settingsFileName, settings},
		// cluster.json last: a staging folder that somehow got published
		// without it would still not be listed.
		{clusterFileName, meta},
	} {
		if err := writeFileAtomic(filepath.Join(staging, f.name), f.data); err != nil {
			return Cluster{}, fmt.Errorf("adding a cluster: %w", err)
		}
	}

	base := idBase(nc.Name)
	for n := 1; n <= maxIDSuffix; n++ {
		id := idCandidate(base, n)
		target := filepath.Join(s.clustersDir(), id)
		err := rename(staging, target)
		if err == nil {
			published = true
			if err := syncDir(s.clustersDir()); err != nil {
				// The cluster is in place; only its durability across a
				// power loss is in doubt. Say so rather than pretend
				// nothing happened, since it is now listed.
				return Cluster{}, fmt.Errorf("added cluster %s but could not flush the state dir: %w", id, err)
			}
			return cf.cluster(id), nil
		}
		// rename(2) refuses to replace a non-empty folder (EEXIST or
		// ENOTEMPTY, both fs.ErrExist): another cluster, possibly added
		// concurrently by another process, owns this id.
		if errors.Is(err, fs.ErrExist) || exists(target) {
			continue
		}
		return Cluster{}, fmt.Errorf("adding a cluster: %w", err)
	}
	return Cluster{}, fmt.Errorf("adding a cluster: ids %s to %s are all taken; remove some clusters", base, idCandidate(base, maxIDSuffix))
}

func (cf clusterFile) cluster(id string) Cluster {
	return Cluster{ID: id, Name: cf.Name, Server: cf.Server, AllowExecPlugins: cf.AllowExecPlugins, AddedAt: cf.AddedAt}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Get returns the cluster with the given id.
func (s *Store) Get(id string) (Cluster, error) {
	if !ValidID(id) {
		return Cluster{}, &NotFoundError{ID: id}
	}
	return s.read(id)
}

func (s *Store) read(id string) (Cluster, error) {
	path := s.clusterPath(id, clusterFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Cluster{}, &NotFoundError{ID: id}
	}
	if err != nil {
		return Cluster{}, fmt.Errorf("reading cluster %s: %w", id, err)
	}
	var cf clusterFile
	if err := json.Unmarshal(data, &cf); err != nil {
		return Cluster{}, fmt.Errorf("reading cluster %s: %s is damaged (%v); remove the cluster and join it again", id, path, err)
	}
	if cf.Version != clusterVersion {
		return Cluster{}, fmt.Errorf("reading cluster %s: %s has format version %d, this guildnet-portal knows %d; use a newer guildnet-portal", id, path, cf.Version, clusterVersion)
	}
	return cf.cluster(id), nil
}

// List returns every joined cluster, sorted by id.
func (s *Store) List() ([]Cluster, error) {
	entries, err := os.ReadDir(s.clustersDir())
	if err != nil {
		return nil, fmt.Errorf("listing clusters: %w", err)
	}
	var out []Cluster
	for _, e := range entries {
		// Hidden entries are staging and trash folders; anything else that
		// is not id-shaped was not made by us.
		if !e.IsDir() || !ValidID(e.Name()) {
			continue
		}
		c, err := s.read(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // a folder without cluster.json is not a cluster
		}
		if err != nil {
			return nil, fmt.Errorf("listing clusters: %w", err)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Cluster) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Kubeconfig returns the stored kubeconfig of a cluster. It is a secret.
func (s *Store) Kubeconfig(id string) ([]byte, error) {
	if _, err := s.Get(id); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.clusterPath(id, kubeconfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &NotFoundError{ID: id} // removed since Get
	}
	if err != nil {
		return nil, fmt.Errorf("reading the kubeconfig of cluster %s: %w", id, err)
	}
	return data, nil
}

// Remove forgets a cluster and deletes its credentials.
func (s *Store) Remove(id string) error {
	if !ValidID(id) {
		return &NotFoundError{ID: id}
	}
	var suffix [6]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return fmt.Errorf("removing cluster %s: %w", id, err)
	}
	// Renaming first makes removal atomic: the cluster disappears at once,
	// and a crash during RemoveAll only leaves hidden trash that Open sweeps.
	trash := filepath.Join(s.clustersDir(), trashPrefix+id+"-"+hex.EncodeToString(suffix[:]))
	if err := rename(filepath.Join(s.clustersDir(), id), trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &NotFoundError{ID: id}
		}
		return fmt.Errorf("removing cluster %s: %w", id, err)
	}
	if err := syncDir(s.clustersDir()); err != nil {
		return fmt.Errorf("removing cluster %s: flushing the state dir: %w", id, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("cluster %s is removed, but deleting its files in %s failed: %w", id, trash, err)
	}
	return nil
}

// Settings returns a cluster's settings with defaults filled in.
func (s *Store) Settings(id string) (Settings, error) {
	if _, err := s.Get(id); err != nil {
		return Settings{}, err
	}
	path := s.clusterPath(id, settingsFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Settings{}.withDefaults(), nil
	}
	if err != nil {
		return Settings{}, fmt.Errorf("reading settings of cluster %s: %w", id, err)
	}
	var st Settings
	if err := json.Unmarshal(data, &st); err != nil {
		return Settings{}, fmt.Errorf("reading settings of cluster %s: %s is damaged (%v); set the settings again to replace it", id, path, err)
	}
	return st.withDefaults(), nil
}

// SetSettings replaces a cluster's settings after validating them.
func (s *Store) SetSettings(id string, st Settings) error {
	if err := st.Validate(); err != nil {
		return err
	}
	if _, err := s.Get(id); err != nil {
		return err
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("saving settings of cluster %s: %w", id, err)
	}
	if err := writeFileAtomic(s.clusterPath(id, settingsFileName), data); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &NotFoundError{ID: id} // removed concurrently
		}
		return fmt.Errorf("saving settings of cluster %s: %w", id, err)
	}
	return nil
}

// sweep removes hidden leftovers of interrupted operations. It is best
// effort: a leftover that cannot be removed is harmless, because readers
// skip hidden names.
func (s *Store) sweep() {
	stale := func(path string) bool {
		fi, err := os.Lstat(path)
		return err == nil && time.Now().Sub(fi.ModTime()) > staleAfter
	}
	entries, err := os.ReadDir(s.clustersDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		path := filepath.Join(s.clustersDir(), e.Name())
		switch {
		case strings.HasPrefix(e.Name(), trashPrefix):
			// Trash is invisible already; a concurrent Remove deleting the
			// same files does no harm.
			_ = os.RemoveAll(path)
		case strings.HasPrefix(e.Name(), stagingPrefix):
			// A fresh one may be another process's Add in progress.
			if stale(path) {
				_ = os.RemoveAll(path)
			}
		case e.IsDir() && ValidID(e.Name()):
			files, err := os.ReadDir(path)
			if err != nil {
				continue
			}
			for _, f := range files {
				fp := filepath.Join(path, f.Name())
				if strings.HasPrefix(f.Name(), ".") && strings.Contains(f.Name(), tmpInfix) && stale(fp) {
					_ = os.Remove(fp)
				}
			}
		}
	}
}
