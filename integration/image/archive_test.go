package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// The test reads the archive back the way an importer does: index.json →
// manifest → config and layer, checking every digest on the way.

func buildTestArchive(t *testing.T) []byte {
	t.Helper()
	if _, err := os.Stat(DefaultBusybox); err != nil {
		t.Skipf("%s missing (busybox-static, installed by hack/tools.sh): %v", DefaultBusybox, err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, DefaultName); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readArchive maps each file of the tar to its content.
func readArchive(t *testing.T, archive []byte) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[hdr.Name] = data
		}
	}
}

// readBlob returns the blob d points at, after checking its digest and size.
func readBlob(t *testing.T, files map[string][]byte, d ocispec.Descriptor) []byte {
	t.Helper()
	data, ok := files[BlobPath(d.Digest)]
	if !ok {
		t.Fatalf("blob %s (%s) missing from the archive", d.Digest, d.MediaType)
	}
	if got := digest.FromBytes(data); got != d.Digest || int64(len(data)) != d.Size {
		t.Fatalf("blob %s: content has digest %s and size %d, descriptor says size %d", d.Digest, got, len(data), d.Size)
	}
	return data
}

func decodeJSON(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func TestArchiveIsAnOCILayoutNamedForContainerd(t *testing.T) {
	files := readArchive(t, buildTestArchive(t))

	var layout ocispec.ImageLayout
	decodeJSON(t, files[ocispec.ImageLayoutFile], &layout)
	if layout.Version != ocispec.ImageLayoutVersion {
		t.Errorf("oci-layout version = %q, want %q", layout.Version, ocispec.ImageLayoutVersion)
	}

	var index ocispec.Index
	decodeJSON(t, files[ocispec.ImageIndexFile], &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("index has %d manifests, want 1", len(index.Manifests))
	}
	named := index.Manifests[0]
	if got := named.Annotations[containerdImageNameAnnotation]; got != DefaultName {
		t.Errorf("%s = %q, want %q", containerdImageNameAnnotation, got, DefaultName)
	}
	if got := named.Annotations[ocispec.AnnotationRefName]; got != "teach" {
		t.Errorf("%s = %q, want the tag %q", ocispec.AnnotationRefName, got, "teach")
	}

	var manifest ocispec.Manifest
	decodeJSON(t, readBlob(t, files, named), &manifest)
	var config ocispec.Image
	decodeJSON(t, readBlob(t, files, manifest.Config), &config)
	if len(config.Config.Cmd) != 1 || config.Config.Cmd[0] != "sh" {
		t.Errorf("config Cmd = %q, want [sh]", config.Config.Cmd)
	}
	if len(manifest.Layers) != 1 {
		t.Fatalf("manifest has %d layers, want 1", len(manifest.Layers))
	}

	layerTar := gunzip(t, readBlob(t, files, manifest.Layers[0]))
	if got := digest.FromBytes(layerTar); len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != got {
		t.Errorf("config diff IDs = %v, want the uncompressed layer's digest %s", config.RootFS.DiffIDs, got)
	}
	checkLayerEntries(t, layerTar)
}

func gunzip(t *testing.T, data []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkLayerEntries wants the busybox binary and the applets the tests use as
// symlinks to it.
func checkLayerEntries(t *testing.T, layerTar []byte) {
	t.Helper()
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(layerTar))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[hdr.Name] = hdr
	}
	if hdr := entries["bin/busybox"]; hdr == nil || hdr.Typeflag != tar.TypeReg || hdr.Mode&0o111 == 0 {
		t.Errorf("bin/busybox is not an executable regular file: %+v", hdr)
	}
	for _, applet := range []string{"sh", "cat", "sleep", "true", "false", "ps"} {
		hdr := entries["bin/"+applet]
		if hdr == nil || hdr.Typeflag != tar.TypeSymlink || hdr.Linkname != "busybox" {
			t.Errorf("bin/%s is not a symlink to busybox: %+v", applet, hdr)
		}
	}
}

func TestArchiveIsDeterministic(t *testing.T) {
	first := buildTestArchive(t)
	second := buildTestArchive(t)
	if !bytes.Equal(first, second) {
		t.Fatal("two builds of the image archive differ")
	}
}

func TestTagOf(t *testing.T) {
	for name, want := range map[string]string{
		"docker.io/library/busybox:teach": "teach",
		"localhost:5000/busybox":          "localhost:5000/busybox",
		"localhost:5000/busybox:v1":       "v1",
		"busybox":                         "busybox",
	} {
		if got := tagOf(name); got != want {
			t.Errorf("tagOf(%q) = %q, want %q", name, got, want)
		}
	}
}

// The pause image runs /pause as its entrypoint, the one file of its layer.
func TestPauseImage(t *testing.T) {
	binary := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(binary, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WritePause(&buf, binary, "localhost/pause:test"); err != nil {
		t.Fatal(err)
	}
	files := readArchive(t, buf.Bytes())
	var index ocispec.Index
	if err := json.Unmarshal(files[ocispec.ImageIndexFile], &index); err != nil {
		t.Fatal(err)
	}
	var manifest ocispec.Manifest
	if err := json.Unmarshal(readBlob(t, files, index.Manifests[0]), &manifest); err != nil {
		t.Fatal(err)
	}
	var config ocispec.Image
	if err := json.Unmarshal(readBlob(t, files, manifest.Config), &config); err != nil {
		t.Fatal(err)
	}
	if got := config.Config.Entrypoint; len(got) != 1 || got[0] != "/pause" {
		t.Errorf("entrypoint %q, want [/pause]", got)
	}
	zr, err := gzip.NewReader(bytes.NewReader(readBlob(t, files, manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Name != "pause" || hdr.Mode != 0o755 {
		t.Errorf("layer entry %q mode %o, want pause 755", hdr.Name, hdr.Mode)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("layer has more than /pause (%v)", err)
	}
}
