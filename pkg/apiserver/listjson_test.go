package apiserver

import (
	"bytes"
	"fmt"
	"math/rand"
	"reflect"
	"testing"

	apifuzzer "k8s.io/apimachinery/pkg/api/apitesting/fuzzer"
	metafuzzer "k8s.io/apimachinery/pkg/apis/meta/fuzzer"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"

	"github.com/guildnet/guildnet/apis/guildnet"
	"github.com/guildnet/guildnet/apis/guildnet/fuzzer"
	"github.com/guildnet/guildnet/apis/guildnet/v1alpha1"
)

func TestServedSerializersOfferJSONButNotProtobuf(t *testing.T) {
	s := newServedSerializers(Codecs)
	var offered []string
	for _, info := range s.SupportedMediaTypes() {
		offered = append(offered, info.MediaType)
		if info.MediaType == runtime.ContentTypeProtobuf {
			t.Fatalf("protobuf is offered: %v", offered)
		}
	}
	if _, ok := runtime.SerializerInfoForMediaType(s.SupportedMediaTypes(), runtime.ContentTypeJSON); !ok {
		t.Fatalf("JSON is not offered: %v", offered)
	}
}

// A client must not be able to tell the item cache is there: every LIST
// body is byte for byte what k8s.io/apimachinery's JSON serializer writes,
// for random objects of every kind, on a first (uncached) and a second
// (cached) encoding, and after objects change.
func TestListJSONMatchesTheStandardSerializer(t *testing.T) {
	// What k8s.io/apiserver serves with (NewDefaultAPIGroupInfo).
	standard := serializer.NewCodecFactory(Scheme, serializer.WithStreamingCollectionEncodingToJSON())
	served := newServedSerializers(standard, &v1alpha1.Workspace{}, &v1alpha1.Database{}, &v1alpha1.Table{})
	encoderOf := func(s runtime.NegotiatedSerializer) runtime.Encoder {
		info, ok := runtime.SerializerInfoForMediaType(s.SupportedMediaTypes(), runtime.ContentTypeJSON)
		if !ok {
			t.Fatal("no JSON serializer")
		}
		return standard.EncoderForVersion(info.Serializer, v1alpha1.SchemeGroupVersion)
	}
	want, got := encoderOf(standard), encoderOf(served)
	if want.Identifier() == got.Identifier() {
		t.Fatalf("the served encoder has the standard one's identifier %q; caches keyed by it would mix the two", got.Identifier())
	}

	f := apifuzzer.FuzzerFor(apifuzzer.MergeFuzzerFuncs(metafuzzer.Funcs, fuzzer.Funcs), rand.NewSource(1), standard)
	compare := func(what string, list runtime.Object) {
		t.Helper()
		var w, g bytes.Buffer
		if err := want.Encode(list, &w); err != nil {
			t.Fatalf("%s: standard encoding: %v", what, err)
		}
		if err := got.Encode(list, &g); err != nil {
			t.Fatalf("%s: served encoding: %v", what, err)
		}
		if !bytes.Equal(w.Bytes(), g.Bytes()) {
			t.Fatalf("%s: the served list differs from the standard one\nstandard: %s\nserved:   %s", what, w.Bytes(), g.Bytes())
		}
	}
	// fill gives each item of a random list a UID (unique, as the
	// server's are) and a resourceVersion, as stored objects have, and an
	// HTML-ish label that encoding/json escapes.
	uids := 0
	fill := func(list runtime.Object, items func() []metav1.Object) {
		f.Fill(list)
		for i, o := range items() {
			uids++
			o.SetUID(types.UID(fmt.Sprintf("uid-%d", uids)))
			o.SetResourceVersion(fmt.Sprint(100 + i))
			o.SetLabels(map[string]string{"owner": "<a&b>"})
		}
	}

	for round := range 20 {
		ws := &guildnet.WorkspaceList{}
		fill(ws, func() (out []metav1.Object) {
			for i := range ws.Items {
				out = append(out, &ws.Items[i])
			}
			return out
		})
		dbs := &guildnet.DatabaseList{}
		fill(dbs, func() (out []metav1.Object) {
			for i := range dbs.Items {
				out = append(out, &dbs.Items[i])
			}
			return out
		})
		tables := &guildnet.TableList{}
		fill(tables, func() (out []metav1.Object) {
			for i := range tables.Items {
				out = append(out, &tables.Items[i])
			}
			return out
		})
		for _, list := range []runtime.Object{ws, dbs, tables} {
			what := fmt.Sprintf("round %d, %T", round, list)
			compare(what+", first", list)
			compare(what+", second, kept", list)
			compare(what+", cached", list)
		}
		// A new resourceVersion is new content: the cache must not answer
		// with the bytes of the old one.
		if len(ws.Items) > 0 {
			ws.Items[0].Spec.Image = fmt.Sprintf("changed-%d", round)
			ws.Items[0].ResourceVersion = "9999"
			compare(fmt.Sprintf("round %d, after an update", round), ws)
			compare(fmt.Sprintf("round %d, after an update, kept", round), ws)
			compare(fmt.Sprintf("round %d, after an update, cached", round), ws)
		}
	}

	// Lists the cache does not touch: empty, and items without a UID.
	compare("an empty list", &guildnet.WorkspaceList{})
	compare("items not from storage", &guildnet.WorkspaceList{Items: []guildnet.Workspace{{Spec: guildnet.WorkspaceSpec{Image: "a"}}}})
	// Single objects go to the standard serializer.
	compare("a single object", &guildnet.Workspace{})
}

// The cache stays within two generations of its byte limit, and an object
// read again after its generation turned over is still served right.
func TestItemJSONCacheIsBounded(t *testing.T) {
	const limit = 4 << 10
	seenLimit := limit / seenBytesPerEntry
	c := newItemJSONCache(limit)
	for i := range 1000 {
		ws := &v1alpha1.Workspace{}
		ws.Name, ws.UID, ws.ResourceVersion = fmt.Sprintf("ws-%d", i), types.UID(fmt.Sprint(i)), "1"
		// Encoded twice, as a repeated LIST does, so that it is kept.
		for range 2 {
			if _, err := c.encode(ws); err != nil {
				t.Fatal(err)
			}
		}
		if n := c.seen.Len(); n > 2*seenLimit {
			t.Fatalf("after %d objects the cache remembers %d versions, more than twice its limit of %d", i+1, n, seenLimit)
		}
		if total := c.items.Weight(); total > 2*limit {
			t.Fatalf("after %d objects the cache holds %d bytes, more than twice its limit of %d", i+1, total, limit)
		}
	}
	ws := &v1alpha1.Workspace{}
	ws.Name, ws.UID, ws.ResourceVersion = "ws-0", "0", "2"
	b, err := c.encode(ws)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"resourceVersion":"2"`)) {
		t.Fatalf("got %s, want the object at resourceVersion 2", b)
	}
}

// An item's JSON is kept the second time its version is encoded, not the
// first: a LIST that is never repeated leaves no JSON behind.
func TestItemJSONCacheKeepsWhatIsListedAgain(t *testing.T) {
	c := newItemJSONCache(1 << 20)
	cached := func(ws *v1alpha1.Workspace) bool {
		e, ok := c.items.Get(itemKey{typ: reflect.TypeOf(ws), uid: ws.UID})
		return ok && e.resourceVersion == ws.ResourceVersion
	}
	encode := func(ws *v1alpha1.Workspace) {
		t.Helper()
		b, err := c.encode(ws)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"resourceVersion":"`+ws.ResourceVersion+`"`)) {
			t.Fatalf("got %s, want the object at resourceVersion %s", b, ws.ResourceVersion)
		}
	}
	ws := &v1alpha1.Workspace{}
	ws.Name, ws.UID, ws.ResourceVersion = "ws", "uid-1", "1"
	encode(ws)
	if cached(ws) {
		t.Fatal("the JSON of an object listed once is kept")
	}
	// A new version listed once is not kept either.
	ws.ResourceVersion = "2"
	encode(ws)
	if cached(ws) {
		t.Fatal("the JSON of version 2, listed once after version 1, is kept")
	}
	encode(ws)
	if !cached(ws) {
		t.Fatal("the JSON of version 2, listed twice, is not kept")
	}
	if n := c.seen.Len(); n != 0 {
		t.Errorf("the cache still remembers %d versions once their JSON is kept", n)
	}
}
