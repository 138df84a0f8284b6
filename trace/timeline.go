// Package trace is the `containerd-shim-teach-v2 trace` command: it reads a
// container's journal and draws it as a sequence diagram, one lane per
// actor: containerd, the shim, runc, the container's processes.
package trace

import (
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/journal"
	"github.com/teach/containerd-shim-teach-v2/printable"
)

// The lanes, left to right.
const (
	laneContainerd = iota
	laneShim
	laneRunc
	laneContainer
	lanes
)

var laneNames = [lanes]string{"containerd", "shim", "runc", "container"}

// laneWidth is the width of one lane; a lane's lifeline is at its centre.
const laneWidth = 12

func laneCentre(lane int) int { return lane*laneWidth + laneWidth/2 }

// timeline renders journal entries, one or two lines each. Its lines carry
// what the container and runc wrote (runc's error messages, paths, ids), so
// each is printed with printable.Fprintf: such text shows as escapes and
// never acts on the terminal. --json prints the journal's own bytes.
type timeline struct {
	w    io.Writer
	base int64          // Mono of the first entry: times are shown relative to it
	loc  *time.Location // for the wall clock in the header

	// endings are each process's exit forensics, kept for the summary,
	// in the order the processes ended.
	endings []journal.Entry
	// oomKills counts the OOM kills drawn, a flood's counted ones too.
	oomKills int
	// lostAfter is when the lines rotated out begin (Story.LostAfter);
	// 0 once the gap is drawn, or when there is none.
	lostAfter int64
}

func newTimeline(w io.Writer, first journal.Entry, loc *time.Location) *timeline {
	return &timeline{w: w, base: first.Mono, loc: loc}
}

// header says whose journal this is and what the columns are.
func (t *timeline) header(id, namespace string, found journal.Found, first, opened journal.Entry) {
	printable.Fprintf(t.w, "container %s in namespace %s (containerd state %s)\n", id, namespace, found.State)
	printable.Fprintf(t.w, "journal %s\n", found.Dir)
	if opened.Kind == journal.KindJournal {
		printable.Fprintf(t.w, "shim pid %d (group %s), journal level %s\n", opened.Pid, opened.Name, opened.Msg)
	}
	printable.Fprintf(t.w, "times are relative to %s\n\n", first.Time.In(t.loc).Format("2006-01-02 15:04:05.000 MST"))
	// Each lane's name is centred on its lifeline.
	names := []rune(strings.Repeat(" ", lanes*laneWidth+laneWidth))
	for lane, name := range laneNames {
		copy(names[max(laneCentre(lane)-len(name)/2, 0):], []rune(name))
	}
	printable.Fprintf(t.w, "%8s %8s %s\n", "time", "took", strings.TrimRight(string(names), " "))
}

// entry draws one entry.
func (t *timeline) entry(e journal.Entry) {
	t.gapBefore(e)
	from, to := lanesOf(e)
	took := ""
	if e.Took > 0 {
		took = formatDuration(time.Duration(e.Took))
	}
	printable.Fprintf(t.w, "%8s %8s %s  %s\n", t.relative(e.Mono), took, arrow(from, to), t.describe(e))
	if e.Kind == journal.KindRunc && len(e.Argv) > 0 {
		printable.Fprintf(t.w, "%8s %8s %s  $ %s\n", "", "", arrow(-1, -1), strings.Join(e.Argv, " "))
	}
	if e.Kind == journal.KindExit && e.End != nil {
		t.endings = append(t.endings, e)
	}
	if e.Kind == journal.KindOOM {
		t.oomKills += max(1, e.Repeats) // a count stands for its entries
	}
}

// gapBefore draws where the lines rotated out were, before the first entry
// after them.
func (t *timeline) gapBefore(e journal.Entry) {
	if t.lostAfter == 0 || e.Mono <= t.lostAfter {
		return
	}
	t.lostAfter = 0
	printable.Fprintf(t.w, "%8s %8s %s  … entries rotated out of the journal …\n", "", "", arrow(-1, -1))
}

// entries draws a run of entries. A request whose answer follows it with
// nothing in between (State, Wait of an exited process, Pids…) is drawn as
// one line: containerd asks such things often.
func (t *timeline) entries(entries []journal.Entry) {
	for i := 0; i < len(entries); i++ {
		e := entries[i]
		if i+1 < len(entries) && answers(entries[i+1], e) {
			t.gapBefore(e)
			out := entries[i+1]
			printable.Fprintf(t.w, "%8s %8s %s  %s\n", t.relative(e.Mono), formatDuration(time.Duration(out.Took)),
				arrow(laneContainerd, laneShim), t.describe(out))
			i++
			continue
		}
		t.entry(e)
	}
}

// answers: out is the answer to the request in.
func answers(out, in journal.Entry) bool {
	return in.Kind == journal.KindRPCIn && out.Kind == journal.KindRPCOut && out.Name == in.Name && out.Exec == in.Exec && out.ID == in.ID
}

// summary ends the timeline with the count of OOM kills, and each
// process's exit forensics: the last word on every process.
func (t *timeline) summary() {
	if t.oomKills > 0 {
		printable.Fprintf(t.w, "\nOOM kills in the container's cgroup: %d\n", t.oomKills)
	}
	if len(t.endings) == 0 {
		return
	}
	printable.Fprintf(t.w, "\nhow each process ended:\n")
	for _, e := range t.endings {
		printable.Fprintf(t.w, "  %s\n", t.forensics(e))
	}
}

func (t *timeline) relative(mono int64) string {
	if mono == 0 {
		return ""
	}
	return fmt.Sprintf("%+.3fs", float64(mono-t.base)/float64(time.Second))
}

// kindLanes says who speaks to whom in each kind of entry: from, to. The
// same lane twice is a step taken within it; a kind not listed is the
// shim's own.
var kindLanes = map[journal.Kind][2]int{
	journal.KindRPCIn:   {laneContainerd, laneShim},
	journal.KindRPCOut:  {laneShim, laneContainerd},
	journal.KindEvent:   {laneShim, laneContainerd},
	journal.KindRunc:    {laneShim, laneRunc},
	journal.KindSignal:  {laneShim, laneContainer},
	journal.KindReaped:  {laneContainer, laneShim},
	journal.KindOOM:     {laneContainer, laneShim},
	journal.KindCgroup:  {laneContainer, laneShim},
	journal.KindExit:    {laneContainer, laneContainer},
	journal.KindCleanup: {laneContainerd, laneContainerd},
}

func lanesOf(e journal.Entry) (from, to int) {
	if lanes, ok := kindLanes[e.Kind]; ok {
		return lanes[0], lanes[1]
	}
	return laneShim, laneShim
}

// arrow draws the lanes of one line: every lifeline, and an arrow from one
// to another, or a dot on one. from < 0 draws the lifelines alone.
func arrow(from, to int) string {
	line := []rune(strings.Repeat(" ", lanes*laneWidth))
	for lane := range lanes {
		line[laneCentre(lane)] = '│'
	}
	switch {
	case from < 0:
	case from == to:
		line[laneCentre(from)] = '●'
	default:
		lo, hi := min(from, to), max(from, to)
		for i := laneCentre(lo); i <= laneCentre(hi); i++ {
			line[i] = '─'
		}
		line[laneCentre(to)] = '│'
		if from < to {
			line[laneCentre(from)], line[laneCentre(to)-1] = '├', '▶'
		} else {
			line[laneCentre(to)+1], line[laneCentre(from)] = '◀', '┤'
		}
	}
	return strings.TrimRight(string(line), " ")
}

// describe is an entry's text, to the right of the lanes.
func (t *timeline) describe(e journal.Entry) string {
	var d string
	switch e.Kind {
	case journal.KindJournal:
		d = fmt.Sprintf("journal opened by shim pid %d", e.Pid)
		if e.Shared {
			d = fmt.Sprintf("shim pid %d started for group %s, in this container's bundle; its shim-wide journal opened", e.Pid, e.Name)
		}
	case journal.KindShim:
		d = e.Name
		if e.Msg != "" {
			d += ", " + e.Msg
		}
	case journal.KindUpgrade:
		d = upgradeStep(e)
	case journal.KindRPCIn:
		d = e.Name
	case journal.KindRPCOut:
		d = e.Name + " → " + answer(e)
	case journal.KindRunc:
		d = "runc " + e.Name + " " + commandResult(e)
	case journal.KindOpen, journal.KindClose:
		d = streamStep(e)
	case journal.KindSignal:
		d = signalStep(e)
	case journal.KindReaped:
		d = fmt.Sprintf("pid %d exited, status %s", e.Pid, status(e.Code))
		if e.Msg != "" {
			d += " (" + e.Msg + ")"
		}
	case journal.KindEvent:
		d = "event " + e.Name
	case journal.KindOOM:
		d = "OOM kill: " + e.Msg
		if e.Path != "" {
			d += " (counted by oom_kill in " + e.Path + ")"
		}
	case journal.KindCgroup:
		d = cgroupStep(e)
	case journal.KindMount:
		d = fmt.Sprintf("mount %s %s on %s", e.Name, e.Msg, e.Path)
		if e.Err != "" {
			d = fmt.Sprintf("mount on %s failed (%s): %s", e.Path, e.Err, e.Msg)
		}
	case journal.KindUnmount:
		d = "unmount " + e.Path
		if e.Err != "" {
			d += fmt.Sprintf(" failed (%s): %s", e.Err, e.Msg)
		}
	case journal.KindExit:
		d = t.forensics(e)
	case journal.KindCleanup:
		d = fmt.Sprintf("%s (delete action, pid %d)", e.Msg, e.Pid)
	case journal.KindClosed:
		d = "container deleted; journal closed"
	default:
		d = strings.TrimSpace(fmt.Sprintf("%s %s %s", e.Kind, e.Name, e.Msg))
	}
	if e.Repeats > 0 {
		d = fmt.Sprintf("%d more: %s (from %s to %s)", e.Repeats, d, t.relative(e.Since), t.relative(e.Mono))
	}
	if e.Exec != "" && e.Kind != journal.KindExit {
		d = "[exec " + e.Exec + "] " + d
	}
	if e.Shared {
		d = "[shim] " + d
	}
	return d
}

func answer(e journal.Entry) string {
	if e.Err != "" {
		return e.Err + ": " + e.Msg
	}
	if e.Pid != 0 {
		return fmt.Sprintf("ok, pid %d", e.Pid)
	}
	return "ok"
}

func commandResult(e journal.Entry) string {
	result := "→ exit " + status(e.Code)
	if e.Pid != 0 {
		result = fmt.Sprintf("(pid %d) %s", e.Pid, result)
	}
	if e.Err != "" {
		result += fmt.Sprintf(" (%s): %s", e.Err, e.Msg)
	}
	return result
}

func status(code *int) string {
	if code == nil {
		return "unknown"
	}
	return fmt.Sprint(*code)
}

func streamStep(e journal.Entry) string {
	verb := "open"
	if e.Kind == journal.KindClose {
		verb = "close"
	}
	d := verb + " " + e.Name
	if e.Msg != "" && e.Kind == journal.KindOpen {
		d += " " + e.Msg
	}
	if e.Path != "" {
		d += " " + e.Path
	}
	if e.FD != 0 {
		d += fmt.Sprintf(" (fd %d)", e.FD)
	}
	if e.Bytes != 0 {
		d += fmt.Sprintf(" after %s", formatBytes(e.Bytes))
	}
	if e.Msg != "" && e.Kind == journal.KindClose {
		d += ": " + e.Msg
	}
	return d
}

func signalStep(e journal.Entry) string {
	target := fmt.Sprintf("pid %d", e.Pid)
	if e.All {
		target = "every process of the container"
	}
	return fmt.Sprintf("%s to %s (%s)", signalName(e.Signal), target, e.Msg)
}

// forensics is a process's exit, in words.
func (t *timeline) forensics(e journal.Entry) string {
	end := e.End
	who := "init"
	if e.Exec != "" {
		who = "exec " + e.Exec
	}
	var why string
	switch end.Cause {
	case journal.CauseExited:
		why = fmt.Sprintf("exited with status %d by itself", end.Code)
		if end.KillSignal != 0 {
			why += fmt.Sprintf(", after a %s of %s at %s", end.By, signalName(end.KillSignal), t.relative(end.KillAt))
		}
	case journal.CauseKillRequest:
		why = fmt.Sprintf("killed by %s (status %d): %s from containerd at %s", signalName(end.Signal), end.Code, end.By, t.relative(end.KillAt))
	case journal.CauseOOMKiller:
		why = fmt.Sprintf("killed by %s (status %d): the kernel's OOM killer (OOM kill at %s)", signalName(end.Signal), end.Code, t.relative(end.OOMAt))
	default:
		why = fmt.Sprintf("killed by %s (status %d): %s", signalName(end.Signal), end.Code, end.By)
	}
	return fmt.Sprintf("%s (pid %d) %s; %s; stdin %s, stdout %s, stderr %s",
		who, e.Pid, why, t.landmarks(e), formatBytes(end.Stdin), formatBytes(end.Stdout), formatBytes(end.Stderr))
}

// landmarks are when a process was created, started and exited. The shim
// notes "started" when runc start or runc exec returns; a process quick
// enough to exit before that was started and ended while runc ran, and
// saying it started after it exited would be wrong.
func (t *timeline) landmarks(e journal.Entry) string {
	end := e.End
	if end.Started != 0 && end.Exited != 0 && end.Exited < end.Started {
		command := "runc start"
		if e.Exec != "" {
			command = "runc exec"
		}
		return fmt.Sprintf("created %s, exited %s, before %s returned at %s", t.when(end.Created), t.when(end.Exited), command, t.when(end.Started))
	}
	return fmt.Sprintf("created %s, started %s, exited %s", t.when(end.Created), t.when(end.Started), t.when(end.Exited))
}

func (t *timeline) when(mono int64) string {
	if mono == 0 {
		return "never"
	}
	return t.relative(mono)
}

func signalName(signal int) string {
	if name := unix.SignalName(unix.Signal(signal)); name != "" {
		return name
	}
	return fmt.Sprintf("signal %d", signal)
}

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

func formatBytes(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// cgroupStep tells what the kernel said of the container's cgroup after a
// step of the shim's: "cgroup after pause: frozen 1 in .../cgroup.events".
func cgroupStep(e journal.Entry) string {
	if e.Path == "" {
		return fmt.Sprintf("cgroup after %s: could not be read: %s", e.Name, e.Msg)
	}
	return fmt.Sprintf("cgroup after %s: %s in %s", e.Name, e.Msg, e.Path)
}

// upgradeStep is an in-place upgrade of the shim: the binary changed under
// the container, at the same pid, while containerd kept its connection.
func upgradeStep(e journal.Entry) string {
	if e.Err != "" {
		return fmt.Sprintf("shim upgrade %s did not take; the shim goes on: %s", e.Name, e.Err)
	}
	return fmt.Sprintf("shim upgraded in place, same pid %d: %s, now %s; handed over %s", e.Pid, e.Name, e.Path, e.Msg)
}
