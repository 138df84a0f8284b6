package stdio

// Streams is a process's stdio as the shim relays it once the process
// exists: through pipes or through a pseudo-terminal (Relay).
type Streams interface {
	// OutputDone is closed once all of the process's output is in the
	// FIFOs.
	OutputDone() <-chan struct{}
	// CloseStdin ends the process's stdin (containerd's CloseIO).
	CloseStdin()
	// Resize sets the terminal's window size; without a terminal it does
	// nothing.
	Resize(width, height uint32) error
	// ProcessExited tells the streams their process has exited.
	ProcessExited()
	// Close releases everything.
	Close() error
}

// Resize sets the window size of the process's terminal; pipes have none.
func (r *Relay) Resize(width, height uint32) error {
	if r.master == nil {
		return nil
	}
	return r.master.resize(width, height)
}

// ProcessExited lets a terminal's output end once the master is drained.
// Pipes need nothing: they end by themselves when the last process holding
// them exits, while a terminal's other end may be held by a process that
// outlives the one the shim started.
func (r *Relay) ProcessExited() {
	if r.master != nil {
		r.master.processExited()
	}
}
