// Package journal is the agent's bounded, durable alert journal: every alert is appended to
// segment files in <state_dir>/journal so that `falco-k8s alerts review` and `tune` (through
// GET /alerts) can look back over a log-only rollout, across agent restarts.
//
// # Design
//
// A journal is a directory of append-only segment files, seg-<seq>.log, each a sequence of
// checksummed records (see record.go). A new segment is started when the current one reaches
// 1/8 of max_bytes or is older than 1/8 of max_age, and at every start (so a torn tail left by a
// crash is never appended to). Whole segments are deleted, oldest first, to keep the total under
// max_bytes and when their newest record is older than max_age; queries also hide records older
// than max_age, so the age limit is exact for readers.
//
// Evaluation never waits for the disk: Send only puts the alert on a bounded channel (dropped
// and counted when full), and one writer goroutine writes batches with a single write(2) each
// and fsyncs at most once per second. A failed write (a full disk) is logged at most every 10s,
// counted, rolled back (the segment is truncated to its last good size) and its alerts dropped;
// the agent keeps evaluating and the journal resumes when space is back. A directory lock
// keeps two agents from sharing one journal.
package journal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/output"
	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/internal/logging"
)

// Drop reasons in falco_k8s_journal_dropped_total.
const (
	DropBufferFull = "buffer_full" // the writer is behind (slow disk): evaluation did not wait
	DropWriteError = "write_error" // the write failed, e.g. disk full
	DropTooLarge   = "too_large"   // one alert larger than a segment
	DropClosed     = "closed"      // sent after Close
)

// segmentsPerLimit is how many segments the size and age limits are cut into: deletion is per
// segment, so at most 1/8 of the journal is deleted early (or kept late) at once.
const segmentsPerLimit = 8

// Options configure a journal.
type Options struct {
	// Dir holds the segments; created 0700 (alerts can carry request contents).
	Dir string
	// MaxBytes bounds the segment files' total size; MaxAge the age of what is kept.
	MaxBytes int64
	MaxAge   time.Duration
	// BufferSize is how many alerts may wait for the writer before new ones are dropped.
	BufferSize int
	// SyncInterval is the longest an appended alert stays unsynced (default 1s).
	SyncInterval time.Duration
	Logger       zerolog.Logger
	// Registerer receives the journal's metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time

	// create opens a new segment file (tests inject failures).
	create func(path string) (segFile, error)
}

// segFile is what the journal needs of an *os.File.
type segFile interface {
	io.Writer
	Sync() error
	Truncate(size int64) error
	Close() error
}

type segment struct {
	seq         uint64
	path        string
	size        int64
	first, last time.Time // append times of the first and latest record
}

// Journal is an open journal. It implements output.Output.
type Journal struct {
	opts   Options
	segMax int64
	log    zerolog.Logger
	ch     chan []byte
	stop   chan struct{}
	done   chan struct{}
	closed atomic.Bool
	once   sync.Once
	lock   *os.File

	mu      sync.Mutex // guards the fields below; held by the writer during a write
	segs    []*segment // oldest first; the active one, if open, is last
	active  segFile
	total   int64
	nextSeq uint64
	dirty   bool
	buf     []byte

	written, failed, droppedN, corrupt, quarantined atomic.Uint64
	// pending counts alerts queued and not yet written (or dropped) by the writer, for Flush.
	pending atomic.Int64

	mWritten prometheus.Counter
	mDropped *prometheus.CounterVec
	mErrors  prometheus.Counter
	mCorrupt prometheus.Counter
	mQuarant prometheus.Counter
	// errThrottle: a full disk fails every write; log it once in a while.
	errThrottle logging.Throttle
	lastError   atomic.Pointer[string]
}

// syncDir fsyncs a directory (a variable for tests); errors are ignored because some
// filesystems refuse fsync on directories.
var syncDir = func(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

func segName(seq uint64) string { return fmt.Sprintf("seg-%016x.log", seq) }

func parseSegName(n string) (uint64, bool) {
	hex, ok := strings.CutPrefix(n, "seg-")
	if !ok {
		return 0, false
	}
	hex, ok = strings.CutSuffix(hex, ".log")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	return v, err == nil
}

// Open opens (creating) the journal in opts.Dir and starts its writer.
func Open(opts Options) (*Journal, error) {
	if opts.MaxBytes < 4096 {
		return nil, fmt.Errorf("journal: max_bytes %d is too small (at least 4096)", opts.MaxBytes)
	}
	if opts.MaxAge <= 0 {
		return nil, errors.New("journal: max_age must be positive")
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = 10000
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.create == nil {
		opts.create = func(p string) (segFile, error) {
			return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: create %s: %w", opts.Dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(opts.Dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("journal: %s is in use by another agent: %w", opts.Dir, err)
	}
	j := &Journal{
		opts: opts, segMax: max(opts.MaxBytes/segmentsPerLimit, 1024), log: opts.Logger.With().Str("component", "journal").Logger(),
		ch: make(chan []byte, opts.BufferSize), stop: make(chan struct{}), done: make(chan struct{}), lock: lock,
		mWritten: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "falco_k8s", Name: "journal_records_total",
			Help: "Alerts written to the alert journal."}),
		mDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "falco_k8s", Name: "journal_dropped_total",
			Help: "Alerts not written to the journal, by reason (buffer_full, write_error, too_large, closed)."}, []string{"reason"}),
		mErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "falco_k8s", Name: "journal_write_errors_total",
			Help: "Failed journal writes or syncs (e.g. disk full)."}),
		mCorrupt: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "falco_k8s", Name: "journal_corrupt_records_total",
			Help: "Unreadable journal records skipped by queries (torn writes after a crash, corruption)."}),
		mQuarant: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "falco_k8s", Name: "journal_quarantined_total",
			Help: "Segment paths that were not regular files (e.g. a directory in a segment's place), set aside so journaling goes on."}),
	}
	for _, r := range []string{DropBufferFull, DropWriteError, DropTooLarge, DropClosed} {
		j.mDropped.WithLabelValues(r)
	}
	if err := j.scan(); err != nil {
		lock.Close()
		return nil, err
	}
	if opts.Registerer != nil {
		gauge := func(name, help string, f func() float64) prometheus.Collector {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "falco_k8s", Name: name, Help: help}, f)
		}
		for _, c := range []prometheus.Collector{j.mWritten, j.mDropped, j.mErrors, j.mCorrupt, j.mQuarant,
			gauge("journal_bytes", "Size of the alert journal's segment files.", func() float64 { b, _ := j.Size(); return float64(b) }),
			gauge("journal_segments", "Segment files of the alert journal.", func() float64 { _, n := j.Size(); return float64(n) }),
		} {
			if err := opts.Registerer.Register(c); err != nil {
				lock.Close()
				return nil, fmt.Errorf("journal: register metrics: %w", err)
			}
		}
	}
	go j.run()
	return j, nil
}

// scan lists the existing segments. Appends always go to a new segment, so a torn tail of the
// last one stays where it is and is skipped by readers.
func (j *Journal) scan() error {
	entries, err := os.ReadDir(j.opts.Dir)
	if err != nil {
		return fmt.Errorf("journal: read %s: %w", j.opts.Dir, err)
	}
	for _, e := range entries {
		seq, ok := parseSegName(e.Name())
		if !ok {
			continue
		}
		if seq >= j.nextSeq {
			j.nextSeq = seq + 1 // never reuse the name, whatever is there
		}
		if !e.Type().IsRegular() {
			j.quarantine(filepath.Join(j.opts.Dir, e.Name()), errors.New("not a regular file"))
			continue
		}
		p := filepath.Join(j.opts.Dir, e.Name())
		st, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if st.Size() == 0 {
			os.Remove(p)
			continue
		}
		j.segs = append(j.segs, &segment{seq: seq, path: p, size: st.Size(), first: st.ModTime(), last: st.ModTime()})
		j.total += st.Size()
		if seq >= j.nextSeq {
			j.nextSeq = seq + 1
		}
	}
	sort.Slice(j.segs, func(a, b int) bool { return j.segs[a].seq < j.segs[b].seq })
	j.mu.Lock()
	j.expireLocked(j.opts.Now(), 0)
	j.mu.Unlock()
	return nil
}

// Name implements output.Output.
func (j *Journal) Name() string { return "journal" }

// Counts implements output.StatusCounter: written, failed writes, dropped alerts.
func (j *Journal) Counts() (sent, failed, dropped uint64) {
	return j.written.Load(), j.failed.Load(), j.droppedN.Load()
}

// Send queues a's JSON form without blocking; when the writer is behind the alert is dropped
// and counted, so a slow disk never slows evaluation.
func (j *Journal) Send(a *output.Alert) {
	if a.JSON == nil {
		return // no JSON rendered: the agent always asks for it when the journal is on
	}
	j.Append(a.JSON)
}

// Append queues one Falco JSON alert (no newline) without blocking.
func (j *Journal) Append(alertJSON []byte) {
	if j.closed.Load() {
		j.drop(DropClosed, 1)
		return
	}
	j.pending.Add(1) // before the send, so the writer can never see it go negative
	select {
	case j.ch <- alertJSON:
	default:
		j.pending.Add(-1)
		j.drop(DropBufferFull, 1)
	}
}

func (j *Journal) drop(reason string, n int) {
	j.droppedN.Add(uint64(n))
	j.mDropped.WithLabelValues(reason).Add(float64(n))
}

// maxBatch bounds how many alerts one write carries.
const maxBatch = 512

func (j *Journal) run() {
	defer close(j.done)
	tick := time.NewTicker(j.opts.SyncInterval)
	defer tick.Stop()
	batch := make([][]byte, 0, maxBatch)
	for {
		select {
		case rec := <-j.ch:
			batch = j.collect(append(batch[:0], rec))
			j.write(batch)
		case <-tick.C:
			j.maintain()
		case <-j.stop:
			// Only this goroutine receives, so a non-empty channel cannot empty under us.
			for len(j.ch) > 0 {
				batch = j.collect(append(batch[:0], <-j.ch))
				j.write(batch)
			}
			j.maintain()
			return
		}
	}
}

// collect adds whatever else is queued, up to maxBatch alerts or a segment's worth of bytes.
func (j *Journal) collect(batch [][]byte) [][]byte {
	size := int64(len(batch[0]))
	for len(batch) < maxBatch && size < j.segMax/2 {
		select {
		case rec := <-j.ch:
			batch = append(batch, rec)
			size += int64(len(rec))
		default:
			return batch
		}
	}
	return batch
}

// recordOverhead is the CRC, the time and the separators of a record.
const recordOverhead = 8 + 1 + 20 + 1 + 1

func (j *Journal) write(batch [][]byte) {
	defer j.pending.Add(-int64(len(batch)))
	now := j.opts.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = j.buf[:0]
	n := 0
	for _, rec := range batch {
		if int64(len(rec)+recordOverhead) > j.segMax || bytes.IndexByte(rec, '\n') >= 0 {
			j.drop(DropTooLarge, 1)
			continue
		}
		j.buf = appendRecord(j.buf, now.UnixNano(), rec)
		n++
	}
	if n == 0 {
		return
	}
	j.expireLocked(now, int64(len(j.buf)))
	if act := j.activeSeg(); act != nil && (act.size+int64(len(j.buf)) > j.segMax || now.Sub(act.first) >= j.opts.MaxAge/segmentsPerLimit) {
		j.closeActiveLocked()
	}
	if j.active == nil {
		var seg *segment
		var f segFile
		var err error
		// A segment's name taken by something else (a directory, a file left by hand) is set
		// aside and the next name used, so it cannot stop journaling for good.
		for range 3 {
			seg = &segment{seq: j.nextSeq, path: filepath.Join(j.opts.Dir, segName(j.nextSeq)), first: now, last: now}
			if f, err = j.opts.create(seg.path); !errors.Is(err, os.ErrExist) {
				break
			}
			j.nextSeq++
			j.quarantine(seg.path, err)
		}
		if err != nil {
			j.writeFailed(fmt.Errorf("create segment: %w", err), n)
			return
		}
		// The new entry must be durable too, or a crash loses the whole fsynced segment.
		syncDir(j.opts.Dir)
		j.nextSeq++
		j.active = f
		j.segs = append(j.segs, seg)
		j.expireLocked(now, int64(len(j.buf)))
	}
	act := j.segs[len(j.segs)-1]
	w, err := j.active.Write(j.buf)
	if err != nil {
		// Roll back a partial write so the segment ends on a whole record (if even that fails,
		// readers skip the torn tail by checksum), and start the next write in a new segment
		// rather than trusting a file that just failed.
		if w > 0 && j.active.Truncate(act.size) != nil {
			act.size += int64(w)
			j.total += int64(w)
		}
		j.closeActiveLocked()
		j.writeFailed(err, n)
		return
	}
	act.size += int64(w)
	act.last = now
	j.total += int64(w)
	j.dirty = true
	j.written.Add(uint64(n))
	j.mWritten.Add(float64(n))
}

func (j *Journal) activeSeg() *segment {
	if j.active == nil || len(j.segs) == 0 {
		return nil
	}
	return j.segs[len(j.segs)-1]
}

func (j *Journal) closeActiveLocked() {
	if j.active == nil {
		return
	}
	if j.dirty {
		if err := j.active.Sync(); err != nil {
			j.errorf(err, "journal sync failed")
		}
		j.dirty = false
	}
	j.active.Close()
	j.active = nil
	if act := j.segs[len(j.segs)-1]; act.size == 0 {
		os.Remove(act.path)
		j.segs = j.segs[:len(j.segs)-1]
	}
}

// expireLocked deletes segments older than MaxAge and, oldest first, as many closed segments as
// needed for incoming more bytes to fit under MaxBytes.
func (j *Journal) expireLocked(now time.Time, incoming int64) {
	cutoff := now.Add(-j.opts.MaxAge)
	for len(j.segs) > 0 {
		s := j.segs[0]
		isActive := j.active != nil && len(j.segs) == 1
		tooOld := s.last.Before(cutoff)
		tooBig := j.total+incoming > j.opts.MaxBytes && !isActive
		if !tooOld && !tooBig {
			return
		}
		if isActive {
			j.closeActiveLocked()
			if len(j.segs) == 0 {
				return
			}
		}
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			j.errorf(err, "journal: removing an expired segment failed")
			return
		}
		j.total -= s.size
		j.segs = j.segs[1:]
	}
}

// maintain syncs what was written and applies the age limit when no alerts come.
func (j *Journal) maintain() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.active != nil && j.dirty {
		if err := j.active.Sync(); err != nil {
			j.failed.Add(1)
			j.mErrors.Inc()
			j.errorf(err, "journal sync failed; alerts since the last sync may be lost on a crash")
		}
		j.dirty = false
	}
	j.expireLocked(j.opts.Now(), 0)
}

// quarantine renames path (a segment name holding something that is not the journal's
// segment) to quarantine-<name>-<time> beside it, counts it and reports it in LastError. When
// even the rename fails, the name is simply skipped.
func (j *Journal) quarantine(path string, why error) {
	j.quarantined.Add(1)
	j.mQuarant.Inc()
	dst := filepath.Join(filepath.Dir(path), fmt.Sprintf("quarantine-%s-%d", filepath.Base(path), j.opts.Now().UnixNano()))
	if err := os.Rename(path, dst); err != nil {
		dst = ""
	}
	msg := fmt.Sprintf("journal: segment path %s was not a segment file (%v): set aside as %q; journaling continues in a new segment", path, why, dst)
	j.lastError.Store(&msg)
	j.log.Warn().Str("path", path).Str("quarantined_as", dst).AnErr("reason", why).Msg("journal segment path was not a regular file; set aside, journaling continues")
}

// Quarantined returns how many segment paths were set aside (see quarantine).
func (j *Journal) Quarantined() uint64 { return j.quarantined.Load() }

// CorruptRecords returns how many unreadable records queries skipped.
func (j *Journal) CorruptRecords() uint64 { return j.corrupt.Load() }

func (j *Journal) writeFailed(err error, n int) {
	j.failed.Add(1)
	j.mErrors.Inc()
	j.drop(DropWriteError, n)
	msg := "journal write failed; alerts are dropped from the journal (other outputs are unaffected)"
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		msg = "journal write failed: no space left on the state_dir volume; alerts are dropped from the journal until space is freed (other outputs are unaffected)"
	}
	j.errorf(err, msg)
}

// errorf logs at most once every 10 seconds, with the number of suppressed messages, so a full
// disk does not flood the log at the alert rate.
func (j *Journal) errorf(err error, msg string) {
	s := err.Error()
	j.lastError.Store(&s)
	n, ok := j.errThrottle.Allow(time.Now())
	if !ok {
		return
	}
	j.log.Error().Err(err).Str("dir", j.opts.Dir).Int("suppressed", n).Msg(msg)
}

// LastError returns the latest write or sync error ("" when none).
func (j *Journal) LastError() string {
	if p := j.lastError.Load(); p != nil {
		return *p
	}
	return ""
}

// Size returns the segments' total size and count.
func (j *Journal) Size() (bytes int64, segments int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.total, len(j.segs)
}

// Flush waits until every alert queued before the call is written (tests and shutdown).
func (j *Journal) Flush(ctx context.Context) error {
	for j.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("journal flush: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// Close implements output.Output: the queued alerts are written and synced (until ctx ends),
// then the files and the directory lock are released.
func (j *Journal) Close(ctx context.Context) error {
	var err error
	j.once.Do(func() {
		j.closed.Store(true)
		close(j.stop)
		select {
		case <-j.done:
		case <-ctx.Done():
			err = fmt.Errorf("journal: close: %w (%d alerts not written)", ctx.Err(), len(j.ch))
			return // the writer still owns the files; leave them to process exit
		}
		j.mu.Lock()
		j.closeActiveLocked()
		j.mu.Unlock()
		j.lock.Close()
	})
	return err
}

// maxRecordLine bounds one record line when reading.
const maxRecordLine = alerts.MaxLineBytes + recordOverhead

// Query returns the journal's alerts that f matches, oldest first, keeping the newest f.Limit
// (truncated reports that more matched). Records older than MaxAge are not returned.
func (j *Journal) Query(ctx context.Context, f alerts.Filter) (out [][]byte, truncated bool, err error) {
	type snap struct {
		path string
		size int64
	}
	j.mu.Lock()
	segs := make([]snap, len(j.segs))
	for i, s := range j.segs {
		segs[i] = snap{s.path, s.size}
	}
	j.mu.Unlock()
	cutoff := j.opts.Now().Add(-j.opts.MaxAge).UnixNano()
	matched := 0
	for _, s := range segs {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		fh, err := os.Open(s.path)
		if errors.Is(err, os.ErrNotExist) {
			continue // expired meanwhile
		}
		if err != nil {
			return nil, false, fmt.Errorf("journal: %w", err)
		}
		sc := bufio.NewScanner(io.LimitReader(fh, s.size))
		skipped := 0
		sc.Buffer(make([]byte, 64<<10), 2*maxRecordLine)
		sc.Split(splitRecords(&skipped))
		for sc.Scan() {
			appended, raw, garbage, derr := findRecord(sc.Bytes())
			if garbage || skipped > 0 {
				// A run of garbage (a torn write, zeroed blocks): counted once, and scanning
				// goes on from the next record found in or after it.
				skipped = 0
				j.corrupt.Add(1)
				j.mCorrupt.Inc()
			}
			if derr != nil {
				continue
			}
			if appended < cutoff {
				continue
			}
			a, perr := alerts.Parse(raw)
			if perr != nil {
				j.corrupt.Add(1)
				j.mCorrupt.Inc()
				continue
			}
			if !f.Match(a) {
				continue
			}
			matched++
			out = append(out, a.Raw)
			if f.Limit > 0 && len(out) > 2*f.Limit {
				// Keep memory bounded by the limit: drop the oldest half-excess now.
				out = append(out[:0:0], out[len(out)-f.Limit:]...)
			}
		}
		serr := sc.Err()
		fh.Close()
		if serr != nil || skipped > 0 {
			// A read error (e.g. the path is no longer a file) or garbage up to the end.
			j.corrupt.Add(1)
			j.mCorrupt.Inc()
		}
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out, f.Limit > 0 && matched > f.Limit, nil
}
