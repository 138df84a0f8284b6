package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

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
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("bundle %s has no config.json: %w", bundle, errdefs.ErrNotFound)
		}
		return nil, fmt.Errorf("config.json in %s cannot be read: %v: %w", bundle, err, errdefs.ErrInvalidArgument)
	}
	var spec bundleSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("config.json in %s is not a valid OCI runtime spec: %v: %w", bundle, err, errdefs.ErrInvalidArgument)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("config.json in %s has no process to run: %w", bundle, errdefs.ErrInvalidArgument)
	}
	return &spec, nil
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
