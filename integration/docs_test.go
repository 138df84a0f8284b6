package integration

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/client"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// The documents show `inspect` and `trace` output from a real run, never
// typed by hand. TestDocsCapture lives one container's life through our
// shim, runs both commands as a user would, and checks what they printed;
// `make docs` runs it with -docs, and then it also pastes the output into
// the documents, between the markers
//
//	<!-- make docs: NAME -->
//	<!-- end -->
var docsDir = flag.String("docs", "", "TestDocsCapture writes the captured output into the documents of this folder")

// docsCaptures are the documents that hold captured output, and the
// captures each one holds.
var docsCaptures = map[string][]string{
	"how-it-works.md": {"inspect", "trace"},
	"journal.md":      {"trace", "trace-oom", "trace-killed-shim", "trace-killed-shim-cleaned", "trace-unknown"},
}

func TestDocsCapture(t *testing.T) {
	t.Parallel()
	// The documents show containerd 2.x; both commands are tested on 1.7
	// too, by the trace and inspect tests.
	s := newSession(t, harness.StartContainerd(t, "v2.4.2"), runtimeRows[0])
	task, exitCh := startDocsContainer(t, s)
	captured := map[string]string{"inspect": captureInspect(t, s, task)}
	captured["trace"] = captureTrace(t, s, task, exitCh)
	command := func(id string) string {
		return fmt.Sprintf("$ containerd-shim-teach-v2 trace -n %s --state %s %s\n", s.ns, s.daemon.StateDir, id)
	}
	// journal.md shows the ends of these stories, from the line named.
	oom := traceAnOOMKill(t, s)
	captured["trace-oom"] = command("oom-traced") + "…\n" + tailFrom(t, oom.stdout, `OOM kill: `)
	killed, cleaned := traceAKilledShim(t, s)
	captured["trace-killed-shim"] = command("orphaned") + "…\n" + tailFrom(t, killed.stdout, `event /tasks/start`) + killed.stderr
	captured["trace-killed-shim-cleaned"] = command("orphaned") + "…\n" + tailFrom(t, cleaned.stdout, `containerd ran the delete action`) + cleaned.stderr
	unknown := s.trace(t, "nosuch")
	if unknown.code != 1 {
		t.Fatalf("trace of an unknown container: exit %d, want 1", unknown.code)
	}
	captured["trace-unknown"] = command("nosuch") + unknown.stderr + "$ echo $?\n1\n"
	if *docsDir == "" {
		return
	}
	for doc, names := range docsCaptures {
		path := filepath.Join(*docsDir, doc)
		if err := pasteCaptures(path, names, captured); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

// docsContainer is the container whose life the documents show.
const docsContainer = "web"

// startDocsContainer starts the container and runs one exec in it.
func startDocsContainer(t *testing.T, s *session) (client.Task, <-chan client.ExitStatus) {
	container, task, exitCh := s.runningTask(t, docsContainer)
	if result, err := runExec(s, task, "hello", execSpec(t, s, container, "echo", "hello"), ""); err != nil || result.stdout != "hello\n" {
		t.Fatalf("exec echo hello: %+v, %v", result, err)
	}
	return task, exitCh
}

// captureInspect runs inspect on the running container.
func captureInspect(t *testing.T, s *session, task client.Task) string {
	got := s.daemon.Inspect(t, s.ns, docsContainer)
	if got.ExitCode != 0 {
		t.Fatalf("inspect: %s", got)
	}
	inOrder(t, string(got.Stdout),
		fmt.Sprintf(`pid %d`, task.Pid()),
		`runc`,
	)
	argv := fmt.Sprintf("containerd-shim-teach-v2 inspect -n %s --state %s %s", s.ns, s.daemon.StateDir, docsContainer)
	return "$ " + argv + "\n" + string(got.Stdout)
}

// captureTrace ends the container (SIGKILL, then Delete) and runs trace on
// its journal.
func captureTrace(t *testing.T, s *session, task client.Task, exitCh <-chan client.ExitStatus) string {
	if err := task.Kill(s.ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := exitCodeOf(t, exitCh); code != 137 {
		t.Fatalf("exit code %d, want 137", code)
	}
	deleteTask(t, s.ctx, task, 137)
	got := s.trace(t, docsContainer)
	if got.code != 0 {
		t.Fatalf("trace: exit %d\n%s%s", got.code, got.stdout, got.stderr)
	}
	inOrder(t, got.stdout, `Create$`, `runc create`, `Start$`, `\[exec hello\] Exec$`, `Kill$`,
		`killed by SIGKILL`, `Delete$`, `^how each process ended:`)
	argv := fmt.Sprintf("containerd-shim-teach-v2 trace -n %s --state %s %s", s.ns, s.daemon.StateDir, docsContainer)
	return "$ " + argv + "\n" + got.stdout
}

// tailFrom is the text from the first line that matches pattern on: the
// end of a long timeline, which a document shows.
func tailFrom(t *testing.T, text, pattern string) string {
	t.Helper()
	lines := strings.SplitAfter(text, "\n")
	re := regexp.MustCompile(pattern)
	for i, line := range lines {
		if re.MatchString(line) {
			return strings.Join(lines[i:], "")
		}
	}
	t.Fatalf("no line matches %q in:\n%s", pattern, text)
	return ""
}

// pasteCaptures replaces each named block of the document with its capture,
// in a code block. A document without one of the markers is an error: the
// document and docsCaptures disagree.
func pasteCaptures(path string, names []string, captured map[string]string) error {
	text, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(text)
	for _, name := range names {
		block := regexp.MustCompile(`(?s)(<!-- make docs: ` + regexp.QuoteMeta(name) + ` -->\n).*?(<!-- end -->)`)
		if !block.MatchString(doc) {
			return fmt.Errorf("%s has no block <!-- make docs: %s --> … <!-- end -->", path, name)
		}
		body := "```\n" + strings.TrimRight(captured[name], "\n") + "\n```\n"
		doc = block.ReplaceAllStringFunc(doc, func(match string) string {
			m := block.FindStringSubmatch(match)
			return m[1] + body + m[2]
		})
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}
