package image

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// An index read back as a registry client does: index → each platform's
// manifest → its config and layers, every blob found by digest and checked.
func TestBuildIndexListsEachPlatformWithItsLayers(t *testing.T) {
	base := mustFolderLayer(t, "base")
	top := mustFolderLayer(t, "top")
	built, err := BuildIndex(
		Manifest{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Layers: [][]byte{base, top}, Config: ocispec.ImageConfig{Cmd: []string{"sh"}}},
		Manifest{Platform: ocispec.Platform{OS: "linux", Architecture: "arm64"}, Layers: [][]byte{base}},
	)
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[string][]byte{}
	for d, data := range built.Blobs {
		blobs[BlobPath(d)] = data
	}
	if built.Descriptor.MediaType != ocispec.MediaTypeImageIndex {
		t.Errorf("index media type %q", built.Descriptor.MediaType)
	}
	var index ocispec.Index
	decodeJSON(t, readBlob(t, blobs, built.Descriptor), &index)
	if len(index.Manifests) != 2 {
		t.Fatalf("index lists %d manifests, want 2", len(index.Manifests))
	}
	for i, want := range []struct {
		arch   string
		layers [][]byte
	}{{"amd64", [][]byte{base, top}}, {"arm64", [][]byte{base}}} {
		named := index.Manifests[i]
		if named.Platform == nil || named.Platform.Architecture != want.arch {
			t.Fatalf("manifest %d platform %+v, want linux/%s", i, named.Platform, want.arch)
		}
		var manifest ocispec.Manifest
		decodeJSON(t, readBlob(t, blobs, named), &manifest)
		var config ocispec.Image
		decodeJSON(t, readBlob(t, blobs, manifest.Config), &config)
		if config.Architecture != want.arch {
			t.Errorf("%s config architecture %q", want.arch, config.Architecture)
		}
		if len(manifest.Layers) != len(want.layers) || len(config.RootFS.DiffIDs) != len(want.layers) {
			t.Fatalf("%s: %d layers, %d diff IDs, want %d", want.arch, len(manifest.Layers), len(config.RootFS.DiffIDs), len(want.layers))
		}
		for j, layer := range manifest.Layers {
			uncompressed := gunzip(t, readBlob(t, blobs, layer))
			if !bytes.Equal(uncompressed, want.layers[j]) {
				t.Errorf("%s layer %d is not the layer given", want.arch, j)
			}
			if config.RootFS.DiffIDs[j] != digest.FromBytes(uncompressed) {
				t.Errorf("%s diff ID %d = %s, want the uncompressed layer's digest", want.arch, j, config.RootFS.DiffIDs[j])
			}
		}
	}
}

// The folder keeps the owner given, unlike DirLayerTar's files.
func TestFolderLayerTarKeepsItsOwner(t *testing.T) {
	layer, err := FolderLayerTar("test_dir", 0o755, 65534, 65534)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Name != "test_dir/" || hdr.Typeflag != tar.TypeDir || hdr.Uid != 65534 || hdr.Gid != 65534 || hdr.Mode != 0o755 {
		t.Errorf("entry %q type %c uid %d gid %d mode %o, want folder test_dir/ 65534:65534 755", hdr.Name, hdr.Typeflag, hdr.Uid, hdr.Gid, hdr.Mode)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("the layer holds more than the folder (%v)", err)
	}
}

func mustFolderLayer(t *testing.T, name string) []byte {
	t.Helper()
	layer, err := FolderLayerTar(name, 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return layer
}
