package workspace

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildnet/guildnet/apis/guildnet"
)

// assetBackend serves path p with the headers in routes[p] and a body
// naming the path; it counts the requests per path and can be told to
// stream without a length, the way code-server compresses on the fly.
type assetBackend struct {
	mu     sync.Mutex
	hits   map[string]int
	routes map[string]http.Header
}

func newAssetBackend(routes map[string]http.Header) *assetBackend {
	return &assetBackend{hits: map[string]int{}, routes: routes}
}

func (b *assetBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.hits[r.URL.RequestURI()]++
	b.mu.Unlock()
	h, ok := b.routes[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	body := strings.Repeat("asset "+r.URL.RequestURI()+" ae="+r.Header.Get("Accept-Encoding")+"\n", 100)
	if h.Get("X-Test-Cut") != "" {
		// Promise more than is sent: the client sees an unexpected EOF.
		w.Header().Set("Content-Length", fmt.Sprint(len(body)+10))
		_, _ = io.WriteString(w, body)
		return
	}
	if h.Get("X-Test-Big") != "" {
		body = strings.Repeat(body, 1000)
	}
	// Flushing first drops the length: chunked, as compression does.
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	_, _ = io.WriteString(w, body)
}

func (b *assetBackend) count(uri string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hits[uri]
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

const longLived = "public, max-age=31536000"

func fetch(t *testing.T, url string, reqHeader http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range reqHeader {
		req.Header[k] = v
	}
	// No transparent gzip: Accept-Encoding is part of what is tested.
	resp, err := (&http.Transport{DisableCompression: true}).RoundTrip(req)
	if err != nil {
		// A cut-off answer may end before its headers are through.
		return &http.Response{StatusCode: -1, Header: http.Header{}}, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body) // cut-off answers end early
	return resp, string(body)
}

func TestAssetCacheSharesLongLivedPublicResponsesBetweenWorkspacesOfAnImage(t *testing.T) {
	cache := NewAssetCache(1 << 20)
	routes := map[string]http.Header{"/stable-abc/static/workbench.js": header("Cache-Control", longLived, "Content-Type", "text/javascript", "Vary", "Accept-Encoding")}
	be1, be2, be3 := newAssetBackend(routes), newAssetBackend(routes), newAssetBackend(routes)
	withImage := func(image string) func(*guildnet.Workspace, *ProxyConfig) {
		return func(ws *guildnet.Workspace, cfg *ProxyConfig) { ws.Spec.Image, cfg.Assets = image, cache }
	}
	w1 := newProxyFixture(t, be1, withImage("code-server:4.139.1"))
	w2 := newProxyFixture(t, be2, withImage("code-server:4.139.1"))
	other := newProxyFixture(t, be3, withImage("code-server:4.140.0"))
	const uri = "/stable-abc/static/workbench.js"
	gz := header("Accept-Encoding", "gzip")

	first, body1 := fetch(t, w1.url(uri), gz)
	second, body2 := fetch(t, w1.url(uri), gz)
	if first.StatusCode != 200 || second.StatusCode != 200 || body1 != body2 || !strings.Contains(body1, "ae=gzip") {
		t.Fatalf("first %d, second %d; bodies equal: %v", first.StatusCode, second.StatusCode, body1 == body2)
	}
	if n := be1.count(uri); n != 1 {
		t.Errorf("workspace 1 got %d requests for %s, want 1: the second should come from the cache", n, uri)
	}
	if second.Header.Get("Age") == "" || second.Header.Get("Cache-Control") != longLived || second.Header.Get("Content-Type") != "text/javascript" ||
		second.ContentLength != int64(len(body1)) {
		t.Errorf("cached answer's headers: %v (length %d), want the workspace's, an Age and the body's length %d", second.Header, second.ContentLength, len(body1))
	}

	// Another workspace of the same image: served from the cache.
	if _, b := fetch(t, w2.url(uri), gz); b != body1 || be2.count(uri) != 0 {
		t.Errorf("same image, other workspace: %d requests reached it, body equal %v; want 0 and equal", be2.count(uri), b == body1)
	}
	// Another image: its own bytes.
	if _, _ = fetch(t, other.url(uri), gz); be3.count(uri) != 1 {
		t.Errorf("other image: %d requests reached it, want 1", be3.count(uri))
	}
	// Another Accept-Encoding is another entry.
	if _, b := fetch(t, w1.url(uri), header("Accept-Encoding", "identity")); !strings.Contains(b, "ae=identity") || be1.count(uri) != 2 {
		t.Errorf("Accept-Encoding identity: got %q…, %d requests; want the workspace's identity answer", b[:40], be1.count(uri))
	}
	// A request that asks to bypass caches, or for a range, goes through.
	fetch(t, w1.url(uri), header("Accept-Encoding", "gzip", "Cache-Control", "no-cache"))
	fetch(t, w1.url(uri), header("Accept-Encoding", "gzip", "Range", "bytes=0-9"))
	if n := be1.count(uri); n != 4 {
		t.Errorf("no-cache and Range requests: workspace got %d requests in all, want 4", n)
	}
}

func TestAssetCacheStoresOnlyWhatMayBeShared(t *testing.T) {
	routes := map[string]http.Header{
		"/short":     header("Cache-Control", "public, max-age=600"),
		"/private":   header("Cache-Control", "private, max-age=31536000"),
		"/no-public": header("Cache-Control", "max-age=31536000"),
		"/no-store":  header("Cache-Control", "public, max-age=31536000, no-store"),
		"/cookie":    header("Cache-Control", longLived, "Set-Cookie", "session=1"),
		"/vary":      header("Cache-Control", longLived, "Vary", "Cookie"),
		"/cut":       header("Cache-Control", longLived, "X-Test-Cut", "1"),
		"/big":       header("Cache-Control", longLived, "X-Test-Big", "1"),
		"/kept":      header("Cache-Control", longLived),
	}
	be := newAssetBackend(routes)
	// 1 MiB in all, 256 KiB per response: /big (~1.6 MB) does not fit.
	f := newProxyFixture(t, be, func(_ *guildnet.Workspace, cfg *ProxyConfig) { cfg.Assets = NewAssetCache(1 << 20) })
	for _, p := range []string{"/short", "/private", "/no-public", "/no-store", "/cookie", "/vary", "/cut", "/big", "/kept", "/missing"} {
		fetch(t, f.url(p), nil)
		fetch(t, f.url(p), nil)
		want := 2
		if p == "/kept" {
			want = 1
		}
		if n := be.count(p); n != want {
			t.Errorf("%s: the workspace got %d of 2 requests, want %d", p, n, want)
		}
	}
	// The query is part of the key.
	fetch(t, f.url("/kept?v=2"), nil)
	if n := be.count("/kept?v=2"); n != 1 {
		t.Errorf("/kept?v=2: %d requests, want 1 (a different URL)", n)
	}
}

func TestAssetCacheExpiresAndStaysWithinItsBound(t *testing.T) {
	c := NewAssetCache(1000)
	now := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return now }
	put := func(path string, size int, maxAge time.Duration) {
		c.store(&asset{key: assetKey{image: "i", path: path}, header: http.Header{}, body: make([]byte, size), stored: now, expires: now.Add(maxAge)})
	}
	has := func(path string) bool {
		return c.serve(httptest.NewRecorder(), assetKey{image: "i", path: path})
	}
	put("/a", 400, 48*time.Hour)
	put("/b", 400, 48*time.Hour)
	if !has("/a") { // /a is now the most recently used
		t.Fatal("/a not cached")
	}
	put("/c", 400, 48*time.Hour) // over 1000 bytes: /b, the least recently used, goes
	if has("/b") || !has("/a") || !has("/c") {
		t.Errorf("after a third entry: /b cached %v, /a %v, /c %v; want the least recently used (/b) evicted", has("/b"), has("/a"), has("/c"))
	}
	if c.size > c.maxBytes {
		t.Errorf("size %d over the bound %d", c.size, c.maxBytes)
	}
	now = now.Add(49 * time.Hour)
	if has("/a") {
		t.Error("/a still served after its max-age")
	}
	if c.lru.Len() != 1 || c.size != 400 {
		t.Errorf("after /a expired: %d entries of %d bytes, want /c alone (400)", c.lru.Len(), c.size)
	}
	if NewAssetCache(0) != nil {
		t.Error("NewAssetCache(0) should turn the cache off (nil)")
	}
}
