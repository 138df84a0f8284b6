package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The -smaps figure: where an idle shim's memory is, by the kind of
// mapping it sits in. The binary's own pages (file-backed, shared by every
// shim of the same binary) count in RSS but not in private memory; the
// anonymous mappings (the Go heap with the goroutine stacks in it, the
// runtime's own metadata) are the private memory.

// smapsRegions are the kinds of mapping, in the order the figure lists them.
var smapsRegions = []string{
	"binary: code (r-x)",
	"binary: read-only data and pclntab (r--)",
	"binary: data (rw-)",
	"anonymous: heap, stacks, runtime metadata",
	"other ([stack], [vdso]…)",
}

// smapsRegion names the kind of a mapping from its smaps header line
// ("00400000-006f1000 r-xp 00000000 fe:00 99 /path/of/binary").
func smapsRegion(header, binary string) string {
	fields := strings.Fields(header)
	path := ""
	if len(fields) >= 6 {
		path = fields[5]
	}
	switch {
	case path == binary && strings.HasPrefix(fields[1], "r-x"):
		return smapsRegions[0]
	case path == binary && strings.HasPrefix(fields[1], "r--"):
		return smapsRegions[1]
	case path == binary:
		return smapsRegions[2]
	case path == "":
		return smapsRegions[3]
	}
	return smapsRegions[4]
}

// smapsByRegion sums one process's smaps by region: RSS, and private
// memory (Private_Clean + Private_Dirty), in bytes. PSS is left out: it
// depends on how many shims share the binary.
func smapsByRegion(smaps []byte, binary string) (map[string]memory, error) {
	byRegion := map[string]memory{}
	region := ""
	scanner := bufio.NewScanner(bytes.NewReader(smaps))
	for scanner.Scan() {
		line := scanner.Text()
		key, value, found := strings.Cut(line, ":")
		if !found || strings.Contains(key, " ") {
			// A mapping's header: "start-end perms offset dev inode path".
			region = smapsRegion(line, binary)
			continue
		}
		if key != "Rss" && key != "Private_Clean" && key != "Private_Dirty" {
			continue
		}
		kB, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("smaps line %q: %w", line, err)
		}
		m := byRegion[region]
		if key == "Rss" {
			m.rss += kB << 10
		} else {
			m.private += kB << 10
		}
		byRegion[region] = m
	}
	return byRegion, scanner.Err()
}

// writeSmapsFigure writes, for each shim, the median over its idle shims of
// each region's RSS and private memory.
func writeSmapsFigure(w io.Writer, labels []string, byShim map[string][]map[string]memory) {
	fmt.Fprintf(w, "\nWhere an idle shim's memory is (median over its idle shims, MiB):\n\n")
	fmt.Fprintf(w, "| mapping |")
	for _, label := range labels {
		fmt.Fprintf(w, " %s RSS | %s private |", label, label)
	}
	fmt.Fprintf(w, "\n|---|%s\n", strings.Repeat("---:|---:|", len(labels)))
	for _, region := range append(smapsRegions, "all") {
		fmt.Fprintf(w, "| %s |", region)
		for _, label := range labels {
			var rss, private []float64
			for _, shim := range byShim[label] {
				m := shim[region]
				if region == "all" {
					m = memory{}
					for _, part := range shim {
						m = m.add(part)
					}
				}
				rss = append(rss, float64(m.rss))
				private = append(private, float64(m.private))
			}
			fmt.Fprintf(w, " %.2f | %.2f |", medianOf(rss)/(1<<20), medianOf(private)/(1<<20))
		}
		fmt.Fprintln(w)
	}
}
