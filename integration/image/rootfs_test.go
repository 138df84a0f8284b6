package image

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// DirLayerTar keeps folders, files with their permission bits and symlinks,
// drops owners and times, and gives the same bytes for the same files.
func TestDirLayerTar(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"etc/nginx", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc/nginx/nginx.conf"), []byte("user www-data;\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/stdout", filepath.Join(dir, "etc/access.log")); err != nil {
		t.Fatal(err)
	}
	layer, err := DirLayerTar(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		typeflag byte
		mode     int64
		content  string
	}{
		"etc/":                 {tar.TypeDir, 0o755, ""},
		"etc/access.log":       {tar.TypeSymlink, 0o777, "/dev/stdout"},
		"etc/nginx/":           {tar.TypeDir, 0o755, ""},
		"etc/nginx/nginx.conf": {tar.TypeReg, 0o640, "user www-data;\n"},
		"tmp/":                 {tar.TypeDir, 0o1777, ""},
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		w, ok := want[hdr.Name]
		content, _ := io.ReadAll(tr)
		if hdr.Typeflag == tar.TypeSymlink {
			content = []byte(hdr.Linkname)
		}
		if !ok || hdr.Typeflag != w.typeflag || hdr.Mode != w.mode || string(content) != w.content ||
			hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(layerModTime) {
			t.Errorf("entry %s: type %c mode %o uid %d content %q time %v", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, content, hdr.ModTime)
		}
	}
	if len(names) != len(want) {
		t.Errorf("entries %q, want %d", names, len(want))
	}
	again, err := DirLayerTar(dir)
	if err != nil || !bytes.Equal(again, layer) {
		t.Errorf("a second layer of the same folder differs (%v)", err)
	}
}
