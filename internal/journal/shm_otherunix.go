//go:build unix && !linux

package journal

import "os"

func create() (*os.File, error) { return createTemp() }
