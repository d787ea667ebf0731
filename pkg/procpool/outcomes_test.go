package procpool

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/wire"
)

// readAll reads the outcomes of n calls through a cursor, as Imap does.
func readAll(o *outcomes, n int) (values []string, errs []error, culprits []bool) {
	cur := o.cursor()
	for j := range n {
		v, f := cur.at(j)
		values, errs, culprits = append(values, string(v)), append(errs, f.err), append(culprits, f.culprit)
	}
	return values, errs, culprits
}

// A batch's outcomes come in parts, from the stream and from pieces of a
// lost chunk that finish in any order; a failure overrides a value that
// arrived for the same call.
func TestOutcomesInPartsAndPieces(t *testing.T) {
	lost := errors.New("lost")
	var o outcomes
	o.add(0, wire.ValuesOf([]byte("a"), []byte("b")))
	// Calls 2 and 4 were split off a lost chunk; 4 finishes first, 3 failed.
	var four, two outcomes
	four.add(0, wire.ValuesOf([]byte("e")))
	o.merge(6, 4, &four)
	o.fail(6, 3, lost, true)
	two.add(0, wire.ValuesOf([]byte("c")))
	o.merge(6, 2, &two)
	// Call 5 was cancelled, and then its result came late.
	o.fail(6, 5, errCancelled, false)
	o.add(5, wire.ValuesOf([]byte("late")))

	values, errs, culprits := readAll(&o, 6)
	require.Equal(t, []string{"a", "b", "c", "", "e", "late"}, values)
	require.Equal(t, []error{nil, nil, nil, lost, nil, errCancelled}, errs)
	require.Equal(t, []bool{false, false, false, true, false, false}, culprits)
	require.Equal(t, lost, o.err(3))
	require.NoError(t, o.err(4))
}

// A piece's own failure lands on its call in the chunk it came from.
func TestOutcomesMergeAFailedPiece(t *testing.T) {
	boom := errors.New("boom")
	var o, piece outcomes
	o.add(0, wire.ValuesOf([]byte("a")))
	piece.fail(1, 0, boom, true)
	o.merge(3, 2, &piece)
	_, errs, culprits := readAll(&o, 3)
	require.Equal(t, []error{nil, nil, boom}, errs)
	require.Equal(t, []bool{false, false, true}, culprits)
}

var errCancelled = errors.New("cancelled")
