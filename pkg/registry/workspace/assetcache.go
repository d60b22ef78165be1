package workspace

import (
	"bytes"
	"container/list"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	// Twice as fast as compress/gzip at the default level, for ~3% more
	// bytes: the load that fills the cache waits for the compression.
	"github.com/klauspost/compress/gzip"
)

// AssetCache spares workspaces compressing the same long-lived files again
// for every page load. A browser opening code-server fetches ~22 MB of the
// release's scripts and styles (Cache-Control "public, max-age=31536000"),
// and code-server gzips them anew each time: ~1 s of CPU that competes
// with the browser on a small machine.
//
// It is a compression cache addressed by content, so no workspace can put
// bytes into another's answers. Once a path of an image has answered with
// a long-lived public response, later requests for it (from any workspace
// of that image) ask the workspace for the uncompressed body, which costs
// it nothing but a file read; the proxy hashes those bytes and sends the
// gzip it keeps for exactly that content, compressing them itself the
// first time. What the browser decodes is always what this workspace sent.
//
// "Long-lived public" means 200, Cache-Control public with a max-age of a
// day or more, no Set-Cookie, varying by nothing but Accept-Encoding. Other
// answers, requests for a range or that bypass caches (no-cache), and
// clients that do not take gzip go through as before.
type AssetCache struct {
	maxBytes, maxEntry int64
	now                func() time.Time

	mu      sync.Mutex
	size    int64
	lru     *list.List // of *gzipped, most recently used first
	byHash  map[[sha256.Size]byte]*list.Element
	hints   map[hintKey]bool // paths of an image that answered long-lived and public
	gzipped int              // bodies compressed here (tests read it)
}

type hintKey struct{ image, path string }

type gzipped struct {
	hash    [sha256.Size]byte
	gz      []byte
	expires time.Time
}

const (
	// minAssetMaxAge is the shortest max-age worth compressing once: the
	// answers of a release, not content that changes.
	minAssetMaxAge = 24 * time.Hour
	// maxHints bounds the remembered paths; past it they start over.
	maxHints = 4096
)

// NewAssetCache returns a cache of at most maxBytes of compressed bodies;
// files of up to half of it (uncompressed) are kept, larger ones are
// compressed on the way. maxBytes 0 returns nil, which caches nothing.
func NewAssetCache(maxBytes int64) *AssetCache {
	if maxBytes <= 0 {
		return nil
	}
	return &AssetCache{maxBytes: maxBytes, maxEntry: maxBytes / 2, now: time.Now,
		lru: list.New(), byHash: map[[sha256.Size]byte]*list.Element{}, hints: map[hintKey]bool{}}
}

// assetRequest is what the cache decided about one request.
type assetRequest struct {
	c   *AssetCache
	key hintKey
	// identity: the request asks the workspace for the uncompressed body,
	// to be answered with the cached gzip of it.
	identity bool
}

// classify looks at a request for backendPath of a workspace of image. A
// nil result leaves the request alone.
func (c *AssetCache) classify(image string, req *http.Request, backendPath string) *assetRequest {
	if c == nil || req.Method != http.MethodGet || req.Header.Get("Range") != "" ||
		strings.Contains(req.Header.Get("Cache-Control"), "no-cache") || strings.Contains(req.Header.Get("Pragma"), "no-cache") {
		return nil
	}
	p := backendPath
	if req.URL.RawQuery != "" {
		p += "?" + req.URL.RawQuery
	}
	a := &assetRequest{c: c, key: hintKey{image: image, path: p}}
	c.mu.Lock()
	a.identity = c.hints[a.key] && acceptsGzip(req.Header)
	c.mu.Unlock()
	return a
}

// rewrite adjusts the request to the workspace.
func (a *assetRequest) rewrite(out http.Header) {
	if a.identity {
		out.Set("Accept-Encoding", "identity")
	}
}

// modify handles the workspace's answer: remembers long-lived public
// paths, and for an identity request replaces the body with the gzip of it.
func (a *assetRequest) modify(resp *http.Response) error {
	c := a.c
	maxAge, ok := storableFor(resp)
	c.mu.Lock()
	if ok && !c.hints[a.key] {
		if len(c.hints) >= maxHints {
			clear(c.hints)
		}
		c.hints[a.key] = true
	} else if !ok {
		delete(c.hints, a.key)
	}
	c.mu.Unlock()
	if !a.identity || !ok || resp.Header.Get("Content-Encoding") != "" {
		return nil // as the workspace sent it (plain, if it changed its mind)
	}
	var body []byte
	if resp.ContentLength <= c.maxEntry {
		var err error
		if body, err = io.ReadAll(io.LimitReader(resp.Body, c.maxEntry+1)); err != nil {
			resp.Body.Close()
			return fmt.Errorf("reading %s: %w", a.key.path, err)
		}
	}
	if resp.ContentLength > c.maxEntry || int64(len(body)) > c.maxEntry {
		// Too large to keep: compressed on the way, as the workspace
		// would have done.
		gzipStream(resp, io.MultiReader(bytes.NewReader(body), resp.Body))
		return nil
	}
	resp.Body.Close()
	gz := c.gzipOf(body, maxAge)
	resp.Body = io.NopCloser(bytes.NewReader(gz))
	resp.ContentLength = int64(len(gz))
	resp.Header.Set("Content-Length", strconv.Itoa(len(gz)))
	setGzipHeaders(resp.Header)
	return nil
}

func setGzipHeaders(h http.Header) {
	h.Set("Content-Encoding", "gzip")
	if !strings.Contains(strings.ToLower(strings.Join(h.Values("Vary"), ",")), "accept-encoding") {
		h.Add("Vary", "Accept-Encoding")
	}
}

// gzipStream replaces resp's body with the gzip of src, compressed as it
// is read. Closing the new body (the client went away) ends the copy.
func gzipStream(resp *http.Response, src io.Reader) {
	orig := resp.Body
	pr, pw := io.Pipe()
	go func() {
		zw := gzip.NewWriter(pw)
		_, err := io.Copy(zw, src)
		if err == nil {
			err = zw.Close()
		}
		orig.Close()
		pw.CloseWithError(err)
	}()
	resp.Body = pr
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	setGzipHeaders(resp.Header)
}

// gzipOf returns the cached gzip of body, compressing and keeping it the
// first time.
func (c *AssetCache) gzipOf(body []byte, maxAge time.Duration) []byte {
	hash := sha256.Sum256(body)
	now := c.now()
	c.mu.Lock()
	if el, ok := c.byHash[hash]; ok {
		g := el.Value.(*gzipped)
		if now.Before(g.expires) {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			return g.gz
		}
		c.removeLocked(el)
	}
	c.gzipped++
	c.mu.Unlock()

	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(body) // writes to memory do not fail
	_ = zw.Close()
	g := &gzipped{hash: hash, gz: buf.Bytes(), expires: now.Add(maxAge)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byHash[hash]; ok { // compressed meanwhile by another request
		c.removeLocked(el)
	}
	for c.size+int64(len(g.gz)) > c.maxBytes && c.lru.Len() > 0 {
		c.removeLocked(c.lru.Back())
	}
	c.byHash[hash] = c.lru.PushFront(g)
	c.size += int64(len(g.gz))
	return g.gz
}

func (c *AssetCache) removeLocked(el *list.Element) {
	g := c.lru.Remove(el).(*gzipped)
	delete(c.byHash, g.hash)
	c.size -= int64(len(g.gz))
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(h http.Header) bool {
	for _, v := range h.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(name), "gzip") || strings.TrimSpace(name) == "*" {
				return strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0"
			}
		}
	}
	return false
}

// storableFor says whether a workspace's answer is long-lived and public,
// and for how long.
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
