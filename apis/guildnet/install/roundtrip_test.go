package install

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/apitesting/roundtrip"

	"github.com/guildnet/guildnet/apis/guildnet/fuzzer"
)

// Every type survives internal → v1alpha1 → JSON → internal unchanged, so
// no field is lost in conversion or storage.
func TestRoundTripTypes(t *testing.T) {
	roundtrip.RoundTripTestForAPIGroup(t, Install, fuzzer.Funcs)
}
