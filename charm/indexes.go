package charm

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/artifact/index"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// resolvedKeyVersion starts the keys of the manifest's resolution cache: bumped when what is
// cached per name grows (v2: the index entry's signer), so a cache written by an older charm
// is resolved again once instead of being trusted without it.
const resolvedKeyVersion = "v2;"

// RefSigner is the keyless signer a falcoctl index entry names in signature.cosign: the agent
// trusts it for the reference resolved through that entry (follow.signature.per_ref).
type RefSigner struct {
	Identity       string `json:"identity,omitempty"`
	IdentityRegexp string `json:"identity_regexp,omitempty"`
	Issuer         string `json:"issuer,omitempty"`
	IssuerRegexp   string `json:"issuer_regexp,omitempty"`
}

// complete reports whether exactly one identity form and one issuer form are set, as keyless
// verification needs.
func (r RefSigner) complete() bool {
	return (r.Identity == "") != (r.IdentityRegexp == "") && (r.Issuer == "") != (r.IssuerRegexp == "")
}

func signerOf(e index.Entry) *RefSigner {
	if e.Signature == nil || e.Signature.Cosign == nil {
		return nil
	}
	c := e.Signature.Cosign
	if c.CertificateIdentity == "" && c.CertificateIdentityRegexp == "" {
		return nil // a key-only or empty policy: nothing keyless to check
	}
	return &RefSigner{Identity: c.CertificateIdentity, IdentityRegexp: c.CertificateIdentityRegexp,
		Issuer: c.CertificateOIDCIssuer, IssuerRegexp: c.CertificateOIDCIssuerRegexp}
}

// resolveRefs replaces index names in rules-artifacts (e.g. "k8saudit-rules:0.7") with full
// references, as falcoctl resolves them through its indexes: the agent follows full
// references only. An entry's signature.cosign identity and issuer become the reference's own
// keyless signer (s.IndexSigners), verified against rules-trusted-root. Results are cached in
// the workload manifest per indexes value, so indexes are fetched when the configuration
// changes (or the container is new), not on every hook.
func (c *Context) resolveRefs(ctx context.Context, s *Settings, m *manifest) error {
	var short []string
	for _, r := range s.RulesArtifacts {
		if !ref.IsFull(r) {
			short = append(short, r)
		}
	}
	if len(short) == 0 {
		if len(m.Resolved) > 0 || len(m.Signers) > 0 {
			m.Resolved, m.Signers, m.dirty = nil, nil, true
		}
		return nil
	}
	var key strings.Builder
	key.WriteString(resolvedKeyVersion)
	srcs := make([]index.Source, 0, len(s.Indexes))
	for _, ix := range s.Indexes {
		srcs = append(srcs, index.Source{Name: ix.Name, URL: ix.URL, Backend: ix.Backend})
		fmt.Fprintf(&key, "%s,%s,%s;", ix.Name, ix.URL, ix.Backend)
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	merged := &index.Merged{Sources: srcs, HTTP: &http.Client{Timeout: 20 * time.Second}}
	var found *index.Entry
	lookup := func(name string) (string, string, bool) {
		f, ok, err := merged.Get(fctx, name)
		if err != nil || !ok {
			return "", "", false
		}
		found = &f.Entry
		return f.Entry.Registry, f.Entry.Repository, true
	}
	resolved := map[string]string{}
	signers := map[string]RefSigner{}
	fresh := map[string]bool{} // resolved by this hook, not read from the cache
	out := make([]string, 0, len(s.RulesArtifacts))
	for _, r := range s.RulesArtifacts {
		if ref.IsFull(r) {
			out = append(out, r)
			continue
		}
		k := key.String() + "|" + r
		if full, ok := m.Resolved[k]; ok {
			resolved[k] = full
			if sg, ok := m.Signers[k]; ok {
				signers[k] = sg
			}
			out = append(out, full)
			continue
		}
		if err := merged.Load(fctx); err != nil {
			return blocked("indexes: %v (check the index URL; the registry name can also be given in full in rules-artifacts)", err)
		}
		found = nil
		full, err := ref.Resolve(r, lookup)
		if err != nil {
			return blocked("rules-artifacts: %v", err)
		}
		resolved[k], fresh[k] = full.String(), true
		if found != nil {
			if sg := signerOf(*found); sg != nil {
				signers[k] = *sg
			}
		}
		out = append(out, full.String())
		c.Log.Info().Str("name", r).Str("reference", full.String()).Msg("resolved through the indexes")
	}
	if len(resolved) != len(m.Resolved) || len(signers) != len(m.Signers) {
		m.dirty = true
	}
	for k, v := range resolved {
		if m.Resolved[k] != v || m.Signers[k] != signers[k] {
			m.dirty = true
		}
	}
	m.Resolved, m.Signers = resolved, signers
	s.RulesArtifacts = out
	return c.indexSigners(s, resolved, signers, fresh)
}

// indexSigners gives the references resolved through an index entry that names a keyless
// signer that signer (s.IndexSigners), checked against rules-trusted-root. Without a trusted
// root it cannot be verified offline: a warning says so and the other signature options alone
// apply, as for `artifact install` without --trusted-root (logged when the name is resolved,
// not at every hook).
func (c *Context) indexSigners(s *Settings, resolved map[string]string, signers map[string]RefSigner, fresh map[string]bool) error {
	for _, k := range slices.Sorted(maps.Keys(signers)) {
		sg := signers[k]
		full, name := resolved[k], k[strings.LastIndexByte(k, '|')+1:]
		switch {
		case s.TrustedRoot == "":
			if !fresh[k] {
				continue
			}
			c.Log.Warn().Str("name", name).Str("reference", full).Str("identity", sg.Identity+sg.IdentityRegexp).
				Msg("the index entry names a keyless signer that is not verified: set rules-trusted-root (Sigstore's trusted_root.json) to require it")
		case !sg.complete():
			return blocked("indexes: the entry of %s names a keyless signer without exactly one certificate identity and one OIDC issuer (fix the index, or give the artifact's full reference in rules-artifacts)", name)
		default:
			if s.IndexSigners == nil {
				s.IndexSigners = map[string]RefSigner{}
			}
			s.IndexSigners[full] = sg
		}
	}
	return nil
}
