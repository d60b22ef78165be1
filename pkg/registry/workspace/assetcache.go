package workspace

import (
	"bytes"
	"container/list"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// AssetCache keeps the responses workspaces mark as shareable for a long
// time (Cache-Control "public" with a max-age of a day or more), shared by
// every workspace of the same image. A browser opening code-server fetches
// ~22 MB of the release's scripts and styles (~5.5 MB compressed; paths
// carry the release's commit, Cache-Control "public, max-age=31536000"),
// and code-server compresses them again for every page load: ~1 s of CPU
// that competes with the browser on a small machine. With the cache, the second and later
// workspaces of an image (and the same one after a resume) get them from
// memory.
//
// Keyed by image, path and query, and Accept-Encoding. That trusts what
// "public, max-age" promises: the same URL of the same image serves the
// same bytes for that long, which holds for content-addressed assets, the
// only kind that long-lived caching headers are meant for. A response is
// stored only when it is complete, 200, without Set-Cookie, varies by
// nothing but Accept-Encoding, and fits the entry bound. Requests that ask
// for a range, or to bypass caches (no-cache), go to the workspace.
//
// Hits still pass through everything before the cache: kube-apiserver's
// RBAC check of workspaces/proxy on this workspace, and the workspace being
// up. What a hit skips is the workspace's own login check for that asset,
// which is fine for a response its server declared public.
type AssetCache struct {
	maxBytes, maxEntry int64
	now                func() time.Time

	mu      sync.Mutex
	size    int64
	lru     *list.List // of *asset, most recently used first
	entries map[assetKey]*list.Element
}

type assetKey struct{ image, path, acceptEncoding string }

type asset struct {
	key             assetKey
	header          http.Header
	body            []byte
	stored, expires time.Time
}

// minAssetMaxAge is the shortest max-age worth keeping: shorter ones are
// for content that changes, not for a release's assets.
const minAssetMaxAge = 24 * time.Hour

// NewAssetCache returns a cache of at most maxBytes of bodies; an entry
// may take up to a quarter of it. maxBytes 0 returns nil, which caches
// nothing.
func NewAssetCache(maxBytes int64) *AssetCache {
	if maxBytes <= 0 {
		return nil
	}
	return &AssetCache{maxBytes: maxBytes, maxEntry: maxBytes / 4, now: time.Now,
		lru: list.New(), entries: map[assetKey]*list.Element{}}
}

// keyFor is the cache key of req to a workspace of image, and whether req
// may be answered from the cache at all.
func (c *AssetCache) keyFor(image string, req *http.Request, backendPath string) (assetKey, bool) {
	if c == nil || req.Method != http.MethodGet || req.Header.Get("Range") != "" ||
		strings.Contains(req.Header.Get("Cache-Control"), "no-cache") || strings.Contains(req.Header.Get("Pragma"), "no-cache") {
		return assetKey{}, false
	}
	p := backendPath
	if req.URL.RawQuery != "" {
		p += "?" + req.URL.RawQuery
	}
	return assetKey{image: image, path: p, acceptEncoding: req.Header.Get("Accept-Encoding")}, true
}

// serve writes the cached response of key, if there is a fresh one.
func (c *AssetCache) serve(w http.ResponseWriter, key assetKey) bool {
	c.mu.Lock()
	el, ok := c.entries[key]
	var a *asset
	if ok {
		a = el.Value.(*asset)
		if !c.now().Before(a.expires) {
			c.removeLocked(el)
			a = nil
		} else {
			c.lru.MoveToFront(el)
		}
	}
	c.mu.Unlock()
	if a == nil {
		return false
	}
	h := w.Header()
	for k, v := range a.header {
		h[k] = v
	}
	h.Set("Age", strconv.Itoa(int(c.now().Sub(a.stored)/time.Second)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(a.body)
	return true
}

// maybeStore arranges for resp to be stored under key once its body has
// been read to the end, if it is storable. The body still streams to the
// client as it arrives.
func (c *AssetCache) maybeStore(key assetKey, resp *http.Response) {
	maxAge, ok := storableFor(resp)
	if !ok || resp.ContentLength > c.maxEntry {
		return
	}
	header := resp.Header.Clone()
	header.Del("Age")
	stored := c.now()
	// Compressed on the fly, most assets come without a length.
	capacity := max(resp.ContentLength, 0)
	resp.Body = &recordingBody{ReadCloser: resp.Body, limit: c.maxEntry,
		buf: bytes.NewBuffer(make([]byte, 0, capacity)),
		done: func(body []byte) {
			header.Set("Content-Length", strconv.Itoa(len(body)))
			c.store(&asset{key: key, header: header, body: body, stored: stored, expires: stored.Add(maxAge)})
		}}
}

// storableFor says whether a workspace's response may be shared, and for
// how long.
func storableFor(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusOK || len(resp.Header.Values("Set-Cookie")) > 0 {
		return 0, false
	}
	for _, v := range resp.Header.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" && !strings.EqualFold(f, "Accept-Encoding") {
				return 0, false
			}
		}
	}
	public, maxAge := false, time.Duration(-1)
	for _, v := range resp.Header.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(name) {
			case "public":
				public = true
			case "private", "no-store", "no-cache":
				return 0, false
			case "max-age", "s-maxage":
				secs, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64)
				if err != nil || secs < 0 {
					return 0, false
				}
				if d := time.Duration(min(secs, int64(365*24*3600))) * time.Second; maxAge < 0 || d < maxAge {
					maxAge = d
				}
			}
		}
	}
	if age, err := strconv.ParseInt(resp.Header.Get("Age"), 10, 64); err == nil && age > 0 {
		maxAge -= time.Duration(age) * time.Second
	}
	if !public || maxAge < minAssetMaxAge {
		return 0, false
	}
	return maxAge, true
}

func (c *AssetCache) store(a *asset) {
	size := int64(len(a.body))
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[a.key]; ok {
		c.removeLocked(el)
	}
	for c.size+size > c.maxBytes && c.lru.Len() > 0 {
		c.removeLocked(c.lru.Back())
	}
	c.entries[a.key] = c.lru.PushFront(a)
	c.size += size
}

func (c *AssetCache) removeLocked(el *list.Element) {
	a := c.lru.Remove(el).(*asset)
	delete(c.entries, a.key)
	c.size -= int64(len(a.body))
}

// recordingBody passes a response body through and keeps a copy of at
// most limit bytes; done gets the copy only if the body ended with io.EOF.
// net/http reports a body shorter than its Content-Length, or a chunked
// one cut off, as io.ErrUnexpectedEOF, so a cut-off download is never
// stored.
type recordingBody struct {
	io.ReadCloser
	limit int64
	buf   *bytes.Buffer // nil once the copy is handed over or given up
	done  func([]byte)
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.buf == nil {
		return n, err
	}
	if int64(b.buf.Len()+n) > b.limit || (err != nil && err != io.EOF) {
		b.buf = nil
		return n, err
	}
	b.buf.Write(p[:n])
	if err == io.EOF {
		b.done(b.buf.Bytes())
		b.buf = nil
	}
	return n, err
}
