package integration

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/teach/containerd-shim-teach-v2/inspect"
	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// The walkthrough replays the story "Docker containers don't exist" with
// our shim: nginx runs through dockerd and containerd, and each claim of
// the story is checked on the real processes, with its evidence.
//
//	make walkthrough     prints the story: each claim, PASS or FAIL, and its evidence
//	go test -run TestWalkthrough ./integration/   the same checks, quietly
//
// The walkthrough is this test, run by `make walkthrough` from the compiled
// test binary with -walkthrough: the harness it needs to start and stop
// the daemons is built on testing.TB, and the claims stay one piece of code.
var printWalkthrough = flag.Bool("walkthrough", false, "TestWalkthrough prints its story on stdout")

func TestWalkthrough(t *testing.T) {
	t.Parallel() // its daemons are its own
	st := newStory(t)
	w := startWalkthrough(t, st)
	st.claim(t, "The process chain: dockerd → containerd → containerd-shim-teach-v2 → nginx", w.processChain)
	st.claim(t, "nginx serves on 127.0.0.1 (the host's network)", w.serves)
	st.claim(t, "nginx serves on after dockerd stops, and after containerd is killed with SIGKILL", w.survivesDaemons)
	st.claim(t, "containerd and dockerd start again and still manage the container (docker ps, exec, logs)", w.restarted)
	st.claim(t, "The host reads the container's files: /proc/<pid>/root/etc/nginx/nginx.conf", w.rootFromHost)
	st.claim(t, "A signal reaches nginx through the shim: docker kill -s HUP reloads it", w.signalRelayed)
	st.claim(t, "Logs still flow: docker logs shows requests made while dockerd was down", w.logsKeptFlowing)
	st.summary(t)
}

// walkthrough is the story's cast: the daemons and the nginx container.
type walkthrough struct {
	containerd *harness.Containerd
	dockerd    *harness.Dockerd
	id         string // the container's id
	site       string // the site configuration, bind-mounted into the container
	url        string // where nginx serves
	nginxPID   int    // nginx's master process, the container's init
	shimPID    int
}

// startWalkthrough starts the daemons and `docker run`s nginx, as the story
// does: live-restore on, our runtime named in daemon.json.
func startWalkthrough(t *testing.T, st *story) *walkthrough {
	harness.ShimBinary(t) // on containerd's PATH before it starts
	d := harness.StartContainerd(t, "v2.4.2")
	dd := harness.StartDockerd(t, d, harness.TeachDaemonJSON(t))
	if r := dd.DockerWithStdin(t, strings.NewReader(string(harness.NginxArchive(t))), "load"); r.ExitCode != 0 {
		t.Fatalf("docker load of the nginx image: %s", r)
	}
	port := freePort(t)
	w := &walkthrough{containerd: d, dockerd: dd, url: fmt.Sprintf("http://127.0.0.1:%d/", port),
		site: filepath.Join(t.TempDir(), "walkthrough.conf")}
	site := fmt.Sprintf("server {\n\tlisten 127.0.0.1:%d;\n\troot /usr/share/nginx/html;\n}\n", port)
	if err := os.WriteFile(w.site, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	// --network host: dockerd runs without a bridge here (loopback only),
	// so nginx listens on the host's 127.0.0.1 itself.
	args := []string{"run", "-d", "--name", "my-nginx", "--runtime", "teach", "--network", "host",
		"-v", w.site + ":/etc/nginx/conf.d/walkthrough.conf:ro", harness.DockerNginx}
	w.id = dd.MustDocker(t, args...)
	t.Cleanup(func() { dd.Docker(t, "rm", "--force", w.id) })
	harness.Eventually(t, 30*time.Second, "nginx answering on "+w.url, func() error {
		_, _, err := httpGet(w.url)
		return err
	})
	var err error
	if w.nginxPID, err = strconv.Atoi(dd.MustDocker(t, "inspect", "--format", "{{.State.Pid}}", w.id)); err != nil {
		t.Fatal(err)
	}
	if w.shimPID, err = harness.ParentPID(w.nginxPID); err != nil {
		t.Fatal(err)
	}
	st.printf("$ docker run %s\n  (containerd %s, dockerd with live-restore and the runtime teach; nginx from Debian's packages)\n",
		strings.Join(args[1:], " "), d.Release.Version)
	return w
}

// processChain: claim 1.
func (w *walkthrough) processChain(t *testing.T, ev *evidence) {
	dockerdPID := w.dockerdPID(t)
	ev.processes(t, "dockerd", dockerdPID, "containerd", w.containerd.PID(), "shim", w.shimPID, "nginx", w.nginxPID)
	if exe, _ := harness.Executable(w.shimPID); filepath.Base(exe) != harness.TeachShimBinaryName {
		ev.fail(t, "nginx's parent %d runs %s, not %s", w.shimPID, exe, harness.TeachShimBinaryName)
	}
	shimParent, _ := harness.ParentPID(w.shimPID)
	if shimParent == w.containerd.PID() || shimParent == dockerdPID {
		ev.fail(t, "the shim's parent is pid %d, a daemon: it should have been re-parented", shimParent)
	}
	if args, _ := harness.Cmdline(dockerdPID); !strings.Contains(strings.Join(args, " "), "--containerd "+w.containerd.Address) {
		ev.fail(t, "dockerd was not started on this containerd: %q", args)
	}
	ev.add("dockerd calls containerd on its socket (--containerd %s): here both daemons", w.containerd.Address)
	ev.add("were started side by side, as systemd starts them on a stock install. containerd")
	ev.add("started the shim, which left it: the shim's parent is pid %d, not a daemon.", shimParent)
	ev.add("nginx is the shim's child.")
	ev.inspect(t, w, "== The shim", "== Processes")
}

// serves: claim 2.
func (w *walkthrough) serves(t *testing.T, ev *evidence) {
	ev.get(t, w.url, "Welcome to nginx!")
}

// survivesDaemons: claim 3. The requests made here are looked for in the
// logs by claim 7.
func (w *walkthrough) survivesDaemons(t *testing.T, ev *evidence) {
	dockerdPID := w.dockerdPID(t)
	w.dockerd.Stop(t)
	ev.add("$ kill -TERM %d   # dockerd; it has exited: %v", dockerdPID, !w.dockerd.Running())
	ev.get(t, w.url+"?while=dockerd-stopped", "Welcome to nginx!")
	containerdPID := w.containerd.PID()
	w.containerd.Kill(t)
	ev.add("$ kill -KILL %d   # containerd; it is gone: %v", containerdPID, !w.containerd.Running())
	ev.get(t, w.url+"?while=containerd-killed", "Welcome to nginx!")
	ev.processes(t, "shim", w.shimPID, "nginx", w.nginxPID)
	if parent, err := harness.ParentPID(w.nginxPID); err != nil || parent != w.shimPID {
		ev.fail(t, "nginx (pid %d) after the daemons went: parent %d (%v), want the shim %d", w.nginxPID, parent, err, w.shimPID)
	}
}

// restarted: claim 4.
func (w *walkthrough) restarted(t *testing.T, ev *evidence) {
	w.containerd.Start(t)
	w.dockerd.Restart(t) // starts it: it was stopped already
	ev.add("containerd started again (pid %d), then dockerd (pid %d)", w.containerd.PID(), w.dockerdPID(t))
	ps := w.dockerd.MustDocker(t, "ps", "--filter", "id="+w.id, "--format", "{{.Names}} {{.Status}} {{.Image}}")
	ev.add("$ docker ps: %s", ps)
	if !strings.HasPrefix(ps, "my-nginx Up") {
		ev.fail(t, "docker ps does not list my-nginx as Up: %q", ps)
	}
	if pid := w.dockerd.MustDocker(t, "inspect", "--format", "{{.State.Pid}}", w.id); pid != strconv.Itoa(w.nginxPID) {
		ev.fail(t, "docker inspect: pid %s, want the same nginx, pid %d", pid, w.nginxPID)
	}
	r := w.dockerd.Docker(t, "exec", w.id, "nginx", "-v")
	ev.add("$ docker exec my-nginx nginx -v: %s", strings.TrimSpace(string(r.Stderr)))
	if r.ExitCode != 0 || !strings.HasPrefix(string(r.Stderr), "nginx version: nginx/") {
		ev.fail(t, "docker exec after the restarts: %s", r)
	}
	logs := w.dockerd.Docker(t, "logs", "--tail", "1", w.id)
	ev.add("$ docker logs --tail 1 my-nginx: %s", strings.TrimSpace(string(logs.Stdout)))
	if logs.ExitCode != 0 {
		ev.fail(t, "docker logs after the restarts: %s", logs)
	}
}

// rootFromHost: claim 5.
func (w *walkthrough) rootFromHost(t *testing.T, ev *evidence) {
	path := fmt.Sprintf("/proc/%d/root/etc/nginx/nginx.conf", w.nginxPID)
	conf, err := os.ReadFile(path)
	if err != nil {
		ev.fail(t, "read %s: %v", path, err)
		return
	}
	ev.add("$ cat %s", path)
	ev.add("%s", firstLines(string(conf), 4))
	if !strings.Contains(string(conf), "user www-data;") || !strings.Contains(string(conf), "include /etc/nginx/conf.d/*.conf;") {
		ev.fail(t, "%s is not Debian's nginx.conf", path)
	}
	// The site configuration is a bind mount in the container's mount
	// namespace: the host sees it through the container's root as well.
	mounted, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/nginx/conf.d/walkthrough.conf", w.nginxPID))
	written, _ := os.ReadFile(w.site)
	if err != nil || string(mounted) != string(written) {
		ev.fail(t, "the bind-mounted site configuration through /proc/%d/root: %q (%v), want %q", w.nginxPID, mounted, err, written)
	}
	ev.inspect(t, w, "== Root filesystem")
}

// signalRelayed: claim 6.
func (w *walkthrough) signalRelayed(t *testing.T, ev *evidence) {
	w.dockerd.MustDocker(t, "kill", "--signal", "HUP", w.id)
	ev.add("$ docker kill -s HUP my-nginx   (dockerd → containerd → shim → runc kill → nginx)")
	var line string
	err := harness.WaitFor(harness.SettleTimeout, func() error {
		r := w.dockerd.Docker(t, "logs", w.id)
		line = lineWith(string(r.Stderr), "(SIGHUP) received")
		if line == "" {
			return fmt.Errorf("no SIGHUP in nginx's log:\n%s", r.Stderr)
		}
		return nil
	})
	if err != nil {
		ev.fail(t, "%v", err)
		return
	}
	ev.add("nginx's log: %s", line)
	if state := w.dockerd.MustDocker(t, "inspect", "--format", "{{.State.Status}} {{.State.Pid}}", w.id); state != fmt.Sprintf("running %d", w.nginxPID) {
		ev.fail(t, "after the reload: %s, want running %d", state, w.nginxPID)
	}
	ev.get(t, w.url+"?after=reload", "Welcome to nginx!")
}

// logsKeptFlowing: claim 7.
func (w *walkthrough) logsKeptFlowing(t *testing.T, ev *evidence) {
	for _, request := range []string{"GET /?while=dockerd-stopped", "GET /?while=containerd-killed"} {
		var line string
		err := harness.WaitFor(harness.SettleTimeout, func() error {
			line = lineWith(string(w.dockerd.Docker(t, "logs", w.id).Stdout), request)
			if line == "" {
				return fmt.Errorf("docker logs has no %q", request)
			}
			return nil
		})
		if err != nil {
			ev.fail(t, "%v", err)
			continue
		}
		ev.add("docker logs: %s", line)
	}
	report := w.inspectReport(t)
	var fds []string
	fifo := ""
	for _, fd := range report.Descriptors {
		if fd.Kind == "fifo" && strings.Contains(fd.Meaning, "stdout FIFO of this container") {
			fds, fifo = append(fds, strconv.Itoa(fd.FD)), fd.Target
		}
	}
	if fifo == "" {
		ev.fail(t, "inspect names no stdout FIFO among the shim's descriptors")
	}
	ev.add("inspect: the shim holds dockerd's stdout FIFO as fds %s:", strings.Join(fds, " "))
	ev.add("  %s", fifo)
	ev.add("The shim keeps both ends of the FIFO open, so nginx's lines waited in it while")
	ev.add("dockerd was away, and the restarted dockerd read them.")
}

func (w *walkthrough) dockerdPID(t *testing.T) int {
	data, err := os.ReadFile(filepath.Join(w.dockerd.Dir, "docker.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func (w *walkthrough) inspectReport(t *testing.T) inspect.Report {
	r := w.containerd.Inspect(t, w.dockerd.Namespace, w.id, "--json")
	var report inspect.Report
	if r.ExitCode != 0 || json.Unmarshal(r.Stdout, &report) != nil {
		t.Fatalf("inspect --json: %s", r)
	}
	return report
}

// story prints the claims, each with PASS or FAIL and its evidence: on
// stdout with -walkthrough, in the test log otherwise.
type story struct {
	out            io.Writer
	passed, failed int
}

func newStory(t *testing.T) *story {
	st := &story{out: io.Discard}
	if *printWalkthrough {
		st.out = os.Stdout
	}
	st.printf("Docker containers don't exist: the story, replayed with containerd-shim-teach-v2\n\n")
	return st
}

func (st *story) printf(format string, args ...any) { fmt.Fprintf(st.out, format, args...) }

// claim checks one claim in a subtest of its own and prints the verdict.
func (st *story) claim(t *testing.T, title string, check func(t *testing.T, ev *evidence)) {
	number := st.passed + st.failed + 1
	ev := &evidence{}
	passed := t.Run(fmt.Sprintf("claim-%d", number), func(t *testing.T) {
		check(t, ev)
		t.Logf("%s\n%s", title, strings.Join(ev.lines, "\n"))
	})
	verdict := "PASS"
	if passed {
		st.passed++
	} else {
		st.failed++
		verdict = "FAIL"
	}
	st.printf("\n%s  %d. %s\n", verdict, number, title)
	for _, line := range ev.lines {
		st.printf("      %s\n", line)
	}
	if !passed && len(ev.failures) == 0 {
		st.printf("      (stopped early: see the test's log)\n")
	}
}

func (st *story) summary(t *testing.T) {
	st.printf("\n%d claims: %d PASS, %d FAIL\n", st.passed+st.failed, st.passed, st.failed)
}

// evidence is what a claim shows: lines of output, and what failed.
type evidence struct {
	lines    []string
	failures []string
}

func (ev *evidence) add(format string, args ...any) {
	ev.lines = append(ev.lines, strings.Split(fmt.Sprintf(format, args...), "\n")...)
}

// fail marks the claim failed and shows why among the evidence.
func (ev *evidence) fail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	ev.failures = append(ev.failures, msg)
	ev.add("FAILED: %s", msg)
	t.Error(msg)
}

// processes shows named processes like ps -o pid,ppid,args, and fails the
// claim for one that is gone.
func (ev *evidence) processes(t *testing.T, namesAndPIDs ...any) {
	t.Helper()
	ev.add("%-11s %7s %7s  %s", "", "PID", "PPID", "COMMAND")
	for i := 0; i+1 < len(namesAndPIDs); i += 2 {
		name, pid := namesAndPIDs[i].(string), namesAndPIDs[i+1].(int)
		info, err := harness.ReadProcess(pid)
		if err != nil || info.IsZombie() {
			ev.fail(t, "%s (pid %d) is not running", name, pid)
			continue
		}
		args, _ := harness.Cmdline(pid)
		ev.add("%-11s %7d %7d  %s", name, pid, info.PPID, clip(strings.Join(args, " "), 90))
	}
}

// get requests url and fails the claim unless nginx answers 200 with want
// in the page.
func (ev *evidence) get(t *testing.T, url, want string) {
	t.Helper()
	status, body, err := httpGet(url)
	if err != nil || status != http.StatusOK || !strings.Contains(body, want) {
		ev.fail(t, "GET %s: %d %v, want 200 and %q", url, status, err, want)
		return
	}
	ev.add("$ curl %s  → %d, %s", url, status, lineWith(body, "<title>"))
}

// inspect adds the named sections of `containerd-shim-teach-v2 inspect`.
func (ev *evidence) inspect(t *testing.T, w *walkthrough, headings ...string) {
	t.Helper()
	r := w.containerd.Inspect(t, w.dockerd.Namespace, w.id)
	if r.ExitCode != 0 {
		ev.fail(t, "inspect: %s", r)
		return
	}
	ev.add("$ containerd-shim-teach-v2 inspect -n %s <id>", w.dockerd.Namespace)
	for _, heading := range headings {
		ev.add("%s", section(string(r.Stdout), heading))
	}
}

// section cuts the part of inspect's text that starts with heading.
func section(text, heading string) string {
	start := strings.Index(text, heading)
	if start < 0 {
		return ""
	}
	rest := text[start:]
	if end := strings.Index(rest[len(heading):], "\n== "); end >= 0 {
		rest = rest[:len(heading)+end]
	}
	return strings.TrimRight(rest, "\n")
}

func httpGet(url string) (int, string, error) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// freePort is a loopback port nobody listens on now.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func lineWith(text, substr string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, substr) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

func firstLines(text string, n int) string {
	lines := strings.SplitN(text, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
