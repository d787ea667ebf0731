// Package registry maps task names to handlers. Both sides of a pool build
// the same registry at package init, which is what lets a re-exec'd worker
// run a task the parent names.
package registry

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"unsafe"

	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/errcode"
	"github.com/procpool/procpool/internal/wire"
)

// Handler runs one call: it decodes arg, calls the task and encodes the
// result into c's arena, and sets *it to the outcome, all of it: a worker
// runs a chunk's calls straight into the items of its Result. It never
// panics; every failure is in the Item.
type Handler func(ctx context.Context, c *codec.Codec, arg []byte, it *wire.Item)

// Call runs one call and returns its outcome.
func (h Handler) Call(ctx context.Context, c *codec.Codec, arg []byte) wire.Item {
	var it wire.Item
	h(ctx, c, arg, &it)
	return it
}

// Bulk is a Handler for a worker's loop over a chunk, which a task has when
// its argument and result types both have fast paths (see [BulkFunc]): it
// runs one call and, if the call succeeds the fast way, appends its encoded
// result to vals, as [wire.Values.Begin] and End would, and reports true.
// Otherwise it runs the call as the Handler would and reports false, with
// vals as it was and the outcome in *it: a failure, a success that took the
// general way, or a large []byte result sent from where it is (see
// [wire.Item.Tail]).
type Bulk func(ctx context.Context, c *codec.Codec, arg []byte, vals *wire.Values, it *wire.Item) bool

type entry struct {
	handler   Handler
	bulk      Bulk   // nil: none
	signature string // "name(argument type) result type", to tell builds apart
	where     string // file:line of the Register call, for the duplicate panic
}

var (
	mu      sync.RWMutex
	entries = map[string]entry{}
)

// Register adds a task. A second task of the same name panics, naming both
// places, because two binaries that disagree on a name would run the wrong
// code. signature describes the task's types (see Signature).
func Register(name string, h Handler, bulk Bulk, signature string, callerSkip int) {
	where := Where(callerSkip + 1)
	mu.Lock()
	defer mu.Unlock()
	if name == "" {
		panic("procpool: Register with an empty task name at " + where)
	}
	if prev, dup := entries[name]; dup {
		panic(fmt.Sprintf("procpool: task %q registered twice: at %s and at %s", name, prev.where, where))
	}
	entries[name] = entry{handler: h, bulk: bulk, signature: signature, where: where}
}

// Where returns the file:line of a caller: 0 is Where's caller, 1 that
// function's caller, and so on.
func Where(skip int) string {
	if _, file, line, ok := runtime.Caller(skip + 1); ok {
		return fmt.Sprintf("%s:%d", file, line)
	}
	return "unknown place"
}

// CheckTypes checks, once, at registration, that the argument type I and
// the result type O of a task can cross between processes at all (see
// [codec.CheckType]), and works out what their values need before
// encoding.
func CheckTypes[I, O any]() error {
	if err := codec.CheckType(reflect.TypeFor[I]()); err != nil {
		return fmt.Errorf("its argument type %s cannot be sent to a worker: %w", reflect.TypeFor[I](), err)
	}
	if err := codec.CheckType(reflect.TypeFor[O]()); err != nil {
		return fmt.Errorf("its result type %s cannot come back from a worker: %w", reflect.TypeFor[O](), err)
	}
	return nil
}

// Get returns the handler of a task and its Bulk form, nil if it has none;
// for a name nobody registered, a handler whose every call fails with
// StatusUnknownTask.
func Get(name string) (Handler, Bulk) {
	mu.RLock()
	e, ok := entries[name]
	mu.RUnlock()
	if ok {
		return e.handler, e.bulk
	}
	return func(_ context.Context, _ *codec.Codec, _ []byte, it *wire.Item) {
		*it = wire.Item{Status: wire.StatusUnknownTask, Message: fmt.Sprintf("no task %q is registered in process %d", name, os.Getpid())}
	}, nil
}

// Signatures returns the signatures of the registered tasks, sorted. Two
// builds whose signatures agree can run each other's calls.
func Signatures() []string {
	mu.RLock()
	defer mu.RUnlock()
	sigs := make([]string, 0, len(entries))
	for _, e := range entries {
		sigs = append(sigs, e.signature)
	}
	slices.Sort(sigs)
	return sigs
}

// Signature describes a task of argument type I and result type O:
// "name(argument type) result type".
func Signature[I, O any](name string) string {
	return fmt.Sprintf("%s(%s) %s", name, reflect.TypeFor[I](), reflect.TypeFor[O]())
}

// Func adapts a typed task function to a Handler. Arguments and results of
// the types with a fast path (see [codec.FastFor]) skip msgpack's
// reflection; an argument the fast path does not take goes the general
// way, so a failure reads the same either way.
func Func[I, O any](fn func(context.Context, I) (O, error)) Handler {
	fastIn, fastOut := codec.FastFor[I](), codec.FastFor[O]()
	_, bytesIn := any((*I)(nil)).(*[]byte)
	_, bytesOut := any((*O)(nil)).(*[]byte)
	return func(ctx context.Context, c *codec.Codec, arg []byte, it *wire.Item) {
		var in I
		shared := false
		if bytesIn && c.Share && len(arg) >= codec.MinShared {
			if b, ok := codec.Bin(arg); ok {
				in, shared = any(b).(I)
				c.Lent = c.Lent || shared
			}
		}
		if !shared {
			var err error
			if in, err = codec.DecodeWith(c, fastIn, arg); err != nil {
				*it = wire.Item{Status: wire.StatusDecodeArg, Message: fmt.Sprintf("decode argument as %T: %v", in, err)}
				return
			}
		}
		out, err, panicked := call(ctx, fn, in)
		if panicked != nil {
			*it = *panicked
			return
		}
		if err != nil {
			*it = wire.Item{Status: wire.StatusError, Message: err.Error(), Codes: errcode.Codes(err)}
			return
		}
		if inPlace(bytesOut, c, &out, it) {
			return
		}
		v, err := codec.EncodeWith(c, fastOut, out)
		if err != nil {
			*it = wire.Item{Status: wire.StatusEncodeResult, Message: fmt.Sprintf("encode result of type %T: %v", out, err)}
			return
		}
		*it = wire.Item{Value: v}
	}
}

// BulkFunc returns the Bulk form of fn, whose Handler is h (Func(fn)), or
// nil if I or O has no fast path. A []byte argument takes the Handler's
// way, which may lend it the frame it arrived in.
func BulkFunc[I, O any](fn func(context.Context, I) (O, error), h Handler) Bulk {
	fastIn, fastOut := codec.FastFor[I](), codec.FastFor[O]()
	if _, bytesIn := any((*I)(nil)).(*[]byte); fastIn == nil || fastOut == nil || bytesIn {
		return nil
	}
	_, bytesOut := any((*O)(nil)).(*[]byte)
	return func(ctx context.Context, c *codec.Codec, arg []byte, vals *wire.Values, it *wire.Item) bool {
		var in I
		if !fastIn.Decode(arg, &in) {
			h(ctx, c, arg, it) // the general way, and its error
			return false
		}
		out, err, panicked := call(ctx, fn, in)
		switch {
		case panicked != nil:
			*it = *panicked
			return false
		case err != nil:
			*it = wire.Item{Status: wire.StatusError, Message: err.Error(), Codes: errcode.Codes(err)}
			return false
		}
		if inPlace(bytesOut, c, &out, it) {
			return false
		}
		start := vals.Begin()
		vals.Buf = fastOut.Append(vals.Buf, &out)
		vals.End(start)
		return true
	}
}

// inPlace sets *it to the outcome of a []byte result (bytesOut: O is
// []byte) of codec.MinShared bytes or more, if c lets it go from where the
// task returned it (Codec.Share): its header in c's arena, and the task's
// bytes as the Tail, not copied. It reports whether it did.
func inPlace[O any](bytesOut bool, c *codec.Codec, out *O, it *wire.Item) bool {
	if !bytesOut || !c.Share {
		return false
	}
	b := *(*[]byte)(unsafe.Pointer(out)) // O is []byte: read as one, not boxed in an any
	if len(b) < codec.MinShared {
		return false
	}
	*it = wire.Item{Value: c.BinHeader(len(b)), Tail: b}
	return true
}

// call runs fn, turning a panic into an Item that carries the stack.
func call[I, O any](ctx context.Context, fn func(context.Context, I) (O, error), in I) (out O, err error, panicked *wire.Item) {
	defer func() {
		if r := recover(); r != nil {
			panicked = &wire.Item{Status: wire.StatusPanic, Message: fmt.Sprint(r), Stack: string(debug.Stack())}
		}
	}()
	out, err = fn(ctx, in)
	return out, err, nil
}
