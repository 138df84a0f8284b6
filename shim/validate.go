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

// readBundleSpec checks the bundle before runc sees it, so a broken bundle is
// reported as what it is rather than as runc's exit status.
func readBundleSpec(bundle string) (*specs.Spec, error) {
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
	var spec specs.Spec
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
func hasNamespace(spec *specs.Spec, ns specs.LinuxNamespaceType) bool {
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
