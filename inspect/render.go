package inspect

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/teach/containerd-shim-teach-v2/printable"
)

// writeText prints the report as a teaching aid: one section per part of
// the container's anatomy, each with a line on why it matters.
func writeText(w io.Writer, r *Report) error {
	p := &printer{w: w}
	p.linef("Container %s in namespace %s", r.ID, r.Namespace)
	p.linef("bundle: %s", r.Bundle)
	writeShim(p, r.Shim)
	writeProcesses(p, r.Processes)
	writeNamespaces(p, r.Namespaces, r.NamespacesComparedWith)
	writeCgroup(p, r.Cgroup)
	writeDescriptors(p, r.Shim.PID, r.Descriptors)
	writeRoot(p, r.Root)
	writeRunc(p, r.Runc)
	return p.err
}

// printer writes lines and remembers the first error. Most of what it
// prints comes from the container (command lines, file names) or from runc:
// every string it is given is escaped (printable.String), so that no byte of
// it can act on the terminal. The formats and headings are the report's
// own.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) linef(format string, args ...any) {
	if p.err == nil {
		_, p.err = printable.Fprintf(p.w, format+"\n", args...)
	}
}

// section starts a part of the report: a heading and why it matters.
func (p *printer) section(title, why string) {
	p.linef("\n== %s", title)
	for _, line := range strings.Split(why, "\n") {
		p.linef("   %s", line)
	}
	p.linef("")
}

// table prints rows of cells in aligned columns. Each cell is escaped on
// its own: a tab or a newline in a cell is shown, and cannot start another
// column or row.
func (p *printer) table(rows [][]string) {
	if p.err != nil {
		return
	}
	tw := tabwriter.NewWriter(p.w, 0, 0, 2, ' ', 0)
	for _, row := range rows {
		cells := make([]string, len(row))
		for i, cell := range row {
			cells[i] = printable.String(cell)
		}
		fmt.Fprintf(tw, "   %s\n", strings.Join(cells, "\t"))
	}
	p.err = tw.Flush()
}

func writeShim(p *printer, s Shim) {
	p.section("The shim",
		"The shim, not containerd, is the container's parent. containerd ran the shim's\n"+
			"`start`, which launched this server in a session of its own and exited: the\n"+
			"server was re-parented to pid 1 (or the nearest subreaper), so it outlives\n"+
			"containerd, holds the container's stdio, relays signals and reaps its exit.")
	parent := fmt.Sprintf("%d (%s)", s.PPID, s.ParentName)
	switch {
	case s.PPID == 1:
		parent += "  re-parented to init: not containerd's child"
	case s.ParentName != "" && strings.HasPrefix(s.ParentName, "containerd") && !strings.HasPrefix(s.ParentName, "containerd-shim"):
		parent += "  containerd's child: this shim would die with containerd"
	default:
		parent += "  a subreaper: re-parented to it, not containerd's child"
	}
	session := "its own (setsid): signals to containerd's session do not reach it"
	if !s.SessionLeader {
		session = "shared with its parent"
	}
	p.table([][]string{
		{"pid", fmt.Sprint(s.PID)},
		{"parent", parent},
		{"session", session},
		{"socket", s.Socket},
		{"memory", kib(s.RSSKiB) + " resident"},
		{"command", strings.Join(s.Args, " ")},
	})
}

func writeProcesses(p *printer, procs []Process) {
	p.section("Processes",
		"The container is these processes and nothing more. Each is the shim's child or\n"+
			"a descendant of one: an exec process is the shim's child too, next to init,\n"+
			"placed by runc exec in the container's namespaces and cgroup. Inside, they\n"+
			"see other pids: the container's pid namespace numbers them from 1.")
	rows := [][]string{{"PID", "PPID", "PID INSIDE", "ROLE", "STATE", "COMMAND"}}
	for _, proc := range procs {
		command := strings.Join(proc.Args, " ")
		if command == "" {
			command = "[" + proc.Name + "]"
		}
		rows = append(rows, []string{fmt.Sprintf("%s%d", strings.Repeat("  ", proc.Depth-1), proc.PID),
			fmt.Sprint(proc.PPID), fmt.Sprint(proc.NSPID), proc.Role, proc.State, command})
	}
	p.table(rows)
}

func writeNamespaces(p *printer, nss []Namespace, host string) {
	p.section("Namespaces",
		"A namespace is what makes a process see its own copy of a kernel resource.\n"+
			"Two processes share one when /proc/<pid>/ns/<type> links to the same inode.\n"+
			"Compared here: the container's init and the host, as "+host+" sees it.")
	rows := [][]string{{"TYPE", "CONTAINER", "HOST", "THE CONTAINER HAS", "WHAT ITS OWN WOULD HIDE"}}
	for _, ns := range nss {
		verdict := "its own"
		if ns.Shared {
			verdict = "the host's"
		}
		rows = append(rows, []string{ns.Type, fmt.Sprint(ns.Container), fmt.Sprint(ns.Host), verdict, namespaceMeaning(ns.Type)})
	}
	p.table(rows)
}

func writeCgroup(p *printer, cg Cgroup) {
	p.section(fmt.Sprintf("Cgroup (v%d)", cg.Version),
		"The cgroup is where the kernel counts and limits what the container uses.\n"+
			"runc made it; the shim reads it for Stats and watches it for OOM kills.\n"+
			cgroupVersionNote(cg.Version))
	var rows [][]string
	for _, path := range cg.Paths {
		controllers := path.Controllers
		if controllers == "" {
			controllers = "(v2)"
		}
		rows = append(rows, []string{controllers, path.Path})
	}
	p.table(rows)
	p.linef("")
	p.table([][]string{
		{"memory", kib(cg.MemoryBytes / 1024), limitOf(cg.MemoryLimitBytes, func(n int64) string { return kib(n / 1024) })},
		{"pids", fmt.Sprint(cg.Pids), limitOf(cg.PidsLimit, func(n int64) string { return fmt.Sprint(n) })},
		{"cpu", "", cpuLimit(cg.CPUQuotaMicros, cg.CPUPeriodMicros)},
		{"OOM kills", fmt.Sprint(cg.OOMKills)},
		{"freezer", cg.Freezer},
		{"read from", strings.Join(cg.Files, ", ")},
	})
	for _, e := range cg.Errors {
		p.linef("   could not read: %s", e)
	}
}

// cgroupVersionNote says what the cgroup version the host runs changes for
// the container: where runc puts it, and the files the shim uses.
func cgroupVersionNote(version int) string {
	if version == 2 {
		return "This host has cgroup v2 alone: one tree, and the container's cgroup is one\n" +
			"folder with the files of every controller. OOM kills are counted in\n" +
			"memory.events, which the shim watches with inotify; pause writes 1 to\n" +
			"cgroup.freeze, and cgroup.events says \"frozen 1\" once every process stopped."
	}
	return "This host has cgroup v1: one tree per controller, and the container has a\n" +
		"folder in each (memory, pids, cpu, freezer...). OOM kills are counted in\n" +
		"memory.oom_control, on which the shim registers an eventfd; pause asks the\n" +
		"freezer controller, whose freezer.state says FROZEN once every process stopped."
}

// limitOf is "limit <n>" or "no limit" (0).
func limitOf(n int64, format func(int64) string) string {
	if n <= 0 {
		return "no limit"
	}
	return "limit " + format(n)
}

// cpuLimit says a CPU quota the way it works: a share of each period.
func cpuLimit(quota, period int64) string {
	if quota <= 0 || period <= 0 {
		return "no limit"
	}
	return fmt.Sprintf("limit %d µs of every %d µs (%.2f CPU)", quota, period, float64(quota)/float64(period))
}

func writeDescriptors(p *printer, shimPID int, fds []Descriptor) {
	p.section(fmt.Sprintf("Descriptors the shim holds (ls -l /proc/%d/fd)", shimPID),
		"What the shim keeps open is how it serves the container: the socket containerd\n"+
			"calls, its end of the container's stdio, and containerd's FIFOs, opened on\n"+
			"both sides so the container can write while no client reads.")
	for _, g := range groupDescriptors(fds) {
		p.linef("   %-10s %-8s %s", g.fds, g.Kind, g.Target)
		p.linef("   %-10s %-8s %s", "", "", g.Meaning)
	}
}

// descriptorGroup is descriptors that hold the same file for the same
// reason, such as the two ends of a FIFO the shim opened twice.
type descriptorGroup struct {
	Descriptor
	fds string // "21 22"
}

// groupDescriptors merges neighbours with the same target and meaning.
func groupDescriptors(fds []Descriptor) []descriptorGroup {
	var groups []descriptorGroup
	for _, fd := range fds {
		last := len(groups) - 1
		if last >= 0 && groups[last].Target == fd.Target && groups[last].Meaning == fd.Meaning {
			groups[last].fds += fmt.Sprintf(" %d", fd.FD)
			continue
		}
		groups = append(groups, descriptorGroup{Descriptor: fd, fds: fmt.Sprint(fd.FD)})
	}
	return groups
}

func writeRoot(p *printer, root RootView) {
	p.section("Root filesystem, seen from the host ("+root.Path+")",
		"The container's files are ordinary files on the host: /proc/<pid>/root is its\n"+
			"root as it sees it. A container is a process, not a machine.")
	if root.Error != "" {
		p.linef("   cannot list it: %s", root.Error)
		return
	}
	p.linef("   %s", strings.Join(root.Entries, "  "))
	if root.OSRelease != "" {
		p.linef("   /etc/os-release: %s", root.OSRelease)
	}
}

func writeRunc(p *printer, st RuncState) {
	p.section("runc's state",
		"runc created the container and exited; it keeps the container's state in a\n"+
			"file of its root folder, and answers from it and from the kernel.")
	p.linef("   $ %s", st.Command)
	if st.Error != "" {
		p.linef("   failed: %s", st.Error)
		return
	}
	p.table([][]string{
		{"status", st.Status},
		{"pid", fmt.Sprint(st.PID)},
		{"bundle", st.Bundle},
		{"rootfs", st.Rootfs},
		{"created", st.Created},
	})
}

// kib prints a size given in KiB.
func kib(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d KiB", n)
}
