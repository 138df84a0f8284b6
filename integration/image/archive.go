// Package image builds, without any network, the images the integration tests
// run: an OCI image layout in a tar archive, as `ctr images import`, the
// containerd Go client's Import and `docker load` read it.
//
// The archive holds one manifest for linux/GOARCH with a single gzip layer.
// For busybox the layer is made from the host's statically linked
// /bin/busybox (Debian's busybox-static); for the pod sandbox image, from a
// static pause binary. Every byte is a function of that binary and the image
// name, so the archive and the digests in it are the same on every build.
//
// BuildIndex makes the other shape a registry serves: an image of several
// layers, for several platforms, as blobs to push.
package image

import (
	"archive/tar"
	// go-digest finds its hash functions through crypto.Hash, which only knows
	// SHA-256 once the package is linked in.
	_ "crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	// DefaultName is the reference the tests import the image under.
	DefaultName = "docker.io/library/busybox:teach"
	// DefaultBusybox is where busybox-static installs its binary.
	DefaultBusybox = "/bin/busybox"

	// containerdImageNameAnnotation carries the full reference. containerd
	// reads it before the OCI ref.name, which by convention holds only the tag
	// ("teach"): with it, ctr (1.7 and 2.x) and the Go client name the image
	// docker.io/library/busybox:teach instead of "teach" or "import-<date>:teach".
	containerdImageNameAnnotation = "io.containerd.image.name"

	defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Write writes the busybox image archive, built from DefaultBusybox, to w.
func Write(w io.Writer, name string) error {
	return WriteFrom(w, DefaultBusybox, name)
}

// WriteFrom writes the image archive built from the busybox binary at busyboxPath.
func WriteFrom(w io.Writer, busyboxPath, name string) error {
	applets, err := Applets(busyboxPath)
	if err != nil {
		return err
	}
	layerTar, err := LayerTar(busyboxPath, applets)
	if err != nil {
		return err
	}
	return writeImage(w, name, layerTar, ocispec.ImageConfig{Env: []string{defaultPath}, Cmd: []string{"sh"}})
}

// WritePause writes the archive of a pod sandbox image: the static binary at
// pausePath as /pause, its entrypoint. It stands in for registry.k8s.io/pause
// where no registry can be reached.
func WritePause(w io.Writer, pausePath, name string) error {
	layerTar, err := SingleFileLayerTar(pausePath, "pause")
	if err != nil {
		return err
	}
	return writeImage(w, name, layerTar, ocispec.ImageConfig{Entrypoint: []string{"/pause"}})
}

func writeImage(w io.Writer, name string, layerTar []byte, config ocispec.ImageConfig) error {
	blobs, index, err := buildImage(layerTar, config, name)
	if err != nil {
		return err
	}
	return writeLayout(w, index, blobs)
}

// blob is one content-addressed file of the layout, stored under
// blobs/sha256/<digest>.
type blob struct {
	descriptor ocispec.Descriptor
	data       []byte
}

func newBlob(mediaType string, data []byte) blob {
	return blob{
		descriptor: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))},
		data:       data,
	}
}

func newJSONBlob(mediaType string, v any) (blob, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return blob{}, fmt.Errorf("marshal %s: %w", mediaType, err)
	}
	return newBlob(mediaType, data), nil
}

// buildImage makes the three blobs of a single-platform image (layer, config,
// manifest) and the index that names the manifest.
func buildImage(layerTar []byte, runConfig ocispec.ImageConfig, name string) ([]blob, ocispec.Index, error) {
	blobs, named, err := buildManifest(Manifest{
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Layers:   [][]byte{layerTar},
		Config:   runConfig,
	})
	if err != nil {
		return nil, ocispec.Index{}, err
	}
	named.Annotations = map[string]string{
		containerdImageNameAnnotation: name,
		ocispec.AnnotationRefName:     tagOf(name),
	}
	return blobs, newIndex(named), nil
}

// Manifest is one platform's image: its layers, bottom first, each an
// uncompressed tar, and what a container inherits from it.
type Manifest struct {
	Platform ocispec.Platform
	Layers   [][]byte
	Config   ocispec.ImageConfig
}

// Index is a multi-platform image as a registry stores it: the index's own
// descriptor, and every blob it reaches (the index included) by digest.
type Index struct {
	Descriptor ocispec.Descriptor
	Blobs      map[digest.Digest][]byte
}

// BuildIndex makes the blobs of an image with one manifest per platform,
// and the index that lists them.
func BuildIndex(manifests ...Manifest) (Index, error) {
	built := Index{Blobs: map[digest.Digest][]byte{}}
	var named []ocispec.Descriptor
	for _, m := range manifests {
		blobs, descriptor, err := buildManifest(m)
		if err != nil {
			return Index{}, err
		}
		for _, b := range blobs {
			built.Blobs[b.descriptor.Digest] = b.data
		}
		named = append(named, descriptor)
	}
	index, err := newJSONBlob(ocispec.MediaTypeImageIndex, newIndex(named...))
	if err != nil {
		return Index{}, err
	}
	built.Blobs[index.descriptor.Digest] = index.data
	built.Descriptor = index.descriptor
	return built, nil
}

func newIndex(manifests ...ocispec.Descriptor) ocispec.Index {
	return ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: manifests,
	}
}

// buildManifest makes the blobs of one platform's image (its gzip layers,
// config and manifest) and the manifest's descriptor, platform included.
// The order of the chain matters: the config records the digests of the
// *uncompressed* layers (their diff IDs), the manifest those of the
// compressed ones.
func buildManifest(m Manifest) ([]blob, ocispec.Descriptor, error) {
	var (
		blobs   []blob
		layers  []ocispec.Descriptor
		diffIDs []digest.Digest
	)
	for _, layerTar := range m.Layers {
		layerGzip, err := Gzip(layerTar)
		if err != nil {
			return nil, ocispec.Descriptor{}, err
		}
		layer := newBlob(ocispec.MediaTypeImageLayerGzip, layerGzip)
		blobs = append(blobs, layer)
		layers = append(layers, layer.descriptor)
		diffIDs = append(diffIDs, digest.FromBytes(layerTar))
	}
	config, err := newJSONBlob(ocispec.MediaTypeImageConfig, imageConfig(m.Platform, diffIDs, m.Config))
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	manifest, err := newJSONBlob(ocispec.MediaTypeImageManifest, ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    config.descriptor,
		Layers:    layers,
	})
	if err != nil {
		return nil, ocispec.Descriptor{}, err
	}
	descriptor := manifest.descriptor
	platform := m.Platform
	descriptor.Platform = &platform
	return append(blobs, config, manifest), descriptor, nil
}

// imageConfig is what a container inherits from the image (runConfig: for
// busybox, `sh` as the default command and a PATH that finds the applets in
// /bin). Created is left out on purpose: a build time would change the digest.
func imageConfig(platform ocispec.Platform, layerDiffIDs []digest.Digest, runConfig ocispec.ImageConfig) ocispec.Image {
	return ocispec.Image{
		Platform: platform,
		Config:   runConfig,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: layerDiffIDs},
	}
}

// tagOf returns what OCI layouts put in ref.name: the tag of a reference
// ("teach" for docker.io/library/busybox:teach), or the whole name if it has none.
func tagOf(name string) string {
	colon := strings.LastIndex(name, ":")
	if colon < 0 || colon < strings.LastIndex(name, "/") {
		return name
	}
	return name[colon+1:]
}

// writeLayout writes the OCI image layout as a tar: the oci-layout marker, the
// index, then the blobs, each under blobs/sha256/<hex digest>.
func writeLayout(w io.Writer, index ocispec.Index, blobs []blob) error {
	layoutMarker, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return err
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return err
	}

	tw := tar.NewWriter(w)
	for _, dir := range []string{ocispec.ImageBlobsDir + "/", ocispec.ImageBlobsDir + "/sha256/"} {
		if err := writeHeader(tw, directory(dir, 0o755)); err != nil {
			return err
		}
	}
	if err := writeFile(tw, ocispec.ImageLayoutFile, layoutMarker); err != nil {
		return err
	}
	if err := writeFile(tw, ocispec.ImageIndexFile, indexJSON); err != nil {
		return err
	}
	for _, b := range blobs {
		if err := writeFile(tw, BlobPath(b.descriptor.Digest), b.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("close image archive: %w", err)
	}
	return nil
}

// BlobPath is where the layout stores the blob with digest d.
func BlobPath(d digest.Digest) string {
	return ocispec.ImageBlobsDir + "/" + d.Algorithm().String() + "/" + d.Encoded()
}

func writeFile(tw *tar.Writer, name string, data []byte) error {
	if err := writeHeader(tw, regularFile(name, 0o644, int64(len(data)))); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
