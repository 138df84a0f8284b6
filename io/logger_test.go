package stdio

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestOutputURI(t *testing.T) {
	for path, want := range map[string]string{
		"":                                "fifo",
		"/run/containerd/fifo/1/c-stdout": "fifo",
		"binary:///usr/bin/logger?a=b":    "binary /usr/bin/logger",
		"file:///var/log/c.log":           "file /var/log/c.log",
	} {
		uri, isURI, err := outputURI(path)
		got := "fifo"
		if isURI {
			got = uri.Scheme + " " + uri.Path
		}
		if err != nil || got != want {
			t.Errorf("%q: %s, %v; want %s", path, got, err, want)
		}
	}
	for _, bad := range []string{"http://example.com/x", "file://relative", "binary://", "relative/path"} {
		if _, _, err := outputURI(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: got %v, want InvalidArgument", bad, err)
		}
	}
}

func TestFileOutputAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.log")
	os.WriteFile(path, []byte("earlier\n"), 0o600)
	paths := Paths{Stdout: "file://" + path}
	pipes, err := NewPipes(paths)
	if err != nil {
		t.Fatal(err)
	}
	relay, err := OpenRelay(paths, pipes)
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	pipes.stdout.write.WriteString("now\n")
	pipes.CloseAfterStart()
	<-relay.OutputDone()
	data, _ := os.ReadFile(path)
	if string(data) != "earlier\nnow\n" {
		t.Fatalf("log file holds %q", data)
	}
}

// FuzzOutputURI: any stdio path is accepted as a FIFO path or a supported
// URI with an absolute path, or refused with InvalidArgument.
func FuzzOutputURI(f *testing.F) {
	for _, seed := range []string{"/a/fifo", "binary:///bin/x?k=v", "file:///x", "ftp://h/x", "file:", "%zz"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		uri, isURI, err := outputURI(path)
		switch {
		case err != nil:
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error without a kind: %v", err)
			}
		case isURI:
			if !strings.HasPrefix(uri.Path, "/") || (uri.Scheme != "binary" && uri.Scheme != "file") {
				t.Fatalf("accepted %q as %s %q", path, uri.Scheme, uri.Path)
			}
		}
	})
}
