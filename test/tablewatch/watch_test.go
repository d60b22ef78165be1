// Package tablewatch tests tables/watch through kube-apiserver started with
// a short --request-timeout, so streams are cut and resumed several times.
package tablewatch

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
	guildnetclient "github.com/guildnet/guildnet/generated/clientset/versioned"
	"github.com/guildnet/guildnet/pkg/devenv"
	"github.com/guildnet/guildnet/test/framework"
)

func TestMain(m *testing.M) {
	framework.Main(m, devenv.Options{
		RequestTimeout:     10 * time.Second,
		ExtraAPIServerArgs: []string{"--table-watch-max-duration=6s"},
	})
}

type event struct {
	Type        string         `json:"type"`
	Old         map[string]any `json:"old"`
	New         map[string]any `json:"new"`
	ResumeToken string         `json:"resumeToken"`
	Object      *metav1.Status `json:"object"`
}

// A watcher that reconnects with the last resume token receives every
// insert, update and delete exactly once, across streams that the server
// ends before kube-apiserver's 10 s request timeout.
func TestWatchResumesAcrossRequestTimeouts(t *testing.T) {
	env := framework.Env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	kube := kubernetes.NewForConfigOrDie(env.AdminConfig())
	gn := guildnetclient.NewForConfigOrDie(env.AdminConfig())
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "watch"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gn.GuildnetV1alpha1().Databases("watch").Create(ctx, &v1alpha1.Database{ObjectMeta: metav1.ObjectMeta{Name: "app"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := gn.GuildnetV1alpha1().Tables("watch").Create(ctx, &v1alpha1.Table{ObjectMeta: metav1.ObjectMeta{Name: "app.events"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rc := gn.GuildnetV1alpha1().RESTClient()
	framework.Eventually(t, 60*time.Second, "the table is Ready", func(ctx context.Context) error {
		return rc.Get().AbsPath("/apis/guildnet.io/v1alpha1/namespaces/watch/tables/app.events/rows").Do(ctx).Error()
	})

	// The watcher.
	var (
		mu         sync.Mutex
		got        []event
		bookmarks  int
		lastToken  string
		watchErr   error
		doneMarker = make(chan struct{})
		opened     = make(chan struct{})
		openOnce   sync.Once
	)
	go func() {
		defer close(doneMarker)
		token := ""
		for ctx.Err() == nil {
			req := rc.Get().AbsPath("/apis/guildnet.io/v1alpha1/namespaces/watch/tables/app.events/watch")
			if token != "" {
				req = req.Param("resumeToken", token)
			}
			stream, err := req.Stream(ctx)
			if err != nil {
				watchErr = err
				return
			}
			// Response headers arrive once the server has subscribed.
			openOnce.Do(func() { close(opened) })
			sc := bufio.NewScanner(stream)
			for sc.Scan() {
				var ev event
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					watchErr = fmt.Errorf("bad event %q: %w", sc.Text(), err)
					return
				}
				mu.Lock()
				switch ev.Type {
				case "BOOKMARK":
					bookmarks++
				case "ERROR":
					watchErr = fmt.Errorf("stream error: %+v", ev.Object)
				default:
					got = append(got, ev)
				}
				token, lastToken = ev.ResumeToken, ev.ResumeToken
				mu.Unlock()
				if ev.New != nil && ev.New["id"] == "done" {
					stream.Close()
					return
				}
			}
			stream.Close()
		}
	}()

	// Once the first stream is open, write for ~20 s so that the changes
	// span at least three streams.
	select {
	case <-opened:
	case <-doneMarker:
		t.Fatalf("the watch did not open: %v", watchErr)
	}
	post := func(body string, conflict string) {
		t.Helper()
		if err := rc.Post().AbsPath("/apis/guildnet.io/v1alpha1/namespaces/watch/tables/app.events/rows").
			Param("conflict", conflict).SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(ctx).Error(); err != nil {
			t.Fatal(err)
		}
	}
	type change struct{ typ, id string }
	var want []change
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for i := range 80 {
		<-tick.C
		id := fmt.Sprintf("e%02d", i/2)
		switch {
		case i%2 == 0:
			post(fmt.Sprintf(`{"id":%q,"v":0}`, id), "error")
			want = append(want, change{"ADDED", id})
		case i%4 == 1:
			post(fmt.Sprintf(`{"id":%q,"v":1}`, id), "update")
			want = append(want, change{"MODIFIED", id})
		default:
			if err := rc.Delete().AbsPath("/apis/guildnet.io/v1alpha1/namespaces/watch/tables/app.events/rows", id).Do(ctx).Error(); err != nil {
				t.Fatal(err)
			}
			want = append(want, change{"DELETED", id})
		}
	}
	post(`{"id":"done"}`, "error")
	want = append(want, change{"ADDED", "done"})
	select {
	case <-doneMarker:
	case <-ctx.Done():
		t.Fatal("the watcher did not see the last change")
	}
	mu.Lock()
	defer mu.Unlock()
	if watchErr != nil {
		t.Fatal(watchErr)
	}
	if bookmarks < 3 {
		t.Errorf("saw %d stream ends (BOOKMARKs), want at least 3 reconnects within ~20 s", bookmarks)
	}
	if len(got) != len(want) {
		t.Fatalf("received %d changes, want %d", len(got), len(want))
	}
	for i, w := range want {
		row := got[i].New
		if w.typ == "DELETED" {
			row = got[i].Old
		}
		if got[i].Type != w.typ || row == nil || row["id"] != w.id {
			t.Fatalf("change %d: got %s %v, want %s %s", i, got[i].Type, row, w.typ, w.id)
		}
	}

	// After an apiserver restart the old token cannot be resumed: 410 with
	// a message that says to reload.
	if err := env.RestartGuildNetAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	framework.Eventually(t, 60*time.Second, "a token from before the restart answers 410", func(ctx context.Context) error {
		_, err := rc.Get().AbsPath("/apis/guildnet.io/v1alpha1/namespaces/watch/tables/app.events/watch").
			Param("resumeToken", lastToken).DoRaw(ctx)
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			return fmt.Errorf("want 410 Gone, got %v", err)
		}
		if se, ok := err.(apierrors.APIStatus); !ok || se.Status().Code != http.StatusGone {
			return fmt.Errorf("want code 410, got %v", err)
		}
		return nil
	})
}
