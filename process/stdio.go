package process

import (
	"context"
	runc "github.com/containerd/go-runc"

	stdio "github.com/teach/containerd-shim-teach-v2/io"
	"github.com/teach/containerd-shim-teach-v2/observe"
)

// processStdio sets up a process's stdio around a runc command that creates
// the process (runc create, runc exec). Without a terminal, the shim makes
// pipes and opens the FIFOs before runc runs, and runc passes the pipes on.
// With a terminal, runc creates the pty and sends its master to a console
// socket; the shim collects it after runc returns.
type processStdio struct {
	paths  stdio.Paths
	pipes  *stdio.Pipes // without a terminal
	relay  *stdio.Relay // without a terminal
	socket *runc.Socket // with a terminal
}

func prepareStdio(paths stdio.Paths) (*processStdio, error) {
	s := &processStdio{paths: paths}
	if paths.Terminal {
		socket, err := stdio.NewConsoleSocket()
		if err != nil {
			return nil, err
		}
		paths.Observer.StreamOpened(observe.Stream{Name: "console-socket", Path: socket.Path()})
		s.socket = socket
		return s, nil
	}
	pipes, err := stdio.NewPipes(paths)
	if err != nil {
		return nil, err
	}
	relay, err := stdio.OpenRelay(paths, pipes)
	if err != nil {
		pipes.Close()
		return nil, err
	}
	s.pipes, s.relay = pipes, relay
	return s, nil
}

// runcIO is what go-runc gives the command as its stdio. With a terminal it
// is none: go-runc then captures runc's own output, which the process does
// not inherit (it has the pty).
func (s *processStdio) runcIO() runc.IO {
	if s.pipes == nil {
		return nil
	}
	return s.pipes
}

// consoleSocket is runc's --console-socket, or nil without a terminal.
func (s *processStdio) consoleSocket() runc.ConsoleSocket {
	if s.socket == nil {
		return nil
	}
	return s.socket
}

// started is called once runc has created the process: it returns the
// process's streams.
func (s *processStdio) started(ctx context.Context) (stdio.Streams, error) {
	if s.socket == nil {
		if err := s.relay.Start(ctx); err != nil {
			return nil, err
		}
		return s.relay, nil
	}
	defer s.closeSocket()
	return stdio.StartTerminal(s.paths, s.socket)
}

func (s *processStdio) closeSocket() {
	s.socket.Close()
	s.paths.Observer.StreamClosed(observe.Stream{Name: "console-socket", Path: s.socket.Path()})
}

// abort releases everything after runc failed.
func (s *processStdio) abort() {
	if s.socket != nil {
		s.closeSocket()
	}
	if s.relay != nil {
		s.relay.Close()
	}
}
