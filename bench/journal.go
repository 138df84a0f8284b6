package main

import (
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/oci"
)

// The journal's cost: the lifecycle of measureLifecycle, with our shim only,
// once for a container whose journal is off (the annotation) and once for
// one at the default level, alternating round by round.

const (
	journalOff = "journal off"
	journalOn  = "journal on"
)

// journalAnnotation is the shim's annotation for a container's journal level.
const journalAnnotation = "io.containerd.teach.v2.journal"

func (s *session) measureJournal(warmup, iterations int) map[string]durations {
	teach := s.shims[0]
	containers := map[string]client.Container{
		journalOff: s.newContainer(teach, "journal-off", []string{"/bin/true"},
			oci.WithAnnotations(map[string]string{journalAnnotation: "off"})),
		journalOn: s.newContainer(teach, "journal-on", []string{"/bin/true"}),
	}
	// The order within a round alternates too: the second task of a round
	// meets what the first left to do (containerd's cleanup of the task
	// before, a shim exiting), and that must not always be the same one.
	variants := []string{journalOff, journalOn}
	samples := make(map[string]durations)
	for round := -warmup; round < iterations; round++ {
		for i := range variants {
			variant := variants[(i+round+warmup)%2]
			if err := s.ctx.Err(); err != nil {
				s.tb.Fatalf("journal: %v", err)
			}
			marks, err := s.lifecycleRound(containers[variant])
			if err != nil {
				s.tb.Fatalf("journal, %s, round %d: %v", variant, round+warmup, err)
			}
			if round >= 0 {
				samples[variant] = append(samples[variant], marks[len(marks)-1].Sub(marks[0]))
			}
		}
		progress("journal", round+warmup+1, warmup+iterations)
	}
	return samples
}

// journalTable compares the two in a table of its own: both columns are
// our shim, so the main table's "teach" and "runc-v2" would mislabel them.
// The target is a journal that costs at most 3% of the lifecycle.
func (r *results) journalTable() string {
	if r.journal == nil {
		return ""
	}
	on, off := r.journal[journalOn], r.journal[journalOff]
	ratio := func(a, b float64) string { return fmt.Sprintf("%.2f×", a/b) }
	met := "no"
	if ms(on.median())/ms(off.median()) <= 1.03 {
		met = "yes"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| lifecycle with our shim (%d rounds each) | %s | %s | on ÷ off | target | met |\n", len(on), journalOn, journalOff)
	b.WriteString("|---|---:|---:|---:|---|---|\n")
	fmt.Fprintf(&b, "| median | %s | %s | %s | ≤ 1.03× | %s |\n",
		format(ms(on.median()), "ms"), format(ms(off.median()), "ms"), ratio(ms(on.median()), ms(off.median())), met)
	fmt.Fprintf(&b, "| p99 | %s | %s | %s |  |  |\n",
		format(ms(on.percentile(99)), "ms"), format(ms(off.percentile(99)), "ms"), ratio(ms(on.percentile(99)), ms(off.percentile(99))))
	return b.String()
}
