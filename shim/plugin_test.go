package shim

import (
	"strings"
	"testing"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestTaskAPIv3MatchesV2 holds up what serving task API v3 with the v2
// message types rests on (plugin.go): every v3 message has a v2 twin with the
// same fields (number, name, type, cardinality), and every v3 method takes
// and returns the twins of its v2 namesake. A containerd release that changes
// v3 alone fails this test, not a container.
func TestTaskAPIv3MatchesV2(t *testing.T) {
	v2 := taskv2.File_runtime_task_v2_shim_proto
	v3 := taskv3.File_runtime_task_v3_shim_proto
	if v3.Messages().Len() != v2.Messages().Len() {
		t.Fatalf("v3 declares %d messages, v2 %d", v3.Messages().Len(), v2.Messages().Len())
	}
	for i := range v3.Messages().Len() {
		m3 := v3.Messages().Get(i)
		m2 := v2.Messages().ByName(m3.Name())
		if m2 == nil {
			t.Errorf("v3 message %s has no v2 twin", m3.Name())
			continue
		}
		compareFields(t, m3, m2)
	}
	s3 := v3.Services().ByName("Task")
	s2 := v2.Services().ByName("Task")
	if s3.Methods().Len() != s2.Methods().Len() {
		t.Fatalf("v3 Task has %d methods, v2 %d", s3.Methods().Len(), s2.Methods().Len())
	}
	for i := range s3.Methods().Len() {
		m3 := s3.Methods().Get(i)
		m2 := s2.Methods().ByName(m3.Name())
		if m2 == nil {
			t.Errorf("v3 method %s has no v2 twin", m3.Name())
			continue
		}
		if twin(m3.Input().FullName()) != twin(m2.Input().FullName()) || twin(m3.Output().FullName()) != twin(m2.Output().FullName()) {
			t.Errorf("method %s: v3 %s → %s, v2 %s → %s", m3.Name(), m3.Input().FullName(), m3.Output().FullName(), m2.Input().FullName(), m2.Output().FullName())
		}
	}
}

func compareFields(t *testing.T, m3, m2 protoreflect.MessageDescriptor) {
	t.Helper()
	if m3.Fields().Len() != m2.Fields().Len() {
		t.Errorf("%s: v3 has %d fields, v2 %d", m3.Name(), m3.Fields().Len(), m2.Fields().Len())
		return
	}
	for i := range m3.Fields().Len() {
		f3 := m3.Fields().Get(i)
		f2 := m2.Fields().ByNumber(f3.Number())
		if f2 == nil || f2.Name() != f3.Name() || f2.Kind() != f3.Kind() || f2.Cardinality() != f3.Cardinality() {
			t.Errorf("%s field %d (%s) differs between v3 and v2", m3.Name(), f3.Number(), f3.Name())
			continue
		}
		if f3.Message() != nil && twin(f3.Message().FullName()) != twin(f2.Message().FullName()) {
			t.Errorf("%s.%s: v3 type %s, v2 type %s", m3.Name(), f3.Name(), f3.Message().FullName(), f2.Message().FullName())
		}
	}
}

// twin names a message without its task API version, so that
// containerd.task.v3.X and containerd.task.v2.X compare equal, and a
// shared type such as google.protobuf.Any equals itself.
func twin(name protoreflect.FullName) string {
	s := string(name)
	for _, pkg := range []string{"containerd.task.v3.", "containerd.task.v2."} {
		if rest, ok := strings.CutPrefix(s, pkg); ok {
			return "containerd.task." + rest
		}
	}
	return s
}
