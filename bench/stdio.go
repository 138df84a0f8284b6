package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"

	"github.com/teach/containerd-shim-teach-v2/integration/image"
)

// ddBlock is dd's block size: the container writes the stream in 1 MiB
// writes, more than a pipe holds, so the writer is never the slow side.
const ddBlock = 1 << 20

// ddArgs is the writer, the same busybox dd in the container and on the host.
func ddArgs(bytes int64) []string {
	return []string{"dd", "if=/dev/zero", fmt.Sprintf("bs=%d", ddBlock), fmt.Sprintf("count=%d", bytes/ddBlock)}
}

// readBlock is the client's read size: dd's block, as much as a grown pipe
// holds. containerd's pkg/cio (what ctr reads with) copies in 32 KiB reads;
// with it the client, not the shim, set the pace, for both shims alike
// (docs/benchmarks.md, History). The client here reads the FIFO as pkg/cio
// does, through Go's poller, in reads of readBlock.
const readBlock = 1 << 20

// drain reads r to its end, readBlock at a time, and counts the bytes.
func drain(r io.Reader) (int64, error) {
	buf := make([]byte, readBlock)
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		switch {
		case err == io.EOF:
			return total, nil
		case err != nil:
			return total, err
		}
	}
}

// drained is what drain found, handed from its goroutine.
type drained struct {
	bytes int64
	err   error
}

func drainInBackground(r io.Reader) <-chan drained {
	done := make(chan drained, 1)
	go func() {
		n, err := drain(r)
		done <- drained{n, err}
	}()
	return done
}

// hostPipes are the host's own figures for the same bytes, without a shim.
type hostPipes struct {
	shell float64 // `dd | cat`: a shell's pipe, 64 KiB
	grown float64 // dd and cat joined by a pipe grown to 1 MiB, as the shim grows its own
}

// grownPipeSize is the size our shim grows a busy stream's pipes to
// (io/splice.go).
const grownPipeSize = 1 << 20

// measureStdio times bytes of the container's stdout going through the
// shim to the client: from Start until the client has read the last byte
// from the FIFO and the exit is known. It returns MB/s (10^6 bytes) per shim
// and for the host's own pipes (`dd | cat`), the limit no relay can pass;
// all are interleaved, run after run, and the medians kept.
func (s *session) measureStdio(bytes int64, runs int) (map[string]float64, hostPipes) {
	containers := make(map[string]client.Container)
	for _, shim := range s.shims {
		containers[shim.label] = s.newContainer(shim, "stdio-"+shim.label, ddArgs(bytes))
	}
	rates := make(map[string][]float64)
	var shellPipe, grownPipe []float64
	for run := range runs {
		for _, shim := range s.shims {
			took, err := s.stdioRun(containers[shim.label], bytes)
			if err != nil {
				s.tb.Fatalf("stdio, %s, run %d: %v", shim.label, run, err)
			}
			rates[shim.label] = append(rates[shim.label], mbPerSecond(bytes, took))
		}
		took, err := hostPipe(s.ctx, bytes)
		if err != nil {
			s.tb.Fatalf("host pipe: %v", err)
		}
		shellPipe = append(shellPipe, mbPerSecond(bytes, took))
		took, err = hostGrownPipe(s.ctx, bytes)
		if err != nil {
			s.tb.Fatalf("host pipe grown to 1 MiB: %v", err)
		}
		grownPipe = append(grownPipe, mbPerSecond(bytes, took))
		progress("stdio", run+1, runs)
	}
	medians := make(map[string]float64)
	for label, r := range rates {
		medians[label] = medianOf(r)
	}
	return medians, hostPipes{shell: medianOf(shellPipe), grown: medianOf(grownPipe)}
}

func (s *session) stdioRun(container client.Container, bytes int64) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*stepTimeout)
	defer cancel()
	// The client opens the FIFOs itself (pkg/cio, as ctr does) and reads
	// stdout with drain.
	fifos, err := cio.NewFIFOSetInDir(s.daemon.FIFODir, container.ID(), false)
	if err != nil {
		return 0, err
	}
	streams, err := cio.NewDirectIO(ctx, fifos)
	if err != nil {
		return 0, err
	}
	defer streams.Close()
	stdout := drainInBackground(streams.Stdout)
	stderr := drainInBackground(streams.Stderr)
	task, err := container.NewTask(ctx, func(string) (cio.IO, error) { return streams, nil })
	if err != nil {
		return 0, err
	}
	defer task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return 0, err
	}
	begin := time.Now()
	if err := task.Start(ctx); err != nil {
		return 0, err
	}
	if err := exitedWith(ctx, exitCh, 0); err != nil {
		return 0, err
	}
	// The exit is reported once the shim has written the last byte to the
	// FIFO; the client has read it when drain reaches end-of-file.
	got := <-stdout
	took := time.Since(begin)
	if got.err != nil {
		return 0, fmt.Errorf("read stdout: %w", got.err)
	}
	if got.bytes != bytes {
		return 0, fmt.Errorf("client received %d bytes, want %d", got.bytes, bytes)
	}
	if _, err := task.Delete(ctx); err != nil {
		return 0, err
	}
	<-stderr
	return took, nil
}

// hostPipe is the same dd writing into a plain pipe that the host's cat
// drains: the limit no relay can pass. cat reads in blocking read(2) calls of
// 128 KiB; a reader like the client's (Go's poller, 1 MiB reads) drains
// the same 64 KiB pipe at less than half that speed, and would make the limit
// look lower than it is.
func hostPipe(ctx context.Context, bytes int64) (time.Duration, error) {
	dd := ddArgs(bytes)
	script := fmt.Sprintf("%s %s %s %s %s 2>/dev/null | cat >/dev/null", image.DefaultBusybox, dd[0], dd[1], dd[2], dd[3])
	begin := time.Now()
	if out, err := exec.CommandContext(ctx, "sh", "-c", script).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s: %v %s", script, err, out)
	}
	return time.Since(begin), nil
}

// hostGrownPipe is dd and cat again, joined by a pipe grown to the size the
// shim gives a busy stream: with it the writer and the reader take turns once
// per MiB rather than once per 64 KiB, as they do through our shim.
func hostGrownPipe(ctx context.Context, bytes int64) (time.Duration, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	defer w.Close()
	if _, err := unix.FcntlInt(w.Fd(), unix.F_SETPIPE_SZ, grownPipeSize); err != nil {
		return 0, fmt.Errorf("grow the pipe: %w", err)
	}
	writer := exec.CommandContext(ctx, image.DefaultBusybox, ddArgs(bytes)...)
	writer.Stdout = w
	reader := exec.CommandContext(ctx, "cat")
	reader.Stdin = r
	begin := time.Now()
	if err := writer.Start(); err != nil {
		return 0, err
	}
	if err := reader.Start(); err != nil {
		writer.Process.Kill()
		writer.Wait()
		return 0, err
	}
	// Only the two commands may hold the pipe's ends: cat sees the end of
	// the stream when dd exits.
	r.Close()
	w.Close()
	werr, rerr := writer.Wait(), reader.Wait()
	took := time.Since(begin)
	if err := errors.Join(werr, rerr); err != nil {
		return 0, err
	}
	return took, nil
}

func mbPerSecond(bytes int64, took time.Duration) float64 {
	return float64(bytes) / 1e6 / took.Seconds()
}
