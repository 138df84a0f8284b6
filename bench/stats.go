package main

import (
	"math"
	"slices"
	"time"
)

// durations are the samples of one measure for one shim.
type durations []time.Duration

func (d durations) median() time.Duration { return medianOf(d) }

// percentile is the nearest-rank percentile: the smallest sample that at
// least p percent of the samples do not exceed. p99 of 300 samples is the
// 297th smallest, so three slow samples do not move it and four do.
func (d durations) percentile(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1]
}

// medianOf is the middle sample, or the mean of the two middle ones.
func medianOf[T ~int64 | ~float64](values []T) T {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
