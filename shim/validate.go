package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// validateID applies containerd's identifier rules (letters, digits, '.', '_'
// and '-', at most 76 characters, no "/" or ".."), so an id can never name a
// path outside the folders built from it.
func validateID(kind, id string) error {
	if err := identifiers.Validate(id); err != nil {
		return fmt.Errorf("%s id %q: %w", kind, id, err)
	}
	return nil
}

// bundleSpec is the part of the bundle's config.json (an OCI runtime spec)
// the shim reads; the rest is runc's. Decoding only these fields, not a whole
// specs.Spec, matters for memory: encoding/json keeps, for the life of the
// process, a decoder for every type it has decoded, and the spec's types
// (every Linux resource, seccomp, hooks…) made that cache 140 KiB, a third
// of an idle shim's live heap (docs/benchmarks.md, History).
type bundleSpec struct {
	// Process is only checked for presence: a spec without one has nothing
	// to run.
	Process     *struct{}         `json:"process"`
	Annotations map[string]string `json:"annotations"`
	Linux       *struct {
		Namespaces []specs.LinuxNamespace `json:"namespaces"`
	} `json:"linux"`
}

// maxBundleSpecSize caps the config.json the shim reads. containerd writes
// it from the container's spec, which reached containerd in one gRPC
// message (16 MiB at most by default); a larger file did not come from a
// client through containerd, and the shim refuses it rather than hold it in
// memory.
const maxBundleSpecSize = 16 << 20

// largeBundleSpec is a config.json far above the usual tens of KiB (a huge
// annotation, say). The heap its reading grew is given back to the kernel
// at once: an idle shim collects garbage rarely, and would keep it resident
// for minutes.
const largeBundleSpec = 1 << 20

// readBundleSpec checks the bundle before runc sees it, so a broken bundle is
// reported as what it is rather than as runc's exit status. It reads what
// the shim needs (bundleSpec); runc reads and checks the rest.
func readBundleSpec(bundle string) (*bundleSpec, error) {
	if !filepath.IsAbs(bundle) {
		return nil, fmt.Errorf("bundle path %q is not absolute: %w", bundle, errdefs.ErrInvalidArgument)
	}
	info, err := os.Stat(bundle)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("bundle %s does not exist: %w", bundle, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("bundle %s cannot be read: %v: %w", bundle, err, errdefs.ErrInvalidArgument)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("bundle %s is not a folder: %w", bundle, errdefs.ErrInvalidArgument)
	}
	spec, size, err := decodeBundleSpec(bundle)
	if size > largeBundleSpec {
		// The file and what was decoded from it are garbage once
		// decodeBundleSpec returned.
		debug.FreeOSMemory()
	}
	return spec, err
}

// decodeBundleSpec reads config.json, at most maxBundleSpecSize of it, and
// keeps of its annotations only the shim's own: a huge annotation is for
// others to read. size is how much it read.
func decodeBundleSpec(bundle string) (spec *bundleSpec, size int, err error) {
	data, err := readCapped(filepath.Join(bundle, "config.json"), maxBundleSpecSize)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, 0, fmt.Errorf("bundle %s has no config.json: %w", bundle, errdefs.ErrNotFound)
		}
		return nil, len(data), fmt.Errorf("config.json in %s cannot be read: %v: %w", bundle, err, errdefs.ErrInvalidArgument)
	}
	spec = &bundleSpec{}
	if err := json.Unmarshal(data, spec); err != nil {
		return nil, len(data), fmt.Errorf("config.json in %s is not a valid OCI runtime spec: %v: %w", bundle, err, errdefs.ErrInvalidArgument)
	}
	if spec.Process == nil {
		return nil, len(data), fmt.Errorf("config.json in %s has no process to run: %w", bundle, errdefs.ErrInvalidArgument)
	}
	if level, ok := spec.Annotations[JournalAnnotation]; ok {
		spec.Annotations = map[string]string{JournalAnnotation: level}
	} else {
		spec.Annotations = nil
	}
	return spec, len(data), nil
}

// readCapped reads a file of at most limit bytes; a larger one is an error
// that says its size, and is not read.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if info.Size() > limit {
		return nil, fmt.Errorf("it is %d MiB, more than the %d MiB the shim reads", info.Size()>>20, limit>>20)
	}
	data := make([]byte, info.Size())
	n, err := io.ReadFull(f, data)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil // it was cut short while read: what it holds now
	}
	return data[:n], err
}

// hasNamespace reports whether the container gets a namespace of this type
// of its own (one listed without a path to join).
func hasNamespace(spec *bundleSpec, ns specs.LinuxNamespaceType) bool {
	if spec.Linux == nil {
		return false
	}
	for _, n := range spec.Linux.Namespaces {
		if n.Type == ns && n.Path == "" {
			return true
		}
	}
	return false
}
