package process

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	stdio "github.com/teach/containerd-shim-teach-v2/io"
)

// The request's Terminal flag decides whether an exec gets a terminal, in
// either direction; the spec the caller passed is left as it was.
func TestExecTerminalFollowsTheRequest(t *testing.T) {
	for _, want := range []bool{true, false} {
		sent := &specs.Process{Args: []string{"sh"}, Terminal: !want}
		exec := NewExec(ExecConfig{ID: "e", Spec: sent, Stdio: stdio.Paths{Terminal: want}})
		if exec.cfg.Spec.Terminal != want {
			t.Errorf("request terminal %v, spec terminal %v: runc would be told terminal %v", want, !want, exec.cfg.Spec.Terminal)
		}
		if sent.Terminal != !want {
			t.Errorf("NewExec changed the caller's spec")
		}
	}
}
