package reliability

import (
	"fmt"
	"strings"
)

// Promise is one thing the shim promises to hold under stress, and the tests
// that hold it to it. The document lists every promise with the command that
// checks it, and, where a reliability scenario measures it, that scenario's
// result in the run the document comes from.
type Promise struct {
	What     string
	Scenario string // the scenario heading whose rows measure it; "" if none does
	Checks   []Check
}

// Check is one test: a package of this repository and a test name as
// `go test -run` takes it (a top-level function, maybe a subtest path).
type Check struct {
	Package string // "integration", "shim", "process", "io"
	Test    string
}

// Command is how to run the check on its own.
func (c Check) Command() string {
	return fmt.Sprintf("go test ./%s/ -run '^%s$'", c.Package, strings.ReplaceAll(c.Test, "/", "$/^"))
}

// Promises are the shim's reliability promises, each with its checks.
var Promises = []Promise{
	{
		What:     "containerd stopped (SIGTERM) or killed (SIGKILL) while containers run: output written meanwhile is not lost, and the tasks answer again afterwards",
		Scenario: "containerd stopped or killed under running containers",
		Checks:   []Check{{"integration", "TestReliabilityDaemonOutage"}},
	},
	{
		What:   "dockerd restarted with live-restore: the container keeps running, exec and stop work on it afterwards",
		Checks: []Check{{"integration", "TestDocker/containerd-v2.4.2/teach/live-restore"}},
	},
	{
		What:     "shim killed with SIGKILL: the shim's delete action kills the container and removes runc state, mounts and socket",
		Scenario: "shim killed with SIGKILL",
		Checks:   []Check{{"integration", "TestReliabilityShimKilled"}},
	},
	{
		What:     "runc failing mid-way (create, start, exec): the caller gets runc's reason, nothing is left, the shim stays usable",
		Scenario: "runc failing mid-way",
		Checks:   []Check{{"integration", "TestReliabilityRuncFailures"}},
	},
	{
		What:     "a runc command that hangs: every call has a deadline; the error names the command that hung; the command is killed",
		Scenario: "runc hanging",
		Checks:   []Check{{"integration", "TestReliabilityRuncHangs"}, {"process", "TestRuncCallKillsACommandPastItsDeadline"}},
	},
	{
		What:     "1000 processes that exit at once (before Start returns), tasks and execs: no exit lost, each with its own status",
		Scenario: "early exits",
		Checks:   []Check{{"integration", "TestReliabilityEarlyExits"}, {"shim", "TestExitBeforeThePidIsKnownIsKeptByTheWindow"}},
	},
	{
		What:     "100 concurrent execs, 50 containers at once with a shim each and 50 in one group's shim: every status and output right, the shims back to their baseline (memory included)",
		Scenario: "concurrent execs and containers",
		Checks:   []Check{{"integration", "TestReliabilityConcurrency"}, {"integration", "TestManyConcurrentExecs"}, {"io", "TestOutputReachesAReaderThatOpensLate"}},
	},
	{
		What:     "1 GiB of stdout to a slow reader, and output whose reader went away: memory bounded, every byte to the slow reader, Kill still works",
		Scenario: "stdout back-pressure",
		Checks:   []Check{{"integration", "TestReliabilityBackPressure"}},
	},
	{
		What:     "2000 create/start/exec/kill/delete cycles: no process, zombie, shim descriptor (pidfds included), mount, FIFO, socket or goroutine left",
		Scenario: "create/start/exec/kill/delete soak",
		Checks:   []Check{{"integration", "TestReliabilitySoak"}},
	},
	{
		What:     "exits attributed by pidfd (runc --pidfd-socket), not by a pid the kernel may reuse; Kill through the pidfd; wait4 pid matching when runc or the kernel gives no pidfd",
		Scenario: "exit attribution by pidfd",
		Checks: []Check{{"integration", "TestReliabilityExitAttribution"}, {"process", "TestPidfdOwnsOnlyTheExitOfItsProcess"},
			{"shim", "TestAnEarlierExitOfAReusedPidIsNotClaimed"}},
	},
	{
		What:     "events in containerd's order (TaskCreate < TaskStart < TaskExit < TaskDelete per process, execs' exits before the init's, TaskOOM before the exit it caused), checked by the shim as it publishes them",
		Scenario: "event order with execs",
		Checks: []Check{{"integration", "TestReliabilityEventOrder"}, {"integration", "TestOOMKillIsReportedBeforeTheExit"},
			{"shim", "TestOrderCheckerNamesIllegalSequences"}, {"shim", "TestOrderCheckerAcceptsLegalSequences"}},
	},
	{
		What:     "the shim's socket is root's alone",
		Scenario: "the shim's socket is root's alone",
		Checks:   []Check{{"integration", "TestReliabilitySocketAccess"}},
	},
	{
		What:     "no shim descriptor leaks into the container (/proc/1/fd holds 0, 1, 2)",
		Scenario: "no shim descriptor in the container",
		Checks:   []Check{{"integration", "TestReliabilityNoDescriptorLeaks"}},
	},
	{
		What:     "ids validated (and the validation fuzzed); no symlink followed out of the bundle",
		Scenario: "bad ids and symlinks in the bundle",
		Checks:   []Check{{"integration", "TestReliabilityBadInput"}, {"shim", "TestValidateID"}, {"shim", "FuzzValidateID"}},
	},
	{
		What:     "no elevated oom_score_adj kept: the shim at containerd's plus one, a container at its spec's",
		Scenario: "no elevated oom_score_adj kept",
		Checks:   []Check{{"integration", "TestReliabilityOOMScore"}},
	},
	{
		What: "text a container or runc controls (command lines, file names, runc's messages) reaches the terminal escaped: inspect's and trace's text hold no control byte, their --json the exact strings",
		Checks: []Check{{"integration", "TestInspectAndTraceEscapeWhatTheContainerWrote"}, {"printable", "FuzzString"},
			{"inspect", "TestWriteTextEscapesWhatTheContainerControls"}, {"trace", "TestTimelineEscapesWhatItDidNotWrite"}},
	},
	{
		What: "100 000 Kill requests (signal 0, harmless and refused signals) leave the shim's memory flat; an exit is blamed only on a kill delivered after its process was created",
		Checks: []Check{{"integration", "TestShimMemoryStaysFlatOverManyKills"}, {"integration", "TestAnExecIsNotBlamedForAnEarlierKill"},
			{"shim", "TestKillRecordKeepsTheLatestOfEachSignal"}, {"shim", "TestAnExecIsNotBlamedForAKillBeforeIt"}},
	},
	{
		What:   "a config.json over 16 MiB is refused with InvalidArgument, unread; after a Create with a large one, the shim's memory is back near its baseline",
		Checks: []Check{{"integration", "TestAHugeConfigDoesNotStayInTheShim"}, {"shim", "TestReadBundleSpecCapsWhatItReads"}},
	},
	{
		What: "a container in an OOM loop (1000 OOM kills, drawn in at most two lines a second): trace still tells its Create, its Start and the kernel's count of OOM kills; a journal's first lines survive any rotation",
		Checks: []Check{{"integration", "TestTraceKeepsTheStartOfAnOOMLoop"}, {"journal", "TestAFloodIsCountedNotWritten"},
			{"journal", "TestTheFirstLinesStayThroughRotations"}, {"trace", "TestTimelineOfAFloodKeepsItsStartAndCount"}},
	},
	{
		What:   "journals nobody can ask about are pruned: every journal of a containerd whose state folder is gone, a journal of a forgotten container an hour after its last line",
		Checks: []Check{{"integration", "TestTheJournalsOfARemovedContainerdArePruned"}, {"journal", "TestPruneRemovesWhatNobodyCanAskAbout"}},
	},
	{
		What: "the journal keeps a log URI's query keys, never their values; a user who may not read the journals is told so, not that there is none",
		Checks: []Check{{"integration", "TestTheJournalKeepsNoLogURIValues"}, {"journal", "FuzzWithoutQueryValues"},
			{"integration", "TestTraceSaysAUserMayNotReadTheJournal"}},
	},
	{
		What: "200 clients that each begin a 4 MiB ttrpc frame and stall: the shim's memory stays bounded, it hangs up on them, and containerd's connection is answered throughout",
		Checks: []Check{{"integration", "TestStalledFramesNeitherGrowTheShimNorStopContainerd"}, {"shim", "TestConnectionLimiterWaitsForAFreeSlot"},
			{"shim", "TestConnectionLimiterFreesTheSlotOfAProvenConnection"}, {"shim", "TestFrameReaderFollowsFrameBoundaries"}},
	},
	{
		What: "a pidfd that runc init sends late, however slow the machine, never fails a create or exec; a runc that connects and sends none fails it with an error naming the pidfd, leaving nothing; the pidfd socket is root's alone",
		Checks: []Check{{"integration", "TestPidfdSentLate"}, {"integration", "TestPidfdNeverSent"}, {"integration", "TestPidfdSocketIsRootsAlone"},
			{"process", "TestPidfdSocketTakesThePidfdOfEveryLegitimateSender"}, {"process", "TestPidfdSocketSenderThatSendsNothingIsAnError"}},
	},
	{
		What: "no lock held across a runc command: an exec whose runc hangs holds up no other exec, State or Pids of its container; an init that dies while an exec starts reads running until that start is over, and every exec's exit comes before the init's",
		Checks: []Check{{"integration", "TestExecStartsDoNotWaitForEachOther"}, {"integration", "TestInitDiesWhileAnExecStarts"},
			{"shim", "TestInflightWaitsForEveryOperation"}},
	},
	{
		What: "the containers of one group share one shim, however many start at once and while the group's shim is leaving",
		Checks: []Check{{"integration", "TestGroupStartedAllAtOnce"}, {"integration", "TestGroupStartWhileItsShimLeaves"},
			{"shim", "TestConcurrentStartsOfOneGroupLaunchOneShim"}, {"shim", "TestStartWhileTheGroupShimDecidesToLeave"}},
	},
}

// writePromises renders the promises as a table: what, checked by, and the
// result of the scenario's rows in this run.
func writePromises(b *strings.Builder, scenarios []scenarioRows) {
	results := map[string]string{}
	for _, sc := range scenarios {
		count := map[string]int{}
		for _, r := range sc.rows {
			count[r.Result]++
		}
		results[sc.name] = fmt.Sprintf("[%d of %d rows passed](#%s)", count["pass"], len(sc.rows), anchor(sc.name))
	}
	b.WriteString("## Promises and the tests that check them\n\n| promise | checked by | this run |\n|---|---|---|\n")
	for _, p := range Promises {
		var checks []string
		for _, c := range p.Checks {
			checks = append(checks, "`"+c.Command()+"`")
		}
		result := "not a scenario of this run: runs in `make test`"
		if p.Scenario != "" {
			if r, ok := results[p.Scenario]; ok {
				result = r
			} else {
				result = "no rows in this run"
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s |\n", escape(p.What), strings.Join(checks, "<br>"), result)
	}
	b.WriteString("\n")
}
