package workspace

import (
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/test/workspacetest"
)

// assetBackend serves path p with the headers in routes[p] and the body
// bodies[p] (default: one naming the path), gzipped on the fly without a
// length when the request takes gzip, as code-server does. It records the
// Accept-Encoding of every request.
type assetBackend struct {
	mu     sync.Mutex
	routes map[string]http.Header
	bodies map[string]string
	seen   map[string][]string // request URI → Accept-Encoding of each request
}

func newAssetBackend(routes map[string]http.Header) *assetBackend {
	return &assetBackend{routes: routes, bodies: map[string]string{}, seen: map[string][]string{}}
}

func (b *assetBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.seen[r.URL.RequestURI()] = append(b.seen[r.URL.RequestURI()], r.Header.Get("Accept-Encoding"))
	body, ok := b.bodies[r.URL.Path]
	b.mu.Unlock()
	h, known := b.routes[r.URL.Path]
	if !known {
		http.NotFound(w, r)
		return
	}
	if !ok {
		body = strings.Repeat("asset "+r.URL.Path+"\n", 1000)
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	if acceptsGzip(r.Header) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, body)
		_ = zw.Close()
		return
	}
	_, _ = io.WriteString(w, body)
}

func (b *assetBackend) encodings(uri string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen[uri]...)
}

func (b *assetBackend) setBody(path, body string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bodies[path] = body
}

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

const longLived = "public, max-age=31536000"

// fetch GETs url as a browser would, and returns the answer with its body
// decoded.
func fetch(t *testing.T, url string, reqHeader http.Header) (*http.Response, string) {
	t.Helper()
	resp, body, err := workspacetest.GetDecoded(http.DefaultClient, url, reqHeader)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func withAssets(image string, c *AssetCache) func(*guildnet.Workspace, *ProxyConfig) {
	return func(ws *guildnet.Workspace, cfg *ProxyConfig) { ws.Spec.Image, cfg.Assets = image, c }
}

func TestAssetCacheCompressesALongLivedFileOnceForAllWorkspacesOfAnImage(t *testing.T) {
	cache := NewAssetCache(1 << 20)
	const uri = "/stable-abc/static/workbench.js"
	routes := map[string]http.Header{uri: header("Cache-Control", longLived, "Content-Type", "text/javascript")}
	be1, be2 := newAssetBackend(routes), newAssetBackend(routes)
	w1 := newProxyFixture(t, be1, withAssets("code-server:4.139.1", cache))
	w2 := newProxyFixture(t, be2, withAssets("code-server:4.139.1", cache))
	browser := header("Accept-Encoding", "gzip, deflate, br")
	want := strings.Repeat("asset "+uri+"\n", 1000)

	// First: as the browser asked. Then the workspace is asked for the
	// plain body, and the proxy compresses it (once).
	for i, be := range []*assetBackend{be1, be1, be2, be2} {
		w := w1
		if be == be2 {
			w = w2
		}
		resp, body := fetch(t, w.url(uri), browser)
		if resp.StatusCode != 200 || body != want || resp.Header.Get("Content-Encoding") != "gzip" ||
			resp.Header.Get("Content-Type") != "text/javascript" || resp.Header.Get("Cache-Control") != longLived {
			t.Fatalf("request %d: %d, encoding %q, headers %v; body right: %v", i+1, resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header, body == want)
		}
	}
	if got := be1.encodings(uri); len(got) != 2 || got[0] != "gzip, deflate, br" || got[1] != "identity" {
		t.Errorf("workspace 1 was asked with Accept-Encoding %q, want the browser's, then identity", got)
	}
	if got := be2.encodings(uri); len(got) != 2 || got[0] != "identity" || got[1] != "identity" {
		t.Errorf("workspace 2 (same image) was asked with Accept-Encoding %q, want identity twice", got)
	}
	if cache.gzipped != 1 {
		t.Errorf("the proxy compressed the file %d times, want once for all three plain answers", cache.gzipped)
	}
}

func TestAssetCacheNeverServesAnotherWorkspacesBytes(t *testing.T) {
	cache := NewAssetCache(1 << 20)
	const uri = "/static/app.js"
	routes := map[string]http.Header{uri: header("Cache-Control", longLived)}
	honest, other := newAssetBackend(routes), newAssetBackend(routes)
	want := strings.Repeat("asset "+uri+"\n", 1000)
	// Same length and the same bytes up to the last line.
	const tail = "alert('not shipped');\n"
	poisoned := want[:len(want)-len(tail)] + tail
	other.setBody(uri, poisoned)
	wHonest := newProxyFixture(t, honest, withAssets("img", cache))
	wOther := newProxyFixture(t, other, withAssets("img", cache))
	gz := header("Accept-Encoding", "gzip")
	// The other workspace answers first, twice, so its bytes are cached.
	fetch(t, wOther.url(uri), gz)
	if _, b := fetch(t, wOther.url(uri), gz); b != poisoned {
		t.Fatal("the other workspace's own answer is not its file")
	}
	for i := range 2 {
		if _, b := fetch(t, wHonest.url(uri), gz); b != want {
			t.Fatalf("request %d to the honest workspace got a file ending %q, want its own", i+1, b[max(0, len(b)-len(tail)):])
		}
	}
	if cache.gzipped != 2 {
		t.Errorf("compressed %d times, want 2 (two different contents)", cache.gzipped)
	}
}

func TestAssetCacheLeavesOtherAnswersAlone(t *testing.T) {
	routes := map[string]http.Header{
		"/short":     header("Cache-Control", "public, max-age=600"),
		"/private":   header("Cache-Control", "private, max-age=31536000"),
		"/no-public": header("Cache-Control", "max-age=31536000"),
		"/no-store":  header("Cache-Control", "public, max-age=31536000, no-store"),
		"/cookie":    header("Cache-Control", longLived, "Set-Cookie", "session=1"),
		"/vary":      header("Cache-Control", longLived, "Vary", "Cookie"),
		"/aged":      header("Cache-Control", "public, max-age=90000", "Age", "10000"),
	}
	be := newAssetBackend(routes)
	cache := NewAssetCache(1 << 20)
	f := newProxyFixture(t, be, withAssets("img", cache))
	gz := header("Accept-Encoding", "gzip")
	for p := range routes {
		for range 3 {
			fetch(t, f.url(p), gz)
		}
		if got := be.encodings(p); strings.Join(got, ",") != "gzip,gzip,gzip" {
			t.Errorf("%s: the workspace was asked with %q, want the browser's gzip each time (not long-lived and public)", p, got)
		}
	}

	const kept = "/kept"
	be.routes[kept] = header("Cache-Control", longLived)
	fetch(t, f.url(kept), gz)
	// A client without gzip, a range, or no-cache: as asked.
	fetch(t, f.url(kept), header("Accept-Encoding", "identity"))
	fetch(t, f.url(kept), header("Accept-Encoding", "gzip;q=0, identity"))
	fetch(t, f.url(kept), header("Accept-Encoding", "gzip", "Range", "bytes=0-9"))
	fetch(t, f.url(kept), header("Accept-Encoding", "gzip", "Cache-Control", "no-cache"))
	// The query is part of the path.
	fetch(t, f.url(kept+"?v=2"), gz)
	if got := be.encodings(kept); strings.Join(got, ",") != "gzip,identity,gzip;q=0, identity,gzip,gzip" {
		t.Errorf("%s was asked with %q", kept, got)
	}
	if got := be.encodings(kept + "?v=2"); len(got) != 1 || got[0] != "gzip" {
		t.Errorf("%s?v=2 was asked with %q, want the browser's gzip (a path not seen before)", kept, got)
	}

	// Longer than a kept file may be (half of 1 MiB), sent without a
	// length: the client still gets all of it, gzipped on the way.
	const huge = "/huge"
	be.routes[huge] = header("Cache-Control", longLived)
	hugeBody := strings.Repeat("0123456789abcdef", 40000) // 640,000 bytes
	be.setBody(huge, hugeBody)
	fetch(t, f.url(huge), gz)
	n := cache.gzipped
	if resp, b := fetch(t, f.url(huge), gz); b != hugeBody || resp.Header.Get("Content-Encoding") != "gzip" || cache.gzipped != n {
		t.Errorf("%s: got %d bytes with Content-Encoding %q (%d kept copies made), want all %d gzipped, none kept",
			huge, len(b), resp.Header.Get("Content-Encoding"), cache.gzipped-n, len(hugeBody))
	}
	if got := be.encodings(huge); len(got) != 2 || got[1] != "identity" {
		t.Errorf("%s was asked with %q, want the browser's, then identity", huge, got)
	}

	// A path that stops being long-lived is asked as the browser asks again.
	fetch(t, f.url(kept), gz) // identity now
	be.routes[kept] = header("Cache-Control", "no-cache")
	fetch(t, f.url(kept), gz) // identity, answered no-cache: forgotten
	fetch(t, f.url(kept), gz)
	if got := be.encodings(kept); strings.Join(got[len(got)-3:], ",") != "identity,identity,gzip" {
		t.Errorf("after the path became no-cache, it was asked with %q, want identity, identity, then gzip", got[len(got)-3:])
	}
}

func TestAssetCacheExpiresAndStaysWithinItsBound(t *testing.T) {
	c := NewAssetCache(4 << 10)
	now := time.Unix(1_000_000, 0)
	c.now = func() time.Time { return now }
	// Random-looking bodies of ~1.2 KiB compressed each.
	body := func(seed int) []byte {
		b := make([]byte, 1200)
		x := uint32(seed*7919 + 1)
		for i := range b {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			b[i] = byte(x)
		}
		return b
	}
	for i := range 10 {
		c.gzipOf(body(i), 48*time.Hour)
		if c.size > c.maxBytes {
			t.Fatalf("after %d bodies: %d bytes cached, over the bound %d", i+1, c.size, c.maxBytes)
		}
	}
	n := c.gzipped
	c.gzipOf(body(9), 48*time.Hour) // the newest is still there
	if c.gzipped != n {
		t.Error("the most recent body was compressed again")
	}
	c.gzipOf(body(0), 48*time.Hour) // the oldest was evicted
	if c.gzipped != n+1 {
		t.Error("the oldest body was still cached past the bound")
	}
	now = now.Add(49 * time.Hour)
	c.gzipOf(body(9), 48*time.Hour)
	if c.gzipped != n+2 {
		t.Error("a body was served from the cache after its max-age")
	}
	if NewAssetCache(0) != nil {
		t.Error("NewAssetCache(0) should turn the cache off (nil)")
	}
}
