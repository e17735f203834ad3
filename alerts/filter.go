package alerts

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/engine"
)

// Filter selects alerts. The zero value selects everything.
type Filter struct {
	// Since and Until bound the alert's time (inclusive); zero means unbounded.
	Since, Until time.Time
	// Namespace and Rule must equal the alert's ka.target.namespace and rule when set.
	Namespace string
	Rule      string
	// Priority, when HasPriority, keeps alerts at least this severe (Falco's min_priority).
	Priority    engine.Priority
	HasPriority bool
	// Limit keeps the newest Limit alerts; 0 means no limit.
	Limit int
}

// maxSinceDays keeps a duration in days from overflowing time.Duration.
const maxSinceDays = 36500

// ParseSince reads a --since / ?since= value: a duration back from now ("90s", "30m", "1h",
// "1h30m", "7d"), or an absolute RFC 3339 time ("2025-06-01T10:00:00Z") or date ("2025-06-01",
// UTC). Empty means no bound.
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > maxSinceDays {
			return time.Time{}, fmt.Errorf("invalid since %q: want a number of days between 1 and %d, e.g. 7d", s, maxSinceDays)
		}
		return now.Add(-time.Duration(n) * 24 * time.Hour), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d == math.MaxInt64 {
		return time.Time{}, fmt.Errorf("invalid since %q: want a duration such as 30m, 1h or 7d, or an RFC 3339 time such as 2025-06-01T10:00:00Z", s)
	}
	return now.Add(-d), nil
}

// Match reports whether a passes every criterion but Limit.
func (f *Filter) Match(a *Alert) bool {
	if !f.Since.IsZero() && a.Time.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && a.Time.After(f.Until) {
		return false
	}
	if f.Rule != "" && a.Rule != f.Rule {
		return false
	}
	if f.HasPriority && a.Priority > f.Priority {
		return false
	}
	if f.Namespace != "" && a.Namespace() != f.Namespace {
		return false
	}
	return true
}

// Query renders the filter as /alerts query parameters.
func (f *Filter) Query() url.Values {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if f.Namespace != "" {
		q.Set("namespace", f.Namespace)
	}
	if f.Rule != "" {
		q.Set("rule", f.Rule)
	}
	if f.HasPriority {
		q.Set("priority", f.Priority.String())
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	return q
}

// FilterFromQuery parses /alerts query parameters (since, until, namespace, rule, priority,
// limit). A limit above maxLimit is an error so one request cannot make the agent buffer an
// unbounded answer.
func FilterFromQuery(q url.Values, now time.Time, defaultLimit, maxLimit int) (Filter, error) {
	f := Filter{Namespace: q.Get("namespace"), Rule: q.Get("rule"), Limit: defaultLimit}
	var err error
	if f.Since, err = ParseSince(q.Get("since"), now); err != nil {
		return f, err
	}
	if f.Until, err = ParseSince(q.Get("until"), now); err != nil {
		return f, fmt.Errorf("until: %w", err)
	}
	if p := q.Get("priority"); p != "" {
		if f.Priority, err = engine.ParsePriority(p); err != nil {
			return f, err
		}
		f.HasPriority = true
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 || n > maxLimit {
			return f, fmt.Errorf("invalid limit %q: want 1 to %d", l, maxLimit)
		}
		f.Limit = n
	}
	return f, nil
}

// MaxLineBytes bounds one alert line when reading files and answers.
const MaxLineBytes = 4 << 20

// ReadJSONL reads Falco JSON alerts, one per line, keeping those f matches (and the newest
// f.Limit of them). Blank lines are ignored; other lines that are not alerts (text-format
// alerts, log lines) are counted in skipped rather than failing the whole file.
func ReadJSONL(ctx context.Context, r io.Reader, f Filter) (out []*Alert, skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	n := 0
	for sc.Scan() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, skipped, err
			}
		}
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		a, perr := Parse(line)
		if perr != nil {
			skipped++
			continue
		}
		if f.Match(a) {
			out = append(out, a)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, skipped, fmt.Errorf("read alerts line %d: %w", n+1, err)
	}
	return Newest(out, f.Limit), skipped, nil
}

// Newest keeps the newest limit alerts of a chronological slice (all when limit <= 0).
func Newest(a []*Alert, limit int) []*Alert {
	if limit > 0 && len(a) > limit {
		return a[len(a)-limit:]
	}
	return a
}

// TruncatedHeader is set on an /alerts answer that hit its limit.
const TruncatedHeader = "X-Falco-K8s-Truncated"

// ErrNoInput is returned when neither an agent URL nor a file is given.
var ErrNoInput = errors.New("no alerts to read: pass --url http://agent:9765 or --file alerts.jsonl")
