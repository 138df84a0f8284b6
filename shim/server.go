package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/fifo"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/process"
)

// runServer is the long-lived shim server that `start` launched: it serves
// the task API (and the Group service, group.go) on the socket `start`
// handed over as fd 3, until containerd calls Shutdown (or a signal ends it).
//
// containerd's pkg/shim offers this loop (RunShim); the shim has its own
// because pkg/shim imports the task API v3 package, which carries gRPC
// bindings next to its ttrpc ones, and with them gRPC, net/http and
// crypto/tls: two thirds of the binary, and a third of an idle shim's
// private memory, for a server that speaks only ttrpc (docs/benchmarks.md,
// History).
func runServer(flags launchFlags) error {
	if flags.namespace == "" {
		return errors.New("the shim server needs -namespace")
	}
	tuneRuntime()
	ctx := namespaces.WithNamespace(context.Background(), flags.namespace)
	// The shim's context is not the one WithShutdown returns: that one has
	// a Done of its own, and a context derived from a Done the context
	// package does not know needs a goroutine to watch it, for as long as
	// it lives: one per ttrpc connection, one per event forwarded. Nothing
	// waits for the shim's context to end; the process ends instead.
	_, sd := shutdown.WithShutdown(ctx)
	defer sd.Shutdown()

	// A shim executed by an in-place upgrade takes over the state the
	// shim before it handed over (upgrade.go). Until it serves, whatever
	// fails gives the state back: fallBack executes the old binary again
	// (and, in a shim no upgrade started, only returns the error).
	inherited, err := inheritedHandover()
	if err != nil {
		return inherited.fallBack(err)
	}

	// Container processes whose parent dies (runc's init after `runc
	// create`, a daemon's double fork) are re-parented to the shim, so
	// the Reaper sees their exits.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return inherited.fallBack(fmt.Errorf("become a child subreaper: %w", err))
	}
	ctx, err = logToContainerd(ctx, flags.debug, inherited.state != nil)
	if err != nil {
		return inherited.fallBack(err)
	}
	handleSignals(ctx, sd)

	publisher, err := newEventForwarder(os.Getenv("TTRPC_ADDRESS"))
	if err != nil {
		return inherited.fallBack(err)
	}
	defer publisher.Close()
	// The Reaper takes SIGCHLD before the first runc command; the journal
	// then stands between go-runc and it (openJournals).
	reaper := process.NewReaper()
	service := NewTaskService(flags.namespace, NewEventSink(ctx, publisher), sd, openJournals(flags.namespace, reaper, inherited.state != nil))
	service.upgrade.reaper = reaper
	if address := os.Getenv(shimAddressEnv); address != "" {
		service.socket = &serverSocket{address: address, grouped: os.Getenv(shimGroupedEnv) != ""}
	}
	listener, releaseInherited, err := openTaskListener(inherited.state)
	if err == nil && inherited.state != nil {
		err = takeOverFault()
	}
	if err != nil {
		return inherited.fallBack(err)
	}
	// The shim takes over: the handed-over sockets' old numbers, which the
	// old binary would have needed, are closed.
	releaseInherited()
	if inherited.state != nil {
		// Nothing of the restore can fail: what could (the state, the
		// sockets) was checked above, while the old binary could still
		// take everything back. It runs before the Reaper: a logging
		// program's exit must reach its relay (Reaper.Adopt).
		service.restore(inherited.state)
	}
	reaper.Run() // with, after an upgrade, the exits that came during the switch
	go service.exits.Run(reaper.Exits())

	server, err := serveTaskAPI(ctx, sd, service, listener)
	if err != nil {
		return err
	}
	if inherited.state != nil {
		service.settleInherited(inherited)
	}
	log.G(ctx).WithField("pid", os.Getpid()).Debug(serverStartedMessage)

	<-sd.Done()
	// The folder of the shim's pidfd sockets goes with the shim
	// (process/pidfdsocket.go).
	process.RemovePidfdSockets()
	// Shutdown removed the socket already; a signal did not.
	service.socket.remove(ctx)
	// The last answers (Shutdown's, and those to other containers of a
	// group) may still be on their way to containerd.
	listener.freezer.awaitAnswered(answerLimit)
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	server.Shutdown(closeCtx)
	// The TaskExit and TaskDelete of the last container may still be
	// queued: the shim exits once they reached containerd.
	flushCtx, cancelFlush := context.WithTimeout(ctx, eventFlushLimit)
	defer cancelFlush()
	service.events.Flush(flushCtx)
	return nil
}

// answerLimit bounds how long the exiting shim waits for the answers to the
// requests it read: a request stuck behind a runc that does not return
// must not keep a shim with no container alive.
const answerLimit = 30 * time.Second

// openTaskListener is the socket the shim serves: the one `start` handed
// over as fd 3, or the one, and the connections, an upgrade handed over.
//
// The net package serves copies of the descriptors (netCopy). Those under
// the numbers the state names are closed by release, once the shim has
// committed to taking over: until then the old binary may have to be
// executed again, and must find them where the state says.
func openTaskListener(inherited *shimHandover) (_ *connectionLimiter, release func(), err error) {
	fd, name := 3, "socket from start (fd 3)"
	if inherited != nil {
		fd, name = inherited.Listener, fmt.Sprintf("socket handed over (fd %d)", inherited.Listener)
	}
	listener, err := netCopy(fd, name, net.FileListener)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	originals := []int{fd}
	limited := limitConnections(listener)
	if inherited != nil {
		if err := limited.freezer.inherit(inherited.Conns); err != nil {
			listener.Close()
			return nil, nil, err
		}
		for _, c := range inherited.Conns {
			originals = append(originals, c.Fd)
		}
	}
	return limited, func() {
		for _, fd := range originals {
			unix.Close(fd)
		}
	}, nil
}

// netCopy makes a listener or a connection (net.FileListener,
// net.FileConn) of a copy of fd, and leaves fd as it was. The net package
// copies the file it is given; the file given is itself of a copy, closed
// once used, for an *os.File owns its descriptor and would close it.
func netCopy[T any](fd int, name string, of func(*os.File) (T, error)) (T, error) {
	var none T
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return none, err
	}
	file := os.NewFile(uintptr(dup), name)
	defer file.Close()
	return of(file)
}

// serveTaskAPI serves the task service, under both its names (plugin.go),
// and the shim's own Group and Shim services. A server that fails ends the
// shim.
func serveTaskAPI(ctx context.Context, sd shutdown.Service, service *TaskService, listener *connectionLimiter) (*ttrpc.Server, error) {
	services := taskServices{service}
	server, err := ttrpc.NewServer(ttrpc.WithUnaryServerInterceptor(services.UnaryServerInterceptor()))
	if err != nil {
		return nil, fmt.Errorf("create ttrpc server: %w", err)
	}
	if err := services.RegisterTTRPC(server); err != nil {
		return nil, err
	}
	registerGroupService(server, service)
	registerShimService(server, service)
	service.upgrade.mu.Lock()
	service.upgrade.conns, service.upgrade.listener = listener.freezer, connFd(listener.Listener)
	service.upgrade.mu.Unlock()
	go func() {
		if err := server.Serve(ctx, listener); err != nil && !errors.Is(err, ttrpc.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			log.G(ctx).WithError(err).Error("ttrpc server failed")
			sd.Shutdown()
		}
	}()
	return server, nil
}

// serverStartedMessage is logged at debug level once the server serves: a
// shim started by a containerd at debug level says so in containerd's log.
const serverStartedMessage = "shim server serving the task API"

// tuneRuntime sets the Go runtime for a long-lived daemon that is idle almost
// all the time.
//
// One P is enough for the shim server: its Go work is small (decode an RPC,
// route an exit, forward an event) and its copying of stdio waits in the
// kernel. The server is started with GOMAXPROCS=1 in its environment
// (oneProcessorEnv), so the runtime has one P from its first instruction;
// the call here only covers a server started some other way.
//
// The collector runs at a GC percent of 50, not Go's 100. The percent sets
// both how far the heap grows past what is live before the next collection
// and the heap of the first one (4 MiB at 100, 2 MiB at 50). A shim with one
// container allocates under 1 MiB and never collects at either setting, and
// a first collection costs more than it frees there: it leaves the
// runtime's own bookkeeping resident. A shim that runs many containers (a
// group) or lives long collects at any setting, and then keeps about 1.5
// times its live heap resident instead of 2: 50 grouped containers, 14.6 ->
// 13.3 MiB, the idle shims unchanged. A forced collection with
// debug.FreeOSMemory (pkg/shim forces one every 30s) made an idle shim
// bigger (docs/benchmarks.md, History). The percent is set here, not as GOGC
// in the environment: the server's environment is runc's too.
func tuneRuntime() {
	runtime.GOMAXPROCS(1)
	debug.SetGCPercent(gcPercent)
	restoreChildGOMAXPROCS()
}

// gcPercent is the shim server's GC percent (tuneRuntime).
const gcPercent = 50

// logToContainerd sends the shim's log to the FIFO named "log" in the
// bundle (the server's working folder), which containerd reads and copies
// into its own log. Its fd is also made the shim's stderr, so a panic's
// stack reaches containerd's log too.
//
// A shim executed by an upgrade has the FIFO as its stderr already; opening it
// again would wait for a reader, which a containerd that is down is not.
func logToContainerd(ctx context.Context, debug, upgraded bool) (context.Context, error) {
	var logFifo io.Writer = os.Stderr
	if !upgraded {
		f, err := fifo.OpenFifoDup2(ctx, "log", unix.O_WRONLY, 0o700, int(os.Stderr.Fd()))
		if err != nil {
			return ctx, fmt.Errorf("open the log fifo: %w", err)
		}
		logFifo = f
	}
	logger := log.G(ctx)
	// The text format containerd's log.SetFormat(log.TextFormat) sets, set
	// here: SetFormat also builds slog handlers, whose code would then be
	// in the binary, resident in every shim.
	logger.Logger.SetFormatter(&logrus.TextFormatter{TimestampFormat: log.RFC3339NanoFixed, FullTimestamp: true})
	if debug {
		_ = log.SetLevel(log.DebugLevel)
	}
	logger.Logger.SetOutput(logFifo)
	// containerd copies the lines as they are into its own log, where every
	// shim writes: the pid says which shim a line is from.
	return log.WithLogger(ctx, logger.WithFields(log.Fields{"runtime": RuntimeName, "pid": os.Getpid()})), nil
}

// handleSignals: SIGTERM and SIGINT end the shim as Shutdown would; SIGUSR1
// writes every goroutine's stack to the log, to look inside a hung shim;
// SIGPIPE is caught and dropped: the shim's stderr is the log FIFO, and a Go
// program dies of SIGPIPE when a write to fd 1 or 2 finds no reader, as when
// containerd restarts. (Caught, not ignored: an ignored signal stays ignored
// in the processes the shim starts, runc and the container.)
func handleSignals(ctx context.Context, sd shutdown.Service) {
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, unix.SIGTERM, unix.SIGINT, unix.SIGUSR1, unix.SIGPIPE)
	go func() {
		for s := range signals {
			switch s {
			case unix.SIGPIPE:
			case unix.SIGUSR1:
				dumpStacks(ctx)
			default:
				log.G(ctx).WithField("signal", s).Info("shim ends on signal")
				sd.Shutdown()
			}
		}
	}()
}

func dumpStacks(ctx context.Context) {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	// The same markers as containerd's own shims, so tools that find a
	// shim's stacks in containerd's log find ours too.
	log.G(ctx).Infof("=== BEGIN goroutine stack dump ===\n%s\n=== END goroutine stack dump ===", buf)
}
