package workspace

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"k8s.io/klog/v2"
)

// The handshake headers the dialer writes itself; copying the client's
// would send them twice.
var handshakeHeaders = []string{"Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version",
	"Sec-Websocket-Extensions", "Sec-Websocket-Protocol", "Host", "Te", "Trailer", "Transfer-Encoding", "Keep-Alive"}

// serveWebSocket relays one WebSocket message by message rather than
// splicing bytes: that lets the proxy ping both sides of an idle
// connection, and know when it closes (activity).
func (h *proxyHandler) serveWebSocket(w http.ResponseWriter, req *http.Request, prefix, path, rawPath string) {
	backendURL := &url.URL{Scheme: "ws", Host: h.target.Host, Path: path, RawPath: rawPath, RawQuery: req.URL.RawQuery}
	header := req.Header.Clone()
	for _, k := range handshakeHeaders {
		header.Del(k)
	}
	forwardHeaders(req, header, prefix, h.rest.cfg.Origins)

	dialer := websocket.Dialer{
		HandshakeTimeout:  15 * time.Second,
		Subprotocols:      websocket.Subprotocols(req),
		EnableCompression: true,
	}
	backend, resp, err := dialer.DialContext(req.Context(), backendURL.String(), header)
	if err != nil {
		if resp != nil {
			// The workspace refused the handshake (e.g. code-server's Origin
			// check): pass its answer on so the user sees why.
			defer resp.Body.Close()
			rewriteResponseHeaders(resp.Header, prefix, h.target)
			for k, v := range resp.Header {
				w.Header()[k] = v
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = io.Copy(w, io.LimitReader(resp.Body, 1<<20))
			return
		}
		h.responder.Error(unavailable(h.ws, "refused a WebSocket at %s: %v%s", h.target.Host, err, readyNote(h.ws)))
		return
	}
	defer backend.Close()

	respHeader := http.Header{}
	for _, c := range resp.Header.Values("Set-Cookie") {
		respHeader.Add("Set-Cookie", rewriteSetCookie(c, prefix))
	}
	upgrader := websocket.Upgrader{
		HandshakeTimeout: 15 * time.Second,
		// The Origin was checked against the allow-list before dialing,
		// and the workspace checked it again.
		CheckOrigin:       func(*http.Request) bool { return true },
		EnableCompression: true,
	}
	if p := backend.Subprotocol(); p != "" {
		upgrader.Subprotocols = []string{p}
	}
	client, err := upgrader.Upgrade(w, req, respHeader)
	if err != nil {
		return // Upgrade has answered the client
	}
	defer client.Close()

	if a := h.rest.cfg.Activity; a != nil {
		defer a.Open(h.ws)()
	}
	relayWebSocket(client, backend, h.rest.cfg.PingInterval)
}

// relayWebSocket copies messages both ways until either side closes, and
// pings both sides every interval. The client must answer a ping within
// three intervals or the connection is dropped.
func relayWebSocket(client, backend *websocket.Conn, interval time.Duration) {
	deadline := func() time.Time { return time.Now().Add(3 * interval) }
	_ = client.SetReadDeadline(deadline())
	client.SetPongHandler(func(string) error { return client.SetReadDeadline(deadline()) })

	done := make(chan struct{})
	var once sync.Once
	finish := func() { once.Do(func() { close(done) }) }

	go func() {
		defer finish()
		copyMessages(backend, client, func() { _ = client.SetReadDeadline(deadline()) })
	}()
	go func() {
		defer finish()
		copyMessages(client, backend, nil)
	}()

	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			wd := time.Now().Add(10 * time.Second)
			if client.WriteControl(websocket.PingMessage, nil, wd) != nil || backend.WriteControl(websocket.PingMessage, nil, wd) != nil {
				return
			}
		}
	}
}

// copyMessages streams each message from src to dst (large messages are
// not held in memory whole) and passes a close frame on.
func copyMessages(dst, src *websocket.Conn, onMessage func()) {
	for {
		mt, r, err := src.NextReader()
		if err != nil {
			code, text := websocket.CloseNormalClosure, ""
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				code, text = ce.Code, ce.Text
				if code == websocket.CloseNoStatusReceived || code == websocket.CloseAbnormalClosure {
					code = websocket.CloseNormalClosure
				}
			} else if !isClosedConn(err) {
				code = websocket.CloseGoingAway
			}
			_ = dst.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
			return
		}
		if onMessage != nil {
			onMessage()
		}
		wr, err := dst.NextWriter(mt)
		if err != nil {
			return
		}
		if _, err := io.Copy(wr, r); err != nil {
			_ = wr.Close()
			return
		}
		if err := wr.Close(); err != nil {
			return
		}
	}
}

func isClosedConn(err error) bool {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	if strings.Contains(err.Error(), "use of closed network connection") {
		return true
	}
	klog.V(4).InfoS("WebSocket relay ended", "err", err)
	return false
}
