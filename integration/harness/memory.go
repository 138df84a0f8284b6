package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Memory is a process's memory as the kernel sums it over every mapping
// (/proc/PID/smaps_rollup), in bytes: Rss counts every resident page, Pss
// divides each shared page among the processes that map it, Private the
// pages no other process maps (Private_Clean + Private_Dirty), which the
// system gets back when the process exits. Anonymous is the memory no file
// backs (heap, stacks): what a leak grows. A binary's own pages are private
// while no other process runs the same file, and shared once one does, so
// Private and Pss change with the processes around; Anonymous does not.
type Memory struct {
	Rss, Pss, Private, Anonymous int64
}

// ReadMemory reads a process's smaps_rollup.
func ReadMemory(pid int) (Memory, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return Memory{}, err
	}
	return ParseSmapsRollup(data)
}

// ParseSmapsRollup reads the fields of Memory from smaps_rollup's text.
func ParseSmapsRollup(data []byte) (Memory, error) {
	var m Memory
	found := 0
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		field, rest, ok := strings.Cut(scanner.Text(), ":")
		if !ok {
			continue
		}
		var into *int64
		switch field {
		case "Rss":
			into = &m.Rss
		case "Pss":
			into = &m.Pss
		case "Private_Clean", "Private_Dirty":
			into = &m.Private
		case "Anonymous":
			into = &m.Anonymous
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return Memory{}, fmt.Errorf("smaps_rollup line %q: %w", scanner.Text(), err)
		}
		*into += kb << 10
		found++
	}
	if found != 5 {
		return Memory{}, fmt.Errorf("smaps_rollup: found %d of Rss, Pss, Private_Clean, Private_Dirty, Anonymous", found)
	}
	return m, scanner.Err()
}
