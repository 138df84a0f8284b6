package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
)

// registry is distribution's registry, serving the suite's images.
type registry struct {
	Host    string // the address it listens on, 127.0.0.1:PORT
	LogPath string

	process *exec.Cmd
	exited  chan struct{} // closed once the log has been read to its end
}

// registryConfig is where a registry keeps its blobs and how it listens.
type registryConfig struct {
	Storage string
	// Addr is 127.0.0.1:0 to let the kernel pick the port (the registry
	// logs the one it got), or a fixed one.
	Addr string
	// Certificate and Key, when set, make it serve HTTPS.
	Certificate, Key string
}

func (c registryConfig) yaml() string {
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
`, c.Storage, c.Addr)
	if c.Certificate != "" {
		config += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", c.Certificate, c.Key)
	}
	return config
}

// listeningLine is the log line that carries the address: "listening on 127.0.0.1:39517".
var listeningLine = regexp.MustCompile(`listening on ([0-9.]+:[0-9]+)`)

// startRegistry starts the registry binary with its configuration and log
// in dir, and returns once it listens.
func startRegistry(binary, dir string, config registryConfig) (*registry, error) {
	configPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(configPath, []byte(config.yaml()), 0o644); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "serve", configPath)
	// Its tracing stays off: nothing here collects traces, and an exporter
	// would try to reach a collector.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	// A process group of its own: a Ctrl-C on make reaches the runner,
	// which stops the registry itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs, err := cmd.StderrPipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	cmd.Stdout = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	r := &registry{LogPath: logFile.Name(), process: cmd, exited: make(chan struct{})}

	// The log is read until the address shows, with no clock: either the
	// line comes or the registry exits and the log ends.
	lines := bufio.NewScanner(logs)
	for r.Host == "" && lines.Scan() {
		fmt.Fprintln(logFile, lines.Text())
		if m := listeningLine.FindStringSubmatch(lines.Text()); m != nil {
			r.Host = m[1]
		}
	}
	go func() {
		defer close(r.exited)
		defer logFile.Close()
		io.Copy(logFile, logs)
	}()
	if r.Host == "" {
		<-r.exited
		cmd.Wait()
		return nil, fmt.Errorf("the registry exited before it listened: see %s", r.LogPath)
	}
	return r, nil
}

// Stop ends the registry (SIGTERM, then what remains of its log is read).
func (r *registry) Stop() {
	r.process.Process.Signal(syscall.SIGTERM)
	<-r.exited
	r.process.Wait()
}
