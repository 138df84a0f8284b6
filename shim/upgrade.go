package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/teach/containerd-shim-teach-v2/observe"
	"github.com/teach/containerd-shim-teach-v2/process"
	"github.com/teach/containerd-shim-teach-v2/version"
)

// The in-place upgrade (docs/upgrade.md): a new shim binary takes over the
// running shim process, by execve, at the same pid. The containers stay the
// shim's children, containerd keeps its connection, and nothing of a
// container is lost. In order:
//
//  1. Upgrade (a root-only request on the shim's own socket, through the
//     Shim service) refuses what it cannot do before anything changes: a
//     binary that is not executable or not a teach shim, one that cannot take
//     this shim's state version, a checkpoint or another upgrade in
//     progress. It answers, and the switch begins.
//  2. Freeze: the ttrpc connections stop between frames and every request
//     but Wait is answered (connfreeze.go); the exit pipeline empties and the
//     Reaper pauses, leaving later exits as zombies; the event queue is held;
//     each relay stops between two steps (io/pump.go).
//  3. The state goes to a memfd (handover.go), and the new binary checks it
//     (`upgrade-check --state-fd`) before the old one commits.
//  4. execve. The new binary finds the state in its environment, takes the
//     containers over, serves the inherited listener and connections, and
//     reaps what exited meanwhile. If it cannot, it executes the old binary
//     again, which takes the same state back.
//
// A refusal or a failure before execve thaws everything: the old shim goes
// on as if nothing happened. No step of an upgrade kills a container.

// The Shim service is the shim's own, beside the task API and Group, on the
// same root-only socket: no new socket is exposed.
const (
	shimServiceName = "io.containerd.teach.v2.Shim"
	upgradeMethod   = "Upgrade"
	statusMethod    = "Status"

	// upgradeStateEnv names the descriptor of the handed-over state;
	// upgradeFallbackEnv says why a new binary gave the state back.
	upgradeStateEnv    = "TEACH_UPGRADE_STATE_FD"
	upgradeOldEnv      = "TEACH_UPGRADE_OLD_FD"
	upgradeFallbackEnv = "TEACH_UPGRADE_FALLBACK"
)

// UpgradeRequest asks the shim to become Binary.
type UpgradeRequest struct {
	Binary string
}

// UpgradeAnswer: the switch to To began; Status tells how attempt Attempt
// ended.
type UpgradeAnswer struct {
	Attempt  int
	From, To string
}

// StatusRequest asks what the shim is, once attempt WaitFor has an outcome.
type StatusRequest struct {
	WaitFor int
}

// ShimStatus is what a shim says of itself.
type ShimStatus struct {
	Version    string
	Pid        int
	Executable string
	Last       UpgradeOutcome
}

// UpgradeOutcome is how an upgrade ended.
type UpgradeOutcome struct {
	Attempt  int
	From, To string
	Binary   string
	// Switch is how long the containers' shim was frozen: from the
	// freeze to the new binary serving.
	Switch time.Duration
	Handed string // what was handed over
	Err    string // why it did not take; empty when it did
}

// upgradeState is the shim's side of upgrades.
type upgradeState struct {
	reaper   *process.Reaper
	conns    *connFreezer
	listener int // the listening socket's descriptor

	mu       sync.Mutex
	running  bool
	attempts int
	last     UpgradeOutcome
	settled  chan struct{} // closed and replaced when last changes
}

func (u *upgradeState) settle(outcome UpgradeOutcome) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.last = outcome
	u.running = false
	if u.settled != nil {
		close(u.settled)
	}
	u.settled = make(chan struct{})
}

func registerShimService(server *ttrpc.Server, s *TaskService) {
	server.RegisterService(shimServiceName, &ttrpc.ServiceDesc{Methods: map[string]ttrpc.Method{
		upgradeMethod: method(jsonMethod(s.Upgrade)),
		statusMethod:  method(jsonMethod(s.Status)),
	}})
}

// jsonMethod carries a request and its answer as JSON in a StringValue: the
// Shim service has two small messages, not worth a protobuf package.
func jsonMethod[Req, Resp any](call func(context.Context, *Req) (*Resp, error)) func(context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	return func(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
		req := new(Req)
		if err := json.Unmarshal([]byte(in.GetValue()), req); err != nil {
			return nil, fmt.Errorf("decode the request: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		resp, err := call(ctx, req)
		if err != nil {
			return nil, err
		}
		data, err := json.Marshal(resp)
		if err != nil {
			return nil, err
		}
		return wrapperspb.String(string(data)), nil
	}
}

// Status says what the shim is, once the upgrade attempt asked for has an
// outcome. It is replayable (connfreeze.go): asked during a switch, it is
// answered by the shim that serves after it.
func (s *TaskService) Status(ctx context.Context, req *StatusRequest) (*ShimStatus, error) {
	u := &s.upgrade
	for {
		u.mu.Lock()
		if u.settled == nil {
			u.settled = make(chan struct{}) // closed by the next settle
		}
		last, settled := u.last, u.settled
		u.mu.Unlock()
		if last.Attempt >= req.WaitFor {
			exe, _ := os.Executable()
			return &ShimStatus{Version: version.Version, Pid: os.Getpid(), Executable: exe, Last: last}, nil
		}
		select {
		case <-settled:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Upgrade checks that req.Binary can take this shim over, answers, and
// switches.
func (s *TaskService) Upgrade(ctx context.Context, req *UpgradeRequest) (*UpgradeAnswer, error) {
	if !filepath.IsAbs(req.Binary) {
		return nil, fmt.Errorf("the binary to upgrade to must be an absolute path, not %q: %w", req.Binary, errdefs.ErrInvalidArgument)
	}
	u := &s.upgrade
	u.mu.Lock()
	if u.running {
		u.mu.Unlock()
		return nil, fmt.Errorf("another upgrade of this shim is in progress: %w", errdefs.ErrFailedPrecondition)
	}
	if u.conns == nil {
		u.mu.Unlock()
		return nil, fmt.Errorf("this shim serves no socket it could hand over: %w", errdefs.ErrFailedPrecondition)
	}
	u.running = true
	u.mu.Unlock()
	to, err := s.upgradeRefusal(ctx, req.Binary)
	if err != nil {
		u.mu.Lock()
		u.running = false
		u.mu.Unlock()
		return nil, err
	}
	u.mu.Lock()
	u.attempts++
	attempt := u.attempts
	u.mu.Unlock()
	// The switch waits for this answer to be written (connfreeze.go).
	go s.switchOver(UpgradeOutcome{Attempt: attempt, From: version.Version, To: to, Binary: req.Binary})
	return &UpgradeAnswer{Attempt: attempt, From: version.Version, To: to}, nil
}

// upgradeRefusal is why the shim cannot be upgraded to binary now, if it
// cannot; otherwise the binary's version.
func (s *TaskService) upgradeRefusal(ctx context.Context, binary string) (string, error) {
	if n := s.checkpointing.Load(); n > 0 {
		return "", fmt.Errorf("a checkpoint of a container is in progress; upgrade once it is done: %w", errdefs.ErrFailedPrecondition)
	}
	if s.isLeaving() {
		return "", fmt.Errorf("the shim is exiting: %w", errdefs.ErrFailedPrecondition)
	}
	info, err := checkUpgradeBinary(ctx, binary, nil)
	if err != nil {
		return "", err
	}
	if version, why := s.stateVersionNeeded(); !containsInt(info.StateVersions, version) {
		if why != "" {
			why = " (" + why + ")"
		}
		return "", fmt.Errorf("%s (version %s) takes upgrade state versions %v, and this shim's state needs version %d%s; upgrade to a binary that takes it: %w",
			binary, info.Version, info.StateVersions, version, why, errdefs.ErrFailedPrecondition)
	}
	return info.Version, nil
}

// UpgradeCheckInfo is what `upgrade-check` prints: which binary this is, and
// which upgrade states it can take over.
type UpgradeCheckInfo struct {
	Name          string
	Runtime       string
	Version       string
	StateVersions []int
}

// checkUpgradeBinary runs `binary upgrade-check`, with the state as fd 3 if
// given: the binary says what it is and, given a state, whether it can take
// it over.
func checkUpgradeBinary(ctx context.Context, binary string, state *os.File) (*UpgradeCheckInfo, error) {
	stat, err := os.Stat(binary)
	if err != nil {
		return nil, fmt.Errorf("upgrade binary %s: %w", binary, errdefs.ErrNotFound)
	}
	if !stat.Mode().IsRegular() || unix.Access(binary, unix.X_OK) != nil {
		return nil, fmt.Errorf("upgrade binary %s is not an executable file: %w", binary, errdefs.ErrInvalidArgument)
	}
	cmd := exec.CommandContext(ctx, binary, "upgrade-check")
	if state != nil {
		cmd.Args = append(cmd.Args, "--state-fd", "3")
		cmd.ExtraFiles = []*os.File{state}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	status, err := runCheck(cmd, state != nil)
	if err != nil {
		return nil, fmt.Errorf("run %s upgrade-check: %v: %w", binary, err, errdefs.ErrInvalidArgument)
	}
	var info UpgradeCheckInfo
	if jsonErr := json.Unmarshal(stdout.Bytes(), &info); jsonErr != nil || info.Runtime != RuntimeName {
		return nil, fmt.Errorf("%s is not a teach shim: `upgrade-check` answered %q: %w", binary, firstLine(stdout.String()+stderr.String()), errdefs.ErrInvalidArgument)
	}
	if status != 0 {
		return &info, fmt.Errorf("%s (version %s) refuses this shim's state: %s: %w", binary, info.Version, firstLine(stderr.String()), errdefs.ErrFailedPrecondition)
	}
	return &info, nil
}

// runCheck runs the check and returns its exit status. While the shim runs,
// the Reaper collects every child (wait4 of any pid), so it starts the
// command and hands its exit back; during a switch it is paused, and the
// command is waited for by its own pid.
func runCheck(cmd *exec.Cmd, reaperPaused bool) (int, error) {
	if reaperPaused {
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), nil
		}
		return 0, err
	}
	waiter, err := runc.Monitor.Start(cmd)
	if err != nil {
		return 0, err
	}
	return runc.Monitor.Wait(cmd, waiter)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// switchOver freezes the shim, hands its state to outcome.Binary and
// executes it. It returns only if the upgrade was called off; the shim then
// goes on.
func (s *TaskService) switchOver(outcome UpgradeOutcome) {
	u := &s.upgrade
	frozenAt := monotonicNow()
	if err := u.conns.freeze(); err != nil {
		u.conns.thaw()
		s.settleCalledOff(outcome, err)
		return
	}
	s.quiesceExits()
	s.events.hold()
	callOff := func(err error) {
		s.thawContainers()
		s.events.release()
		u.reaper.Resume()
		u.conns.thaw()
		s.settleCalledOff(outcome, err)
	}
	if s.isLeaving() {
		callOff(errors.New("the shim began exiting"))
		return
	}
	containers := s.freezeContainers()
	unlockEvents := s.lockEvents(containers)
	err := s.execNew(outcome, frozenAt, containers)
	unlockEvents()
	callOff(err)
}

// settleCalledOff records an upgrade called off, once everything is thawed.
func (s *TaskService) settleCalledOff(outcome UpgradeOutcome, err error) {
	outcome.Err = err.Error()
	log.L.WithError(err).WithField("binary", outcome.Binary).Warn("upgrade called off; the shim goes on")
	s.upgrade.settle(outcome)
	s.observeUpgrade(outcome)
}

// execNew writes the state, has the new binary check it, and executes it.
// It returns only on an error.
func (s *TaskService) execNew(outcome UpgradeOutcome, frozenAt int64, containers []containerHandover) error {
	u := &s.upgrade
	events, err := handoverEvents(s.events.queued())
	if err != nil {
		return err
	}
	exe, _ := os.Executable()
	fallback, err := unix.Open("/proc/self/exe", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("keep the old executable for a fallback: %w", err)
	}
	defer unix.Close(fallback)
	h := &shimHandover{Attempt: outcome.Attempt, OldVersion: version.Version,
		OldExecutable: exe, Fallback: fallback, FrozenAt: frozenAt, Namespace: s.namespace, Listener: u.listener,
		Conns: u.conns.handover(), Containers: containers, Events: events}
	h.StateVersion = h.stateVersion()
	if s.socket != nil {
		h.Address, h.Grouped = s.socket.address, s.socket.grouped
	}
	s.mu.Lock()
	for id := range s.joining {
		h.Joining = append(h.Joining, id)
	}
	s.mu.Unlock()
	state, err := writeHandover(h)
	if err != nil {
		return err
	}
	defer state.Close()
	if _, err := checkUpgradeBinary(context.Background(), outcome.Binary, state); err != nil {
		return err
	}
	fds := append(h.fds(), int(state.Fd()))
	setCloseOnExec(fds, false)
	env := upgradeEnv(os.Environ(), int(state.Fd()), fallback, "")
	log.L.WithFields(log.Fields{"from": version.Version, "to": outcome.To, "binary": outcome.Binary}).Info("upgrading the shim in place")
	err = unix.Exec(outcome.Binary, os.Args, env)
	setCloseOnExec(fds, true)
	return fmt.Errorf("execute %s: %w", outcome.Binary, err)
}

// quiesceExits empties the exit pipeline and leaves the Reaper paused: every
// exit reaped is published, and later ones wait, as zombies, for the next
// shim. An init's exit waits for its execs' exits, which need the Reaper:
// so the pipeline is waited for with the Reaper running, and checked again
// once it is paused.
func (s *TaskService) quiesceExits() {
	for {
		s.exits.handling.wait()
		s.upgrade.reaper.Pause()
		s.exits.drainQueue()
		if s.exits.handling.idleNow() {
			return
		}
		s.upgrade.reaper.Resume()
	}
}

func (s *TaskService) isLeaving() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leaving
}

func setCloseOnExec(fds []int, on bool) {
	for _, fd := range fds {
		if fd < 0 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			continue
		}
		if on {
			flags |= unix.FD_CLOEXEC
		} else {
			flags &^= unix.FD_CLOEXEC
		}
		_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags)
	}
}

// upgradeEnv is the environment of the binary executed: the shim's own,
// with the descriptors of the state and of the old executable, and why the
// new binary gave up, if it did.
func upgradeEnv(environ []string, stateFd, oldFd int, fallbackReason string) []string {
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if name != upgradeStateEnv && name != upgradeFallbackEnv && name != upgradeOldEnv {
			env = append(env, kv)
		}
	}
	env = append(env, upgradeStateEnv+"="+strconv.Itoa(stateFd), upgradeOldEnv+"="+strconv.Itoa(oldFd))
	if fallbackReason != "" {
		env = append(env, upgradeFallbackEnv+"="+fallbackReason)
	}
	return env
}

func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// inheritedState is what an upgrade handed to this process: the state, the
// descriptors it came in and of the old executable, and, when this is the
// old binary again, why the new one gave it back.
type inheritedState struct {
	state          *shimHandover
	stateFd, oldFd int
	fallbackReason string
}

// inheritedHandover reads the state an earlier shim handed to this process,
// if it was executed by an upgrade. The variables are cleared, so that
// nothing this shim starts sees them.
func inheritedHandover() (inheritedState, error) {
	in := inheritedState{stateFd: -1, oldFd: -1}
	value, ok := os.LookupEnv(upgradeStateEnv)
	if !ok {
		return in, nil
	}
	in.fallbackReason = os.Getenv(upgradeFallbackEnv)
	if fd, err := strconv.Atoi(os.Getenv(upgradeOldEnv)); err == nil {
		in.oldFd = fd
	}
	for _, name := range []string{upgradeStateEnv, upgradeFallbackEnv, upgradeOldEnv} {
		os.Unsetenv(name)
	}
	fd, err := strconv.Atoi(value)
	if err != nil {
		return in, fmt.Errorf("%s=%q is not a descriptor", upgradeStateEnv, value)
	}
	in.stateFd = fd
	in.state, err = readHandover(fd)
	return in, err
}

// fallBack executes the old binary again, with the same state, when this one
// cannot take over. It returns only if that fails too, or if there is no
// old binary to go back to (no upgrade started this process): the
// containers then go on running, without their shim; see docs/upgrade.md.
func (in inheritedState) fallBack(reason error) error {
	// A binary that is itself the fallback does not go back again: the two
	// would execute each other for ever.
	if in.oldFd < 0 || in.stateFd < 0 || in.fallbackReason != "" {
		return reason
	}
	log.L.WithError(reason).Error("the new shim binary cannot take over; executing the old one again")
	fds := []int{in.stateFd, in.oldFd}
	if in.state != nil {
		fds = append(fds, in.state.fds()...)
	}
	setCloseOnExec(fds, false)
	old := fmt.Sprintf("/proc/self/fd/%d", in.oldFd)
	why := fmt.Sprintf("%s (version %s) could not take over: %v", mustExecutable(), version.Version, reason)
	err := unix.Exec(old, os.Args, upgradeEnv(os.Environ(), in.stateFd, in.oldFd, why))
	return fmt.Errorf("take over after an upgrade: %v; and execute the old binary again: %w", reason, err)
}

func mustExecutable() string {
	exe, _ := os.Executable()
	return exe
}

// settleInherited records how the upgrade that started this process ended,
// and closes what only the switch needed.
func (s *TaskService) settleInherited(in inheritedState) {
	h := in.state
	outcome := UpgradeOutcome{Attempt: h.Attempt, From: h.OldVersion, To: version.Version, Binary: mustExecutable(),
		Switch: time.Duration(monotonicNow() - h.FrozenAt), Handed: h.summary()}
	if in.fallbackReason != "" {
		outcome.To, outcome.Err = h.OldVersion, in.fallbackReason
	}
	s.upgrade.mu.Lock()
	s.upgrade.attempts = h.Attempt
	s.upgrade.mu.Unlock()
	s.upgrade.settle(outcome)
	unix.Close(in.stateFd)
	unix.Close(in.oldFd)
	log.L.WithFields(log.Fields{"from": outcome.From, "to": outcome.To, "switch": outcome.Switch, "handed": outcome.Handed, "err": outcome.Err}).Info("shim upgraded in place")
	s.observeUpgrade(outcome)
}

// summary says what was handed over.
func (h *shimHandover) summary() string {
	processes, terminals, loggers, replayed := 0, 0, 0, 0
	for _, c := range h.Containers {
		for _, p := range append([]*process.Handover{c.Init}, c.Execs...) {
			processes++
			if p.Relay != nil && p.Relay.Terminal != nil {
				terminals++
			}
			if p.Relay != nil && p.Relay.Logger != nil && !p.Relay.Logger.Exited {
				loggers++
			}
		}
	}
	for _, c := range h.Conns {
		if len(c.Replay) > 0 {
			replayed++
		}
	}
	var held string
	if terminals+loggers > 0 {
		held = fmt.Sprintf(" (%d on a terminal, %d logging programs)", terminals, loggers)
	}
	return fmt.Sprintf("%d containers, %d processes%s, %d connections (%d with requests to answer), %d events",
		len(h.Containers), processes, held, len(h.Conns), replayed, len(h.Events))
}

// observeUpgrade tells the shim's observer (the journal) of an upgrade.
func (s *TaskService) observeUpgrade(outcome UpgradeOutcome) {
	s.observer.Upgraded(observe.Upgrade{From: outcome.From, To: outcome.To, Binary: outcome.Binary,
		Switch: outcome.Switch, Handed: outcome.Handed, Err: outcome.Err})
}
