// Command testlogger is a containerd logging program (binary:// log URIs) for
// the tests: it appends every line of the container's stdout and stderr to
// the file named by its "file" argument, prefixed with the stream it came
// from. containerd's shims pass a log URI's query as "key value" arguments:
// binary:///path/testlogger?file=/tmp/c.log runs `testlogger file /tmp/c.log`.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/containerd/containerd/v2/core/runtime/v2/logging"
)

func main() {
	var path *string
	for i := 1; i+1 < len(os.Args); i += 2 {
		if os.Args[i] == "file" {
			path = &os.Args[i+1]
		}
	}
	if path == nil {
		fmt.Fprintln(os.Stderr, "usage: testlogger file PATH")
		os.Exit(2)
	}
	logging.Run(func(ctx context.Context, config *logging.Config, ready func() error) error {
		out, err := os.OpenFile(*path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		defer out.Close()
		if err := ready(); err != nil {
			return err
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for name, stream := range map[string]io.Reader{"stdout": config.Stdout, "stderr": config.Stderr} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lines := bufio.NewScanner(stream)
				for lines.Scan() {
					mu.Lock()
					fmt.Fprintf(out, "%s: %s\n", name, lines.Text())
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return nil
	})
}
