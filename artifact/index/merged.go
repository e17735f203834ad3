package index

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// Source is an index known from the config file or the cache.
type Source struct {
	Name, URL, Backend string
}

// Merged resolves names across indexes. Later sources win on collisions, as
// in falcoctl. Indexes are loaded on first use: cached copy if present,
// otherwise fetched (and not saved, like falcoctl).
type Merged struct {
	Sources []Source
	Cache   *Cache
	HTTP    *http.Client

	once    sync.Once
	err     error
	indexes []Index
}

// Load loads every index now; Lookup and All call it implicitly.
func (m *Merged) Load(ctx context.Context) error {
	m.once.Do(func() {
		for _, s := range m.Sources {
			var entries []Entry
			var err error
			if m.Cache != nil {
				if _, statErr := m.Cache.Entries(s.Name); statErr == nil {
					entries, err = m.Cache.Entries(s.Name)
				} else {
					entries, err = Fetch(ctx, m.HTTP, s.URL, s.Backend)
				}
			} else {
				entries, err = Fetch(ctx, m.HTTP, s.URL, s.Backend)
			}
			if err != nil {
				m.err = fmt.Errorf("index %s: %w", s.Name, err)
				return
			}
			m.indexes = append(m.indexes, Index{Name: s.Name, Entries: entries})
		}
	})
	return m.err
}

// Found is an entry and the index it came from.
type Found struct {
	Index string
	Entry Entry
}

// Get finds name; the last index that has it wins.
func (m *Merged) Get(ctx context.Context, name string) (Found, bool, error) {
	if err := m.Load(ctx); err != nil {
		return Found{}, false, err
	}
	for i := len(m.indexes) - 1; i >= 0; i-- {
		for _, e := range m.indexes[i].Entries {
			if e.Name == name {
				return Found{Index: m.indexes[i].Name, Entry: e}, true, nil
			}
		}
	}
	return Found{}, false, nil
}

// All returns the merged entries (collisions resolved) sorted by index then
// name.
func (m *Merged) All(ctx context.Context) ([]Found, error) {
	if err := m.Load(ctx); err != nil {
		return nil, err
	}
	byName := map[string]Found{}
	for _, ix := range m.indexes {
		for _, e := range ix.Entries {
			byName[e.Name] = Found{Index: ix.Name, Entry: e}
		}
	}
	out := make([]Found, 0, len(byName))
	for _, f := range byName {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Index != out[j].Index {
			return out[i].Index < out[j].Index
		}
		return out[i].Entry.Name < out[j].Entry.Name
	})
	return out, nil
}

// Result is a search hit.
type Result struct {
	Found
	Score float64
}

// Search scores each keyword against entry names with a normalised,
// case-insensitive Levenshtein ratio (best keyword wins) and also matches when
// the name is a substring of the joined keywords, as falcoctl does. Unlike
// falcoctl, results are sorted by score, then name.
func Search(all []Found, keywords []string, minScore float64, typ string) []Result {
	joined := strings.Join(keywords, " ")
	var out []Result
	for _, f := range all {
		if typ != "" && f.Entry.Type != typ {
			continue
		}
		best := 0.0
		for _, k := range keywords {
			if s := similarity(strings.ToLower(k), strings.ToLower(f.Entry.Name)); s > best {
				best = s
			}
			for _, kw := range f.Entry.Keywords {
				if s := similarity(strings.ToLower(k), strings.ToLower(kw)); s > best {
					best = s
				}
			}
		}
		if strings.Contains(joined, f.Entry.Name) && best < 1 {
			best = 1
		}
		if best >= minScore {
			out = append(out, Result{Found: f, Score: best})
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].Entry.Name < out[j].Entry.Name
	})
	return out
}

func similarity(a, b string) float64 {
	if a == "" && b == "" {
		return 1
	}
	ra, rb := []rune(a), []rune(b)
	n := max(len(ra), len(rb))
	return 1 - float64(levenshtein(ra, rb))/float64(n)
}

func levenshtein(a, b []rune) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
