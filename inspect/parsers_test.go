package inspect

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseStatus(t *testing.T) {
	s, err := parseStatus(readFixture(t, "status-container-init.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := procStatus{Name: "sleep", State: "S (sleeping)", PPID: 24533, NSPID: []int{24628, 1}, RSSKiB: 1380}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("parseStatus = %+v, want %+v", s, want)
	}
	if s.zombie() {
		t.Errorf("a sleeping process counted as a zombie")
	}

	z, err := parseStatus(readFixture(t, "status-zombie.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !z.zombie() || z.PPID != 4200 || z.RSSKiB != 0 {
		t.Errorf("zombie status = %+v, want a zombie of parent 4200 without VmRSS", z)
	}
}

func TestParseStatusRefusesBrokenInput(t *testing.T) {
	for _, input := range []string{
		"",
		"Name:\tsleep\n",               // no PPid
		"Name:\tsleep\nPPid:\tseven\n", // not a number
		"Name:\tsleep\nPPid:\t1\nNSpid:\t1 x\n",
	} {
		if s, err := parseStatus([]byte(input)); err == nil {
			t.Errorf("parseStatus(%q) = %+v, want an error", input, s)
		}
	}
}

func TestSessionID(t *testing.T) {
	for stat, want := range map[string]int{
		"24533 (containerd-shim) S 1 24533 24533 0 -1 4194560": 24533,
		"7 (a) b (c)) S 1 2 3 0":                               3,
		"7 (no closing":                                        -1,
		"7 (short) S 1":                                        -1,
	} {
		if got := sessionID([]byte(stat)); got != want {
			t.Errorf("sessionID(%q) = %d, want %d", stat, got, want)
		}
	}
}

func TestParseNamespaceLink(t *testing.T) {
	inode, err := parseNamespaceLink("pid", "pid:[4026532764]")
	if err != nil || inode != 4026532764 {
		t.Errorf("parseNamespaceLink = %d, %v; want 4026532764", inode, err)
	}
	for _, link := range []string{"mnt:[4026532764]", "pid:4026532764", "pid:[]", "pid:[-1]", "pid:[12"} {
		if _, err := parseNamespaceLink("pid", link); err == nil {
			t.Errorf("parseNamespaceLink(pid, %q) succeeded, want an error", link)
		}
	}
}

func TestParseProcCgroupV1(t *testing.T) {
	paths, err := parseProcCgroup(readFixture(t, "cgroup-v1.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 10 || paths[0] != (CgroupPath{Controllers: "name=systemd", Path: "/default/demo"}) {
		t.Fatalf("parseProcCgroup = %+v", paths)
	}
	want := cgroupFileSet{
		memory:      "/sys/fs/cgroup/memory/default/demo/memory.usage_in_bytes",
		memoryLimit: "/sys/fs/cgroup/memory/default/demo/memory.limit_in_bytes",
		pids:        "/sys/fs/cgroup/pids/default/demo/pids.current",
		pidsLimit:   "/sys/fs/cgroup/pids/default/demo/pids.max",
		cpuQuota:    "/sys/fs/cgroup/cpu/default/demo/cpu.cfs_quota_us",
		cpuPeriod:   "/sys/fs/cgroup/cpu/default/demo/cpu.cfs_period_us",
		oomKills:    "/sys/fs/cgroup/memory/default/demo/memory.oom_control",
		freezer:     "/sys/fs/cgroup/freezer/default/demo/freezer.state",
	}
	if files := cgroupFiles(1, paths); files != want {
		t.Errorf("v1 files:\n%+v\nwant\n%+v", files, want)
	}
}

func TestParseProcCgroupV2(t *testing.T) {
	paths, err := parseProcCgroup(readFixture(t, "cgroup-v2.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := cgroupFileSet{
		memory:      "/sys/fs/cgroup/default/demo/memory.current",
		memoryLimit: "/sys/fs/cgroup/default/demo/memory.max",
		pids:        "/sys/fs/cgroup/default/demo/pids.current",
		pidsLimit:   "/sys/fs/cgroup/default/demo/pids.max",
		cpuMax:      "/sys/fs/cgroup/default/demo/cpu.max",
		oomKills:    "/sys/fs/cgroup/default/demo/memory.events",
		freezer:     "/sys/fs/cgroup/default/demo/cgroup.events",
	}
	if files := cgroupFiles(2, paths); files != want {
		t.Errorf("v2 files:\n%+v\nwant\n%+v", files, want)
	}
}

func TestCgroupFilesOfCombinedV1Controllers(t *testing.T) {
	// Some hosts mount memory with other controllers; the folder is still
	// named after each one (a symlink), so memory's is used.
	files := cgroupFiles(1, []CgroupPath{{Controllers: "cpu,memory", Path: "/x"}})
	if files.memory != "/sys/fs/cgroup/memory/x/memory.usage_in_bytes" || files.cpuQuota != "/sys/fs/cgroup/cpu/x/cpu.cfs_quota_us" || files.pids != "" {
		t.Errorf("combined controllers: %+v", files)
	}
}

func TestParseProcCgroupRefusesBrokenLines(t *testing.T) {
	for _, input := range []string{"memory:/x\n", "x:memory:/x\n"} {
		if _, err := parseProcCgroup([]byte(input)); err == nil {
			t.Errorf("parseProcCgroup(%q) succeeded", input)
		}
	}
}

func TestParseCgroupNumber(t *testing.T) {
	for input, want := range map[string]int64{
		"417792\n":              417792,
		"max\n":                 0,
		"9223372036854771712\n": 0, // v1's "no limit"
	} {
		if got, err := parseCgroupNumber(input); err != nil || got != want {
			t.Errorf("parseCgroupNumber(%q) = %d, %v; want %d", input, got, err, want)
		}
	}
	if _, err := parseCgroupNumber("-1"); err == nil {
		t.Errorf("parseCgroupNumber(-1) succeeded")
	}
}

func TestParseUnixSockets(t *testing.T) {
	sockets, err := parseUnixSockets(readFixture(t, "unix-sockets.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []unixSocket{
		{inode: 10609774, listening: true, path: "/run/containerd/s/083afc398704ad232711da137c10cc5a6a5a71938ac86b05f86c0e62efdb95aa"},
		{inode: 10609787, path: "/run/containerd/s/083afc398704ad232711da137c10cc5a6a5a71938ac86b05f86c0e62efdb95aa"},
		{inode: 10611167},
		{inode: 9876, listening: true, path: "@/containerd-shim/abstract.sock"},
		{inode: 5555, listening: true, path: "/tmp/a folder/with space.sock"},
	}
	if !reflect.DeepEqual(sockets, want) {
		t.Errorf("parseUnixSockets =\n%+v\nwant\n%+v", sockets, want)
	}
}

func TestParseOSRelease(t *testing.T) {
	for input, want := range map[string]string{
		"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n": "Debian GNU/Linux 12 (bookworm)",
		"NAME=Alpine\n": "Alpine",
		"# comment\nPRETTY_NAME='Single quoted'\n": "Single quoted",
		"garbage": "",
	} {
		if got := parseOSRelease([]byte(input)); got != want {
			t.Errorf("parseOSRelease(%q) = %q, want %q", input, got, want)
		}
	}
}

func TestParseRuncState(t *testing.T) {
	var st RuncState
	err := parseRuncState([]byte(`{"ociVersion":"1.2.1","id":"demo","pid":24628,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-11-30T00:46:09Z","owner":""}`), &st)
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != 24628 || st.Status != "running" || st.Bundle != "/b" || st.Rootfs != "/b/rootfs" {
		t.Errorf("parseRuncState = %+v", st)
	}
	if err := parseRuncState([]byte("container does not exist"), &st); err == nil {
		t.Errorf("parseRuncState of an error message succeeded")
	}
}

func TestCheckName(t *testing.T) {
	for _, name := range []string{"demo", "moby-1a2b3c", "a.b_c"} {
		if err := checkName("id", name); err != nil {
			t.Errorf("checkName(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b", "../etc", "a\x00b"} {
		if err := checkName("id", name); err == nil {
			t.Errorf("checkName(%q) succeeded", name)
		}
	}
}

func TestParseArgs(t *testing.T) {
	opts, err := parseArgs([]string{"-n", "moby", "abc", "--json", "--state", "/tmp/s"})
	want := options{namespace: "moby", id: "abc", stateDir: "/tmp/s", json: true}
	if err != nil || opts != want {
		t.Errorf("parseArgs = %+v, %v; want %+v", opts, err, want)
	}
	opts, err = parseArgs([]string{"abc"})
	if err != nil || opts != (options{namespace: "default", id: "abc"}) {
		t.Errorf("parseArgs(abc) = %+v, %v", opts, err)
	}
	for _, args := range [][]string{nil, {"a", "b"}, {"--no-such-flag", "a"}, {"-n"}} {
		if _, err := parseArgs(args); err == nil {
			t.Errorf("parseArgs(%q) succeeded", args)
		}
	}
}

func TestShimAddress(t *testing.T) {
	bundle := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(bundle, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := shimAddress(bundle); err == nil {
		t.Errorf("shimAddress of an empty bundle succeeded")
	}
	write("address", "unix:///run/containerd/s/from-address\n")
	if got, err := shimAddress(bundle); err != nil || got != "unix:///run/containerd/s/from-address" {
		t.Errorf("shimAddress with an address file = %q, %v", got, err)
	}
	write("bootstrap.json", `{"version":3,"address":"unix:///run/containerd/s/from-bootstrap","protocol":"ttrpc"}`)
	if got, err := shimAddress(bundle); err != nil || got != "unix:///run/containerd/s/from-bootstrap" {
		t.Errorf("shimAddress with bootstrap.json = %q, %v; containerd's record comes first", got, err)
	}
}

func TestParseCPULimits(t *testing.T) {
	for input, want := range map[string][2]int64{
		"max 100000\n":   {0, 100000},
		"50000 100000\n": {50000, 100000},
	} {
		quota, period, err := parseCPUMax(input)
		if err != nil || quota != want[0] || period != want[1] {
			t.Errorf("parseCPUMax(%q) = %d, %d, %v; want %d, %d", input, quota, period, err, want[0], want[1])
		}
	}
	if _, _, err := parseCPUMax("50000\n"); err == nil {
		t.Error("parseCPUMax of one number succeeded")
	}
	for input, want := range map[string]int64{"-1\n": 0, "50000\n": 50000} {
		if got, err := parseCPUQuota(input); err != nil || got != want {
			t.Errorf("parseCPUQuota(%q) = %d, %v; want %d", input, got, err, want)
		}
	}
}

func TestParseOOMKillsAndFreezer(t *testing.T) {
	events := "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n"
	if n, err := parseKeyedNumber(events, "oom_kill"); err != nil || n != 1 {
		t.Errorf("oom_kill of memory.events = %d, %v; want 1", n, err)
	}
	oomControl := "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n"
	if n, err := parseKeyedNumber(oomControl, "oom_kill"); err != nil || n != 4 {
		t.Errorf("oom_kill of memory.oom_control = %d, %v; want 4", n, err)
	}
	if _, err := parseKeyedNumber("populated 1\n", "frozen"); err == nil {
		t.Error("a missing key was found")
	}
	for input, want := range map[string]string{"populated 1\nfrozen 1\n": "frozen", "populated 1\nfrozen 0\n": "thawed"} {
		if got, err := parseCgroupEventsFrozen(input); err != nil || got != want {
			t.Errorf("parseCgroupEventsFrozen(%q) = %q, %v; want %q", input, got, err, want)
		}
	}
	for input, want := range map[string]string{"FROZEN\n": "frozen", "THAWED\n": "thawed", "FREEZING\n": "freezing"} {
		if got, err := parseFreezerState(input); err != nil || got != want {
			t.Errorf("parseFreezerState(%q) = %q, %v; want %q", input, got, err, want)
		}
	}
	if _, err := parseFreezerState("frozen 1\n"); err == nil {
		t.Error("parseFreezerState took v2's line")
	}
}
