// Package jsondec owns reading JSON request bodies: it reads one document
// from an io.Reader token by token and hands each value to the caller, who
// says what it expects there (String, Int, Object, Array, ...). A value of
// the wrong type is reported as a field problem by its path
// ("actions[3].latencyMs: must be an integer") in the caller's
// *errs.Problems and skipped, so one request lists all its problems at once;
// malformed JSON (RFC 8259, strictly: invalid UTF-8 and lone surrogates
// included) is a terminal *SyntaxError.
//
// Why streaming: a request body is never held in memory as a whole, and
// nothing is stored that the caller does not keep. Memory is bounded by
// what a valid request needs, not by the size of the body: strings are cut
// to the caller's bound as they are read, skipped values are scanned
// without being stored, nesting is limited to 64 levels (and read without
// recursion when skipped), and an array longer than the caller's maximum
// stops the reading altogether, so the rest of a hostile body is never even
// read.
//
// Paths: every value method takes the path of its value, used only when
// there is a problem to report: "" is the document root (reported as
// "body"), members and elements are "a.b" and "items[3].tickId" (see Field
// and Index). Inside a callback of Object or Array, "" means "here": the
// member or element being read, whose path the Reader then builds itself
// from the enclosing paths, keys and indexes, and only when it reports a
// problem; a hot loop then builds no path strings at all.
//
// Range and length rules belong to the caller's validation, not to this
// package. String keeps at most keep+1 runes of a longer string, so the
// validator still sees a string that is too long and reports it with its
// own message; Int only checks that the number is an integer.
//
// Usage:
//
//	d := jsondec.New(body, &p)
//	d.Object("", func(key string) {
//		switch key {
//		case "runnerId":
//			req.RunnerID, _ = d.String(key, 128)
//		case "limit":
//			req.Limit, _ = d.Int(key)
//		} // other keys are skipped
//	})
//	if err := d.End(); err != nil { ... } // malformed JSON, read error, ErrStopped
//	if err := p.Err(); err != nil { ... } // field problems
//
// End's error comes first: after a terminal error the problems collected so
// far may be incomplete. A Reader is for one goroutine and one document.
package jsondec

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/mana/personas/pkg/errs"
)

// Limits.
const (
	// MaxDepth is the deepest nesting of arrays and objects accepted.
	MaxDepth = 64
	// KeyKeep bounds object keys as String's keep bounds strings: a longer
	// key is passed to the callback cut to KeyKeep+1 runes.
	KeyKeep = 256
	// maxNumLen bounds the text of a number that is kept for parsing; a
	// longer number is still checked but refused by Int and Number.
	maxNumLen = 1024

	bufSize   = 32 << 10
	cacheBits = 8
	cacheLen  = 64 // longest string the cache holds
)

// state is the large part of a Reader, reused through statePool: End
// returns it. The cache of short strings carries over from one document to
// the next, as the keys and many values (tool names, "ok") repeat across
// requests too; an entry is only ever returned for equal bytes.
type state struct {
	buf   [bufSize]byte
	cache [1 << cacheBits]string
}

var statePool = sync.Pool{New: func() any { return new(state) }}

// SyntaxError is malformed JSON at a byte offset of the body.
type SyntaxError struct {
	Offset int64
	Msg    string
}

func (e *SyntaxError) Error() string {
	return "invalid JSON at byte " + strconv.FormatInt(e.Offset, 10) + ": " + e.Msg
}

// ErrStopped is the terminal error after Array met more elements than its
// maximum: the rest of the document is not read.
var ErrStopped = errors.New("jsondec: stopped reading")

// ErrMisuse is the terminal error when a value method is called where no
// value is pending (two value methods in one callback, or a value method
// after the document's value was read): a bug of the caller.
var ErrMisuse = errors.New("jsondec: value method called with no value pending")

// Reader reads one JSON document from an io.Reader token by token.
type Reader struct {
	r    io.Reader
	p    *errs.Problems
	buf  []byte
	st   *state // buf's owner, from statePool
	pos  int    // next unread byte in buf
	end  int    // end of the valid bytes in buf
	off  int64  // offset in the body of buf[0]
	eof  bool   // r reported io.EOF
	done bool   // End returned the buffer
	rerr error  // r's error, returned once the buffered bytes are used up
	err  error  // terminal error

	want    bool // a value is pending: the next value method reads it
	kept    bool // the last value method was not Skip (for duplicate keys)
	started bool // the first byte of the document was seen
	depth   int

	sb     []byte    // scratch for strings with escapes or split by refills
	seen   []seenKey // keys read (not skipped) in the open objects
	frames []frame   // the open objects and arrays, for paths "" (here)
}

// frame is an open object or array: the path it was given ("" for here),
// and the member or element being read.
type frame struct {
	path string
	key  string
	idx  int
	obj  bool
}

// New returns a Reader of r's JSON document, reporting field problems to p
// (a nil p gets a Problems of the Reader's own; see Problems).
func New(r io.Reader, p *errs.Problems) *Reader {
	if p == nil {
		p = new(errs.Problems)
	}
	return &Reader{r: r, p: p, want: true}
}

// Problems returns the Problems the Reader reports to.
func (d *Reader) Problems() *errs.Problems { return d.p }

// Err returns the terminal error, if any: a *SyntaxError (malformed JSON,
// invalid UTF-8, a lone surrogate escape, nesting deeper than MaxDepth),
// the underlying reader's error as is (such as *http.MaxBytesError or a
// timeout), ErrStopped (see Array) or ErrMisuse. After a terminal error
// every method is a no-op returning zero values.
func (d *Reader) Err() error { return d.err }

// Offset is the offset in the body of the next unread byte.
func (d *Reader) Offset() int64 { return d.off + int64(d.pos) }

// Problem reports a problem of the caller's at path, with the same
// meaning of "" as the value methods (here). It is how a caller reports,
// for example, an Array that went over its maximum.
func (d *Reader) Problem(path, format string, args ...any) {
	d.problem(path, fmt.Sprintf(format, args...))
}

// Field is the path of member key of the object at parent: "parent.key",
// or "key" at the root.
func Field(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// Index is the path of element i of the array at parent: "parent[i]".
func Index(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// --- value methods ---

// Object reads an object at path. For each member fn(key) is called and
// must consume the value with exactly one value method (String, Int, ...,
// Object, Array, Skip); a value fn leaves alone is skipped. A key read
// twice in one object (not skipped the first time) is a problem at
// Field(path, key), "appears more than once", and its second value is
// skipped without calling fn. Null gives false without a problem; another
// type is a problem "must be a JSON object" (at "body" for the root),
// skipped, false.
func (d *Reader) Object(path string, fn func(key string)) bool {
	c, ok := d.begin(true)
	if !ok {
		return false
	}
	switch c {
	case '{':
	case 'n':
		d.literal("null")
		return false
	default:
		d.problem(path, "must be a JSON object")
		d.skipValue()
		return false
	}
	if !d.open() {
		return false
	}
	d.frames = append(d.frames, frame{path: path, obj: true})
	top := len(d.frames) - 1
	c, ok = d.next()
	if !ok {
		return false
	}
	if c == '}' {
		d.close()
		return true
	}
	base := len(d.seen)
	var set map[string]bool // the keys once there are many
	for {
		if c != '"' {
			d.syntax("expected string for object key")
			return false
		}
		key, ok := d.readString(KeyKeep, true)
		if !ok {
			return false
		}
		if c, ok = d.next(); !ok {
			return false
		}
		if c != ':' {
			d.syntax("expected ':' after object key")
			return false
		}
		d.pos++
		d.frames[top].key = key
		if dup, first := d.duplicate(base, set, key); dup {
			switch {
			case !first:
			case path != "":
				d.problem(Field(path, key), "appears more than once")
			default:
				d.problem("", "appears more than once") // here is the member
			}
			d.skipValue()
		} else {
			d.want = true
			fn(key)
			if d.err != nil {
				return false
			}
			if d.want {
				d.want = false
				d.skipValue()
			} else if d.kept {
				set = d.addKey(base, set, key)
			}
		}
		if c, ok = d.next(); !ok {
			return false
		}
		if c == '}' {
			break
		}
		if c != ',' {
			d.syntax("expected ',' or '}' after object member")
			return false
		}
		d.pos++
		if c, ok = d.next(); !ok {
			return false
		}
	}
	d.seen = d.seen[:base]
	d.close()
	return true
}

// Array reads an array at path, calling fn(i) for each element; fn must
// consume it with one value method (an element left alone is skipped).
// After max elements (max < 0: no limit), if another element follows,
// Array stops reading the document altogether (the terminal error becomes
// ErrStopped, so the rest of a hostile body is never read) and returns
// n = max, over = true, ok = true: the caller reports the size problem.
// Null gives ok false without a problem; another type is a problem "must be
// an array", skipped, ok false.
func (d *Reader) Array(path string, max int, fn func(i int)) (n int, over bool, ok bool) {
	c, ok := d.begin(true)
	if !ok {
		return 0, false, false
	}
	switch c {
	case '[':
	case 'n':
		d.literal("null")
		return 0, false, false
	default:
		d.problem(path, "must be an array")
		d.skipValue()
		return 0, false, false
	}
	if !d.open() {
		return 0, false, false
	}
	d.frames = append(d.frames, frame{path: path})
	top := len(d.frames) - 1
	if c, ok = d.next(); !ok {
		return 0, false, false
	}
	if c == ']' {
		d.close()
		return 0, false, true
	}
	for {
		if max >= 0 && n >= max {
			d.fail(ErrStopped)
			d.frames = d.frames[:top] // for the caller's Problem("")
			return n, true, true
		}
		d.frames[top].idx = n
		d.want = true
		fn(n)
		if d.err != nil {
			return n, false, false
		}
		if d.want {
			d.want = false
			d.skipValue()
		}
		n++
		if c, ok = d.next(); !ok {
			return n, false, false
		}
		if c == ']' {
			break
		}
		if c != ',' {
			d.syntax("expected ',' or ']' after array element")
			return n, false, false
		}
		d.pos++
	}
	d.close()
	return n, false, true
}

// String reads a string at path. A string longer than keep runes is
// returned cut to keep+1 runes (the rest is checked and discarded, never
// stored), so that the caller's own length rule reports it; keep < 0 counts
// as 0. Null gives ok false without a problem; another type is a problem
// "must be a string", skipped, ok false.
func (d *Reader) String(path string, keep int) (s string, ok bool) {
	c, ok := d.begin(true)
	if !ok {
		return "", false
	}
	switch c {
	case '"':
		return d.readString(max(keep, 0), true)
	case 'n':
		d.literal("null")
	default:
		d.problem(path, "must be a string")
		d.skipValue()
	}
	return "", false
}

// Int reads an integer at path: 12, -3, 5.0 and 1e3 are integers; 4.5,
// "12", true and magnitudes beyond 2^53 are a problem "must be an integer",
// as is a number written with more than 1024 characters. Null gives ok
// false without a problem.
func (d *Reader) Int(path string) (v int64, ok bool) {
	c, ok := d.begin(true)
	if !ok {
		return 0, false
	}
	switch {
	case c == '-' || c >= '0' && c <= '9':
		num, long := d.scanNumber(true)
		if d.err != nil {
			return 0, false
		}
		if !long {
			if v, ok := parseInt(num); ok {
				return v, true
			}
		}
	case c == 'n':
		d.literal("null")
		return 0, false
	default:
		d.skipValue()
	}
	d.problem(path, "must be an integer")
	return 0, false
}

// Number reads a finite number at path as a float64 (the nearest one);
// 1e400, "1" and true are a problem "must be a number", as is a number
// written with more than 1024 characters. Null gives ok false without a
// problem.
func (d *Reader) Number(path string) (v float64, ok bool) {
	c, ok := d.begin(true)
	if !ok {
		return 0, false
	}
	switch {
	case c == '-' || c >= '0' && c <= '9':
		num, long := d.scanNumber(true)
		if d.err != nil {
			return 0, false
		}
		if !long {
			if v, ok := parseFloat(num); ok {
				return v, true
			}
		}
	case c == 'n':
		d.literal("null")
		return 0, false
	default:
		d.skipValue()
	}
	d.problem(path, "must be a number")
	return 0, false
}

// Bool reads true or false at path. Null gives ok false without a problem;
// another value is a problem "must be true or false", skipped.
func (d *Reader) Bool(path string) (v bool, ok bool) {
	c, ok := d.begin(true)
	if !ok {
		return false, false
	}
	switch c {
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		d.literal("null")
	default:
		d.problem(path, "must be true or false")
		d.skipValue()
	}
	return false, false
}

// Skip skips one value of any type, checking it but storing nothing.
func (d *Reader) Skip() {
	if _, ok := d.begin(false); ok {
		d.skipValue()
	}
}

// End finishes the document: it skips the top-level value if it was not
// read, and checks that only whitespace follows it, reading the body to its
// end. It returns Err(). End also returns the Reader's 32 KiB buffer to a
// pool, so every Reader should be ended (one that is not is only garbage).
func (d *Reader) End() error {
	if d.err != nil {
		if d.depth == 0 || !errors.Is(d.err, ErrMisuse) {
			d.release()
		}
		return d.err
	}
	if d.depth != 0 {
		d.fail(ErrMisuse)
		return d.err
	}
	if d.want {
		d.Skip()
		if d.err != nil {
			return d.err
		}
	}
	if d.ws() {
		d.syntax("unexpected data after top-level value")
	}
	d.release()
	return d.err
}

// release returns the buffer to the pool once the document is finished.
func (d *Reader) release() {
	if d.st == nil {
		return
	}
	d.off += int64(d.pos)
	d.pos, d.end = 0, 0
	d.buf = nil
	statePool.Put(d.st)
	d.st = nil
	d.done = true
}

// --- internals ---

// begin starts a value method: it checks that a value is pending and
// returns the value's first byte (not consumed).
func (d *Reader) begin(kept bool) (byte, bool) {
	if d.err != nil {
		return 0, false
	}
	if !d.want {
		d.fail(ErrMisuse)
		return 0, false
	}
	d.want = false
	d.kept = kept
	if !d.ws() {
		if d.err == nil {
			if d.started {
				d.syntax("unexpected end of input")
			} else {
				d.syntax("empty body")
			}
		}
		return 0, false
	}
	d.started = true
	c := d.buf[d.pos]
	switch c {
	case '{', '[', '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 't', 'f', 'n':
		return c, true
	}
	d.syntax("unexpected character " + strconv.QuoteRune(rune(c)) + " looking for a value")
	return 0, false
}

// next skips whitespace and returns the next byte (not consumed); at the
// end of input it sets a syntax error.
func (d *Reader) next() (byte, bool) {
	if !d.ws() {
		if d.err == nil {
			d.syntax("unexpected end of input")
		}
		return 0, false
	}
	return d.buf[d.pos], true
}

// open consumes '{' or '[' and enters a level.
func (d *Reader) open() bool {
	if d.depth >= MaxDepth {
		d.syntax("nesting deeper than " + strconv.Itoa(MaxDepth) + " levels")
		return false
	}
	d.pos++
	d.depth++
	return true
}

// close consumes '}' or ']' and leaves the level of an Object or Array.
// It also marks the value as kept again, which nested value methods of fn
// may have changed.
func (d *Reader) close() {
	d.pos++
	d.depth--
	d.frames = d.frames[:len(d.frames)-1]
	d.kept = true
}

func (d *Reader) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

func (d *Reader) syntax(msg string) {
	d.fail(&SyntaxError{Offset: d.Offset(), Msg: msg})
}

func (d *Reader) problem(path, msg string) {
	if path == "" {
		path = d.here(len(d.frames))
	}
	if path == "" {
		path = "body"
	}
	if !d.p.Has(path) {
		d.p.Add(path, "%s", msg)
	}
}

// here is the path of the value being read in the innermost n open
// objects and arrays ("" for the root).
func (d *Reader) here(n int) string {
	if n == 0 {
		return ""
	}
	f := &d.frames[n-1]
	base := f.path
	if base == "" {
		base = d.here(n - 1)
	}
	if f.obj {
		return Field(base, f.key)
	}
	return Index(base, f.idx)
}

// seenKey is a key read (not skipped) in an open object; dup is set once
// its duplicate was reported, so later ones build no path.
type seenKey struct {
	key string
	dup bool
}

// duplicate reports whether key was read before in the object whose keys
// start at d.seen[base] (or are in set, once there are many), and whether
// this is its first duplicate.
func (d *Reader) duplicate(base int, set map[string]bool, key string) (dup, first bool) {
	if set != nil {
		reported, ok := set[key]
		if ok && !reported {
			set[key] = true
		}
		return ok, ok && !reported
	}
	for i := base; i < len(d.seen); i++ {
		if k := &d.seen[i]; k.key == key {
			first = !k.dup
			k.dup = true
			return true, first
		}
	}
	return false, false
}

// addKey records key as read; past 16 keys it moves them into a set, so a
// large object does not cost quadratic time.
func (d *Reader) addKey(base int, set map[string]bool, key string) map[string]bool {
	if set != nil {
		set[key] = false
		return set
	}
	d.seen = append(d.seen, seenKey{key: key})
	if len(d.seen)-base > 16 {
		set = make(map[string]bool, 2*(len(d.seen)-base))
		for _, k := range d.seen[base:] {
			set[k.key] = k.dup
		}
		d.seen = d.seen[:base]
	}
	return set
}

// more reads more input, keeping the unread bytes d.buf[d.pos:d.end] (moved
// to the front of the buffer, so indexes into the buffer change by the old
// d.pos). It returns false at the end of input, and on a read error, which
// becomes terminal.
func (d *Reader) more() bool {
	if d.err != nil || d.eof {
		return false
	}
	if d.rerr != nil {
		d.fail(d.rerr)
		return false
	}
	if d.pos > 0 {
		d.end = copy(d.buf, d.buf[d.pos:d.end])
		d.off += int64(d.pos)
		d.pos = 0
	}
	if d.buf == nil {
		if d.done {
			return false
		}
		d.st = statePool.Get().(*state)
		d.buf = d.st.buf[:]
	}
	if d.end == len(d.buf) {
		d.fail(errors.New("jsondec: token does not fit the buffer")) // unreachable: tokens kept are short
		return false
	}
	for range 100 {
		n, err := d.r.Read(d.buf[d.end:])
		if n < 0 || n > len(d.buf)-d.end {
			d.fail(errors.New("jsondec: reader returned an invalid count"))
			return false
		}
		d.end += n
		if err != nil {
			if errors.Is(err, io.EOF) {
				d.eof = true
			} else {
				d.rerr = err
			}
			if n > 0 {
				return true
			}
			if !d.eof {
				d.fail(err)
			}
			return false
		}
		if n > 0 {
			return true
		}
	}
	d.fail(io.ErrNoProgress)
	return false
}

// ensure makes n unread bytes available, unless the input ends first.
func (d *Reader) ensure(n int) bool {
	for d.end-d.pos < n {
		if !d.more() {
			return false
		}
	}
	return true
}

// ws skips whitespace; it returns false at the end of input or on error.
func (d *Reader) ws() bool {
	for {
		for d.pos < d.end {
			switch d.buf[d.pos] {
			case ' ', '\t', '\n', '\r':
				d.pos++
			default:
				return true
			}
		}
		if !d.more() {
			return false
		}
	}
}

// literal consumes the literal want (true, false or null).
func (d *Reader) literal(want string) bool {
	if !d.ensure(len(want)) {
		if d.err == nil {
			d.pos = d.end
			d.syntax("unexpected end of input")
		}
		return false
	}
	if string(d.buf[d.pos:d.pos+len(want)]) != want {
		d.syntax("invalid literal (want " + want + ")")
		return false
	}
	d.pos += len(want)
	return true
}

// intern returns b as a string, reusing the string of an earlier equal
// short token: keys and values such as "ok" repeat in every row of a
// batch, and reuse saves their allocation.
func (d *Reader) intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > cacheLen {
		return string(b)
	}
	h := uint32(2166136261) // FNV-1a
	for _, c := range b {
		h = (h ^ uint32(c)) * 16777619
	}
	// Two ways: a miss moves the first entry of the pair to the second.
	i := h >> (32 - cacheBits) &^ 1
	c := d.st.cache[i : i+2 : i+2]
	if c[0] == string(b) {
		return c[0]
	}
	if c[1] == string(b) {
		return c[1]
	}
	c[1] = c[0]
	c[0] = string(b)
	return c[0]
}

// readString reads the string token at d.pos (its opening quote). When
// store, it returns its first keep+1 runes at most; otherwise it only
// checks it. ok is false on a syntax or read error.
func (d *Reader) readString(keep int, store bool) (s string, ok bool) {
	d.pos++
	// Fast path: a string of plain ASCII that ends in the buffer.
	start := d.pos
	i := start
	for i < d.end {
		c := d.buf[i]
		if c == '"' {
			d.pos = i + 1
			if !store {
				return "", true
			}
			return d.intern(d.buf[start:min(i, start+keep+1)]), true
		}
		if c == '\\' || c < 0x20 || c >= 0x80 {
			break
		}
		i++
	}
	// Slow path: decode into d.sb, keeping keep+1 runes when storing.
	limit := -1
	if store {
		limit = keep + 1
	}
	runes := 0
	d.sb = d.sb[:0]
	keepBytes := func(b []byte) {
		if n := min(len(b), limit-runes); n > 0 {
			d.sb = append(d.sb, b[:n]...)
		}
		runes += len(b)
	}
	keepBytes(d.buf[start:i])
	d.pos = i
	for {
		if d.pos >= d.end && !d.more() {
			if d.err == nil {
				d.syntax("unexpected end of input in string")
			}
			return "", false
		}
		c := d.buf[d.pos]
		switch {
		case c == '"':
			d.pos++
			if !store {
				return "", true
			}
			return d.intern(d.sb), true
		case c == '\\':
			r, ok := d.escape()
			if !ok {
				return "", false
			}
			if runes < limit {
				d.sb = utf8.AppendRune(d.sb, r)
			}
			runes++
		case c < 0x20:
			d.syntax("control character in string")
			return "", false
		case c < 0x80:
			j := d.pos + 1
			for j < d.end {
				c := d.buf[j]
				if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
					break
				}
				j++
			}
			keepBytes(d.buf[d.pos:j])
			d.pos = j
		default:
			if d.end-d.pos < utf8.UTFMax && !d.ensure(utf8.UTFMax) && d.err != nil {
				return "", false
			}
			r, size := utf8.DecodeRune(d.buf[d.pos:d.end])
			if r == utf8.RuneError && size == 1 {
				d.syntax("invalid UTF-8 in string")
				return "", false
			}
			if runes < limit {
				d.sb = append(d.sb, d.buf[d.pos:d.pos+size]...)
			}
			runes++
			d.pos += size
		}
	}
}

// escape decodes the escape sequence at d.pos (its backslash).
func (d *Reader) escape() (rune, bool) {
	if !d.ensure(2) {
		if d.err == nil {
			d.pos = d.end
			d.syntax("unexpected end of input in string")
		}
		return 0, false
	}
	var r rune
	switch d.buf[d.pos+1] {
	case '"', '\\', '/':
		r = rune(d.buf[d.pos+1])
	case 'b':
		r = '\b'
	case 'f':
		r = '\f'
	case 'n':
		r = '\n'
	case 'r':
		r = '\r'
	case 't':
		r = '\t'
	case 'u':
		return d.unicodeEscape()
	default:
		d.syntax("invalid escape in string")
		return 0, false
	}
	d.pos += 2
	return r, true
}

// unicodeEscape decodes \uXXXX at d.pos, or a surrogate pair of two.
func (d *Reader) unicodeEscape() (rune, bool) {
	if !d.ensure(6) {
		if d.err == nil {
			d.pos = d.end
			d.syntax("unexpected end of input in string")
		}
		return 0, false
	}
	r, ok := hex4(d.buf[d.pos+2 : d.pos+6])
	if !ok {
		d.syntax("invalid \\u escape in string")
		return 0, false
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		d.syntax("lone surrogate \\u escape in string")
		return 0, false
	case r >= 0xD800 && r <= 0xDBFF:
		if !d.ensure(12) && d.err != nil {
			return 0, false
		}
		if d.end-d.pos >= 12 && d.buf[d.pos+6] == '\\' && d.buf[d.pos+7] == 'u' {
			if lo, ok := hex4(d.buf[d.pos+8 : d.pos+12]); ok && lo >= 0xDC00 && lo <= 0xDFFF {
				d.pos += 12
				return 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00), true
			}
		}
		d.syntax("lone surrogate \\u escape in string")
		return 0, false
	}
	d.pos += 6
	return r, true
}

func hex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// The states of the number grammar.
const (
	numStart = iota // before an optional '-'
	numMinus        // after '-': a digit must follow
	numZero         // after a leading 0 (accepting)
	numInt          // in the integer digits (accepting)
	numDot          // after '.': a digit must follow
	numFrac         // in the fraction digits (accepting)
	numE            // after 'e': a sign or digit must follow
	numESign        // after the exponent's sign: a digit must follow
	numExp          // in the exponent digits (accepting)
	numDone
)

// scanNumber reads the number at d.pos, checking the grammar of RFC 8259
// exactly. When store, it returns its text (valid until the next read),
// or long when it has more than maxNumLen bytes.
func (d *Reader) scanNumber(store bool) (num []byte, long bool) {
	state := numStart
	i := d.pos
	for state != numDone {
		if i >= d.end {
			n := i - d.pos
			if !store || n > maxNumLen {
				long = long || store
				d.pos = i // nothing to keep
				n = 0
			}
			more := d.more()
			i = d.pos + n // more moved the unread bytes to the front
			if !more {
				if d.err != nil {
					return nil, false
				}
				break
			}
			continue
		}
		c := d.buf[i]
		digit := c >= '0' && c <= '9'
		switch state {
		case numStart:
			switch {
			case c == '-':
				state = numMinus
			case c == '0':
				state = numZero
			case digit:
				state = numInt
			default:
				d.pos = i
				d.syntax("expected a number")
				return nil, false
			}
		case numMinus:
			switch {
			case c == '0':
				state = numZero
			case digit:
				state = numInt
			default:
				d.pos = i
				d.syntax("expected digit after '-'")
				return nil, false
			}
		case numZero, numInt:
			switch {
			case digit && state == numInt:
			case c == '.':
				state = numDot
			case c == 'e' || c == 'E':
				state = numE
			default:
				state = numDone
			}
		case numDot:
			if !digit {
				d.pos = i
				d.syntax("expected digit after decimal point")
				return nil, false
			}
			state = numFrac
		case numFrac:
			switch {
			case digit:
			case c == 'e' || c == 'E':
				state = numE
			default:
				state = numDone
			}
		case numE:
			switch {
			case c == '+' || c == '-':
				state = numESign
			case digit:
				state = numExp
			default:
				d.pos = i
				d.syntax("expected digit in exponent")
				return nil, false
			}
		case numESign:
			if !digit {
				d.pos = i
				d.syntax("expected digit in exponent")
				return nil, false
			}
			state = numExp
		case numExp:
			if !digit {
				state = numDone
			}
		}
		if state != numDone {
			i++
		}
	}
	switch state {
	case numMinus, numDot, numE, numESign:
		d.pos = i
		d.syntax("unexpected end of input in number")
		return nil, false
	}
	if store && !long {
		if i-d.pos > maxNumLen {
			long = true
		} else {
			num = d.buf[d.pos:i]
		}
	}
	d.pos = i
	return num, long
}

// parseInt returns the value of a number of valid grammar when it is an
// integer of magnitude 2^53 at most, deciding exactly on its decimal digits
// (so 3.0000000000000000001 is not an integer although it rounds to 3).
func parseInt(b []byte) (int64, bool) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	ip, rest := b[:i], b[i:]
	if len(rest) == 0 && len(ip) <= 15 { // fast path: a plain integer
		var v int64
		for _, c := range ip {
			v = v*10 + int64(c-'0')
		}
		if neg {
			v = -v
		}
		return v, true
	}
	var fp []byte
	if len(rest) > 0 && rest[0] == '.' {
		j := 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		fp, rest = rest[1:j], rest[j:]
	}
	exp := 0
	if len(rest) > 0 { // e or E
		rest = rest[1:]
		eneg := rest[0] == '-'
		if rest[0] == '-' || rest[0] == '+' {
			rest = rest[1:]
		}
		for _, c := range rest {
			if exp < 1e6 {
				exp = exp*10 + int(c-'0')
			}
		}
		if eneg {
			exp = -exp
		}
	}
	// The value is digits(ip fp) * 10^(exp-len(fp)); trim the zeros.
	digit := func(k int) byte {
		if k < len(ip) {
			return ip[k]
		}
		return fp[k-len(ip)]
	}
	lo, hi := 0, len(ip)+len(fp)
	for lo < hi && digit(lo) == '0' {
		lo++
	}
	if lo == hi {
		return 0, true
	}
	exp -= len(fp)
	for digit(hi-1) == '0' {
		hi--
		exp++
	}
	if exp < 0 || hi-lo+exp > 16 {
		return 0, false
	}
	var v int64
	for k := lo; k < hi; k++ {
		v = v*10 + int64(digit(k)-'0')
	}
	for range exp {
		v *= 10
	}
	if v > 1<<53 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// parseFloat returns the nearest float64 of a number of valid grammar,
// refusing one beyond the float64 range.
func parseFloat(b []byte) (float64, bool) {
	if v, ok := parseInt(b); ok && v != 0 { // exact: |v| <= 2^53
		return float64(v), true
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil { // out of range: ±Inf
		return 0, false
	}
	return f, true
}

// skipValue skips the value at d.pos iteratively; kinds records for each
// level opened here whether it is an object.
func (d *Reader) skipValue() {
	base := d.depth
	var kinds uint64
	for {
		c, ok := d.next()
		if !ok {
			return
		}
		switch {
		case c == '{' || c == '[':
			if !d.open() {
				return
			}
			bit := uint64(1) << (d.depth - 1 - base)
			if c == '{' {
				kinds |= bit
			} else {
				kinds &^= bit
			}
			e, ok := d.next()
			if !ok {
				return
			}
			if e == c+2 { // '{'+2 == '}', '['+2 == ']'
				d.pos++
				d.depth--
				break
			}
			if c == '{' && !d.skipKey() {
				return
			}
			continue // to the first member's value
		case c == '"':
			if _, ok := d.readString(0, false); !ok {
				return
			}
		case c == '-' || c >= '0' && c <= '9':
			if d.scanNumber(false); d.err != nil {
				return
			}
		case c == 't':
			if !d.literal("true") {
				return
			}
		case c == 'f':
			if !d.literal("false") {
				return
			}
		case c == 'n':
			if !d.literal("null") {
				return
			}
		default:
			d.syntax("unexpected character " + strconv.QuoteRune(rune(c)) + " looking for a value")
			return
		}
		// After a value: close the levels that end here.
		for d.depth > base {
			c, ok := d.next()
			if !ok {
				return
			}
			obj := kinds>>(d.depth-1-base)&1 == 1
			if c == ',' {
				d.pos++
				if obj && !d.skipKey() {
					return
				}
				break
			}
			if obj && c == '}' || !obj && c == ']' {
				d.pos++
				d.depth--
				continue
			}
			if obj {
				d.syntax("expected ',' or '}' after object member")
			} else {
				d.syntax("expected ',' or ']' after array element")
			}
			return
		}
		if d.depth == base {
			return
		}
	}
}

// skipKey skips an object key and its colon.
func (d *Reader) skipKey() bool {
	c, ok := d.next()
	if !ok {
		return false
	}
	if c != '"' {
		d.syntax("expected string for object key")
		return false
	}
	if _, ok := d.readString(0, false); !ok {
		return false
	}
	if c, ok = d.next(); !ok {
		return false
	}
	if c != ':' {
		d.syntax("expected ':' after object key")
		return false
	}
	d.pos++
	return true
}
