package shim

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"c1", "my-container.2", "a_b"} {
		if err := validateID("container", ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "..", "../etc", strings.Repeat("x", 77), "a b", "-x"} {
		if err := validateID("container", bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%q: got %v, want InvalidArgument", bad, err)
		}
	}
}

func TestReadBundleSpec(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		bundle := filepath.Join(dir, name)
		os.Mkdir(bundle, 0o700)
		if content != "" {
			os.WriteFile(filepath.Join(bundle, "config.json"), []byte(content), 0o600)
		}
		return bundle
	}
	cases := []struct {
		bundle string
		check  func(error) bool
		says   string
	}{
		{"relative/bundle", errdefs.IsInvalidArgument, "not absolute"},
		{filepath.Join(dir, "missing"), errdefs.IsNotFound, "does not exist"},
		{write("empty", ""), errdefs.IsNotFound, "no config.json"},
		{write("garbage", "{not json"), errdefs.IsInvalidArgument, "not a valid OCI runtime spec"},
		{write("noprocess", `{"ociVersion":"1.0.0"}`), errdefs.IsInvalidArgument, "no process"},
	}
	for _, tc := range cases {
		_, err := readBundleSpec(tc.bundle)
		if !tc.check(err) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: got %v, want an error saying %q", tc.bundle, err, tc.says)
		}
	}
	if _, err := readBundleSpec(write("good", `{"ociVersion":"1.0.0","process":{"args":["sh"]}}`)); err != nil {
		t.Fatal(err)
	}
}

// A config.json larger than any spec containerd passes is refused unread;
// of a large one's annotations, only the shim's own are kept.
func TestReadBundleSpecCapsWhatItReads(t *testing.T) {
	huge := t.TempDir()
	f, err := os.Create(filepath.Join(huge, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(maxBundleSpecSize + 1) // sparse: nothing is written
	f.Close()
	if _, err := readBundleSpec(huge); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "16 MiB") {
		t.Errorf("a config.json over the cap: got %v, want InvalidArgument naming the 16 MiB cap", err)
	}

	large := t.TempDir()
	config := `{"process":{"args":["sh"]},"annotations":{"` + JournalAnnotation + `":"debug","huge":"` + strings.Repeat("x", 2*largeBundleSpec) + `"}}`
	os.WriteFile(filepath.Join(large, "config.json"), []byte(config), 0o600)
	spec, err := readBundleSpec(large)
	if err != nil {
		t.Fatal(err)
	}
	if len(spec.Annotations) != 1 || spec.Annotations[JournalAnnotation] != "debug" {
		t.Errorf("annotations kept: %d, journal level %q; want the shim's own alone", len(spec.Annotations), spec.Annotations[JournalAnnotation])
	}
}

// FuzzValidateID: an accepted id can never step outside a folder joined with it.
func FuzzValidateID(f *testing.F) {
	for _, seed := range []string{"c1", "../x", "a/b", ".", "x..y"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if validateID("container", id) != nil {
			return
		}
		joined := filepath.Join("/state", id)
		if filepath.Dir(joined) != "/state" {
			t.Fatalf("accepted id %q escapes: %s", id, joined)
		}
	})
}

// FuzzReadBundleSpec: any config.json is read or refused with an errdefs kind.
func FuzzReadBundleSpec(f *testing.F) {
	f.Add(`{"ociVersion":"1.0.0","process":{"args":["sh"]}}`)
	f.Add(`{"process":null}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, config string) {
		bundle := t.TempDir()
		os.WriteFile(filepath.Join(bundle, "config.json"), []byte(config), 0o600)
		if _, err := readBundleSpec(bundle); err != nil && !errdefs.IsInvalidArgument(err) && !errdefs.IsNotFound(err) {
			t.Fatalf("error without a kind: %v", err)
		}
	})
}
