// Package errcode names the well-known errors that keep their identity
// across the pipe: a task's error that matches one of them in the worker
// matches it again in the parent, with errors.Is.
//
// An error travels as its text and the codes of the well-known errors it
// matches. The standard library's are built in; a program adds its own with
// Register, at package level, so that the parent and its workers, which are
// the same program, know the same ones.
package errcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

type entry struct {
	code string
	err  error
}

var (
	mu      sync.RWMutex
	entries = []entry{
		{"context.Canceled", context.Canceled},
		{"context.DeadlineExceeded", context.DeadlineExceeded},
		{"os.ErrDeadlineExceeded", os.ErrDeadlineExceeded},
		{"fs.ErrNotExist", fs.ErrNotExist},
		{"fs.ErrExist", fs.ErrExist},
		{"fs.ErrPermission", fs.ErrPermission},
		{"io.EOF", io.EOF},
		{"io.ErrUnexpectedEOF", io.ErrUnexpectedEOF},
	}
	byCode = index(entries)
)

func index(es []entry) map[string]error {
	m := make(map[string]error, len(es))
	for _, e := range es {
		m[e.code] = e.err
	}
	return m
}

// Register adds errors to the well-known ones, each under a code made of its
// text. Two errors with the same text, or a nil one, panic: the parent could
// not tell them apart.
func Register(errs ...error) {
	mu.Lock()
	defer mu.Unlock()
	for _, err := range errs {
		if err == nil {
			panic("procpool: RegisterError(nil)")
		}
		code := "user:" + err.Error()
		if prev, dup := byCode[code]; dup {
			panic(fmt.Sprintf("procpool: RegisterError: an error with the text %q is registered already (%T)", err.Error(), prev))
		}
		entries = append(entries, entry{code, err})
		byCode[code] = err
	}
}

// Codes returns the codes of the well-known errors that err matches, or nil.
func Codes(err error) []string {
	mu.RLock()
	defer mu.RUnlock()
	var codes []string
	for _, e := range entries {
		if errors.Is(err, e.err) {
			codes = append(codes, e.code)
		}
	}
	return codes
}

// Errors returns the well-known errors of codes; a code this program does not
// know (a worker of another build) is skipped.
func Errors(codes []string) []error {
	if len(codes) == 0 {
		return nil
	}
	mu.RLock()
	defer mu.RUnlock()
	errs := make([]error, 0, len(codes))
	for _, c := range codes {
		if err, ok := byCode[c]; ok {
			errs = append(errs, err)
		}
	}
	return errs
}
