package journal

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
)

// Story is a container's journal as read back.
type Story struct {
	Dir     string
	Entries []Entry // oldest first
	// Rotated: entries were rotated out. When the story's first lines
	// were kept (keepHead), Entries starts with them, and the lines lost
	// came after LostAfter; otherwise the story starts somewhere in the
	// middle.
	Rotated   bool
	LostAfter int64 // Mono of the last kept first line; 0 when none was kept
	// Ended: the container was deleted; nothing more will be written.
	Ended bool
	// Skipped counts lines that could not be read (damaged, or not ours).
	Skipped int
	// Offset is how far into the current file Read got: Follow goes on
	// from there.
	Offset int64
}

// Read reads a container's journal: the rotated file, then the current one.
func Read(dir string) (Story, error) {
	s := Story{Dir: dir}
	rotatedOnce := false
	for _, name := range []string{rotatedFile, currentFile} {
		f, err := os.Open(filepath.Join(dir, name))
		if os.IsNotExist(err) && name == rotatedFile {
			continue
		}
		rotatedOnce = rotatedOnce || name == rotatedFile
		if err != nil {
			return s, err
		}
		entries, skipped := readLines(f)
		if name == currentFile {
			s.Offset, _ = f.Seek(0, io.SeekCurrent)
		}
		f.Close()
		s.Entries = append(s.Entries, entries...)
		s.Skipped += skipped
	}
	// After one rotation the first file may still start with the header;
	// after two, it cannot, and the head kept of it goes first.
	s.Rotated = rotatedOnce && (len(s.Entries) == 0 || s.Entries[0].Kind != KindJournal)
	if s.Rotated {
		if head, err := os.Open(filepath.Join(dir, headFile)); err == nil {
			entries, skipped := readLines(head)
			head.Close()
			if len(entries) > 0 {
				s.LostAfter = entries[len(entries)-1].Mono
				s.Entries = append(entries, s.Entries...)
				s.Skipped += skipped
			}
		}
	}
	_, err := os.Stat(filepath.Join(dir, endedFile))
	s.Ended = err == nil
	return s, nil
}

// Files are the journal's files that tell the story, oldest first, as Read
// read them: trace --json prints them as they are.
func (s Story) Files() []string {
	files := []string{filepath.Join(s.Dir, rotatedFile), filepath.Join(s.Dir, currentFile)}
	if s.LostAfter != 0 {
		files = append([]string{filepath.Join(s.Dir, headFile)}, files...)
	}
	return files
}

// readLines reads the complete lines of r; a last line without its newline
// (being written) is left for the next reader, and r is left after the last
// complete line.
func readLines(r io.ReadSeeker) (entries []Entry, skipped int) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, 0
	}
	complete := bytes.LastIndexByte(data, '\n') + 1
	r.Seek(int64(complete-len(data)), io.SeekCurrent)
	scanner := bufio.NewScanner(bytes.NewReader(data[:complete]))
	scanner.Buffer(make([]byte, 0, 64<<10), maxLine)
	for scanner.Scan() {
		if e, err := ParseLine(scanner.Bytes()); err == nil {
			entries = append(entries, e)
		} else {
			skipped++
		}
	}
	return entries, skipped
}

// Follower reads the lines added to a journal since it last looked, across
// rotations.
type Follower struct {
	dir     string
	file    *os.File
	partial []byte // a line whose end has not been written yet
}

// Follow starts reading the current file at offset: where Read stopped.
func Follow(dir string, offset int64) (*Follower, error) {
	f, err := os.Open(filepath.Join(dir, currentFile))
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &Follower{dir: dir, file: f}, nil
}

// Next returns the complete lines written since the last call, raw, as the
// writer wrote them (without the newline). When the file was rotated, the
// rest of the old one comes first, then the new one from its start.
func (f *Follower) Next() ([][]byte, error) {
	lines, err := f.drain()
	if err != nil {
		return lines, err
	}
	if f.rotated() {
		next, err := os.Open(filepath.Join(f.dir, currentFile))
		if err != nil {
			return lines, nil // between the rename and the new file
		}
		f.file.Close()
		f.file, f.partial = next, nil
		more, err := f.drain()
		lines = append(lines, more...)
		return lines, err
	}
	return lines, nil
}

func (f *Follower) drain() ([][]byte, error) {
	data, err := io.ReadAll(f.file)
	if err != nil {
		return nil, err
	}
	data = append(f.partial, data...)
	var lines [][]byte
	for {
		end := bytes.IndexByte(data, '\n')
		if end < 0 {
			break
		}
		lines = append(lines, data[:end])
		data = data[end+1:]
	}
	f.partial = append([]byte(nil), data...)
	return lines, nil
}

// rotated: journal.jsonl is no longer the file being read.
func (f *Follower) rotated() bool {
	now, err := os.Stat(filepath.Join(f.dir, currentFile))
	if err != nil {
		return false
	}
	held, err := f.file.Stat()
	return err == nil && !os.SameFile(now, held)
}

// Ended reports whether the container was deleted.
func (f *Follower) Ended() bool {
	_, err := os.Stat(filepath.Join(f.dir, endedFile))
	return err == nil
}

func (f *Follower) Close() error { return f.file.Close() }
