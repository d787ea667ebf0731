// Package executable identifies the running program: its Go build ID, which
// tells two builds apart cheaply, and its SHA-256, which names it in the
// remote cache binary shipping fills.
package executable

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
)

// Path names the running program. On Linux it is /proc/self/exe, which stays
// this very program even if the file is replaced on disk.
func Path() (string, error) {
	if runtime.GOOS == "linux" {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

// BuildID returns the Go build ID of the running program, or "" if it cannot
// be read (not ELF, or stripped of the note).
var BuildID = sync.OnceValue(func() string {
	path, err := Path()
	if err != nil {
		return ""
	}
	id, _ := ReadBuildID(path)
	return id
})

// ReadBuildID reads the Go build ID from the ELF note the linker writes.
func ReadBuildID(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := f.Section(".note.go.buildid")
	if s == nil {
		return "", fmt.Errorf("%s has no Go build ID note", path)
	}
	note, err := s.Data()
	if err != nil {
		return "", err
	}
	// An ELF note: name size, description size, type, then the padded
	// name ("Go") and the description, which is the ID.
	if len(note) < 16 {
		return "", fmt.Errorf("%s: short build ID note", path)
	}
	nameSize := f.ByteOrder.Uint32(note[0:])
	descSize := f.ByteOrder.Uint32(note[4:])
	desc := 12 + int((nameSize+3)&^3)
	if desc+int(descSize) > len(note) || !bytes.HasPrefix(note[12:], []byte("Go\x00")) {
		return "", fmt.Errorf("%s: malformed build ID note", path)
	}
	return string(note[desc : desc+int(descSize)]), nil
}

// Digest is the running program's SHA-256 and size.
type Digest struct {
	SHA256 string // hex
	Size   int64
}

var digest struct {
	once sync.Once
	d    Digest
	err  error
}

// SHA256 hashes the running program once and returns its digest.
func SHA256() (Digest, error) {
	digest.once.Do(func() {
		path, err := Path()
		if err == nil {
			digest.d, err = hashFile(path)
		}
		digest.err = err
	})
	return digest.d, digest.err
}

func hashFile(path string) (Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return Digest{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return Digest{}, fmt.Errorf("hash %s: %w", path, err)
	}
	return Digest{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, nil
}
