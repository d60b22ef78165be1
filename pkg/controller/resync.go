package controller

import (
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// resyncJitter is how much later than the resync period a Ready object may
// be looked at again, as a fraction of the period.
const resyncJitter = 0.2

// ResyncAfter is when a Ready database or table is looked at again: the
// resync period plus up to a fifth more, at random. Objects created
// together (a thousand tables from one manifest) would otherwise come due
// in the same second every period, and each time the reconcilers would
// query RethinkDB for all of them at once.
func ResyncAfter(period time.Duration) time.Duration {
	return wait.Jitter(period, resyncJitter)
}
