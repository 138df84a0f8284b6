package shim

import (
	"encoding/json"
	"os"

	"github.com/containerd/containerd/v2/pkg/identifiers"
)

// Shim grouping: one shim process may serve several containers. Kubernetes
// runs every container of a pod with the pod's sandbox id as an annotation;
// serving the whole pod from one shim saves a process, and its memory, per
// container. Any client can group its own containers with GroupAnnotation.
const (
	GroupAnnotation      = "io.containerd.teach.v2.group"
	CRISandboxAnnotation = "io.kubernetes.cri.sandbox-id"
)

// shimGroup names the shim a container belongs to: its group, read from the
// annotations of the bundle's config.json (`start` runs in the bundle), or
// the container's own id when it has none.
func shimGroup(containerID string) string {
	data, err := os.ReadFile("config.json")
	if err != nil {
		return containerID
	}
	var spec struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(data, &spec) != nil {
		return containerID
	}
	for _, key := range []string{GroupAnnotation, CRISandboxAnnotation} {
		// The group names a socket; an unsafe value is ignored rather
		// than trusted.
		if group := spec.Annotations[key]; group != "" && identifiers.Validate(group) == nil {
			return group
		}
	}
	return containerID
}
