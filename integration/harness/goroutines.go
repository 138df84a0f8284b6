package harness

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"syscall"
)

// A shim dumps the stacks of all its goroutines into its log when it gets
// SIGUSR1: the stock runc shim through containerd's pkg/shim, ours in its
// own server (shim/server.go), with the same markers and pid field. Its log is a FIFO that containerd copies into its own log, so the
// dump lands in the daemon's log as one logrus line:
//
//	time=... level=info msg="=== BEGIN goroutine stack dump ===\ngoroutine 1 [...]:\n...=== END goroutine stack dump ===" ... pid=4242
//
// Counting the goroutines in it is how a test sees, from outside, whether a
// shim leaks them.

var (
	stackDumpEnd    = []byte("=== END goroutine stack dump ===")
	goroutineHeader = regexp.MustCompile(`goroutine \d+ \[`)
)

// ShimGoroutines asks the shim pid for a stack dump and returns how many
// goroutines it has, with the dump itself for a failure message.
func (d *Containerd) ShimGoroutines(pid int) (int, string, error) {
	offset := fileSize(d.LogPath)
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		return 0, "", fmt.Errorf("SIGUSR1 to shim %d: %w", pid, err)
	}
	pidField := []byte("pid=" + strconv.Itoa(pid))
	var dump []byte
	// The dump reaches the daemon's log through the shim's log FIFO.
	err := WaitFor(SettleTimeout, func() error {
		data, err := readFrom(d.LogPath, offset)
		if err != nil {
			return err
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if bytes.Contains(line, stackDumpEnd) && bytes.Contains(line, pidField) {
				dump = line
				return nil
			}
		}
		return fmt.Errorf("no stack dump of shim %d in %s yet", pid, d.LogPath)
	})
	if err != nil {
		return 0, "", err
	}
	return len(goroutineHeader.FindAll(dump, -1)), string(bytes.ReplaceAll(dump, []byte(`\n`), []byte("\n"))), nil
}

func fileSize(path string) int64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return info.Size()
}

func readFrom(path string, offset int64) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if offset > int64(len(data)) {
		return nil, nil
	}
	return data[offset:], nil
}
