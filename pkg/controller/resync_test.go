package controller

import (
	"testing"
	"time"
)

// A thousand objects due at the same moment come due again spread over a
// fifth of the period, never before it.
func TestResyncAfterSpreadsObjectsCreatedTogether(t *testing.T) {
	const period = time.Minute
	seconds := map[int64]bool{}
	for range 1000 {
		d := ResyncAfter(period)
		if d < period || d >= period+period/5 {
			t.Fatalf("ResyncAfter(%s) = %s, want within [%s, %s)", period, d, period, period+period/5)
		}
		seconds[int64(d/time.Second)] = true
	}
	// 12 one-second slots in [60 s, 72 s); all of them are hit with
	// near certainty, a fixed period would hit one.
	if len(seconds) < 10 {
		t.Fatalf("1000 resyncs fell in %d distinct seconds, want them spread over about 12", len(seconds))
	}
}
