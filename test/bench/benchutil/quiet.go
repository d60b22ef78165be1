package benchutil

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// WaitForQuiet waits until the machine's CPUs were busy less than maxBusy
// (0..1) over one window, and returns how long that took. Objects created
// just before a measurement set controllers to work (the reconciler makes
// Deployments, kube-controller-manager their ReplicaSets and pods) that
// would otherwise share the CPUs with the requests being measured and turn
// a comparison of servers into one of background load. It gives up after
// limit with an error saying how busy the machine still was.
func WaitForQuiet(ctx context.Context, maxBusy float64, window, limit time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(limit)
	prev, err := cpuTicks()
	if err != nil {
		return 0, err
	}
	for {
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(window):
		}
		cur, err := cpuTicks()
		if err != nil {
			return 0, err
		}
		busy := cur.busyFraction(prev)
		prev = cur
		if busy < maxBusy {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("the machine is still %.0f%% busy after %s (want below %.0f%%): something keeps working; look at top", busy*100, limit, maxBusy*100)
		}
	}
}

// Settle waits, saying so, until the machine is quiet enough (below 15%
// busy over two seconds) to measure, for at most five minutes.
func Settle(ctx context.Context) error {
	fmt.Println("waiting for the controllers to settle ...")
	took, err := WaitForQuiet(ctx, 0.15, 2*time.Second, 5*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("settled after %s\n", took.Round(time.Second))
	return nil
}

type ticks struct{ busy, total uint64 }

func (t ticks) busyFraction(before ticks) float64 {
	total := t.total - before.total
	if total == 0 {
		return 0
	}
	return float64(t.busy-before.busy) / float64(total)
}

// cpuTicks reads the machine's CPU time from the first line of /proc/stat:
// user nice system idle iowait irq softirq steal ...; idle and iowait are
// the time no work was done.
func cpuTicks() (ticks, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return ticks{}, fmt.Errorf("reading the machine's CPU time: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 6 || fields[0] != "cpu" {
		return ticks{}, fmt.Errorf("unexpected first line of /proc/stat: %q", line)
	}
	var t ticks
	for i, f := range fields[1:] {
		if i >= 8 { // guest time is already counted in user time
			break
		}
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return ticks{}, fmt.Errorf("unexpected first line of /proc/stat: %q", line)
		}
		t.total += v
		if i != 3 && i != 4 {
			t.busy += v
		}
	}
	return t, nil
}
