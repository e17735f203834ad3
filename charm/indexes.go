package charm

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/artifact/index"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// resolveRefs replaces index names in rules-artifacts (e.g. "k8saudit-rules:0.7") with full
// references, as falcoctl resolves them through its indexes: the agent follows full
// references only. Results are cached in the workload manifest per indexes value, so indexes
// are fetched when the configuration changes (or the container is new), not on every hook.
func (c *Context) resolveRefs(ctx context.Context, s *Settings, m *manifest) error {
	var short []string
	for _, r := range s.RulesArtifacts {
		if !ref.IsFull(r) {
			short = append(short, r)
		}
	}
	if len(short) == 0 {
		if len(m.Resolved) > 0 {
			m.Resolved, m.dirty = nil, true
		}
		return nil
	}
	var key strings.Builder
	srcs := make([]index.Source, 0, len(s.Indexes))
	for _, ix := range s.Indexes {
		srcs = append(srcs, index.Source{Name: ix.Name, URL: ix.URL, Backend: ix.Backend})
		fmt.Fprintf(&key, "%s,%s,%s;", ix.Name, ix.URL, ix.Backend)
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	merged := &index.Merged{Sources: srcs, HTTP: &http.Client{Timeout: 20 * time.Second}}
	lookup := func(name string) (string, string, bool) {
		f, ok, err := merged.Get(fctx, name)
		if err != nil || !ok {
			return "", "", false
		}
		return f.Entry.Registry, f.Entry.Repository, true
	}
	resolved := map[string]string{}
	out := make([]string, 0, len(s.RulesArtifacts))
	for _, r := range s.RulesArtifacts {
		if ref.IsFull(r) {
			out = append(out, r)
			continue
		}
		k := key.String() + "|" + r
		if full, ok := m.Resolved[k]; ok {
			resolved[k] = full
			out = append(out, full)
			continue
		}
		if err := merged.Load(fctx); err != nil {
			return blocked("indexes: %v (check the index URL; the registry name can also be given in full in rules-artifacts)", err)
		}
		full, err := ref.Resolve(r, lookup)
		if err != nil {
			return blocked("rules-artifacts: %v", err)
		}
		resolved[k] = full.String()
		out = append(out, full.String())
		c.Log.Info().Str("name", r).Str("reference", full.String()).Msg("resolved through the indexes")
	}
	if len(resolved) != len(m.Resolved) {
		m.dirty = true
	}
	for k, v := range resolved {
		if m.Resolved[k] != v {
			m.dirty = true
		}
	}
	m.Resolved = resolved
	s.RulesArtifacts = out
	return nil
}
