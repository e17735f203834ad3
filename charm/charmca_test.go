package charm

import (
	"testing"
	"time"
)

// TestCharmCertRenewal: the charm-made certificate is fresh until 30 days before it expires;
// the renewal keeps the CA (so caBundle stays valid) and changes the serving certificate; a
// name change or a broken secret makes a new one.
func TestCharmCertRenewal(t *testing.T) {
	sans := []string{"falco-k8s.audit.svc", "falco-k8s.audit.svc.cluster.local"}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first, err := issueCharmCert(nil, sans, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		m     map[string]string
		names []string
		at    time.Time
		fresh bool
	}{
		{name: "just issued", m: first, names: sans, at: now, fresh: true},
		{name: "59 days on", m: first, names: sans, at: now.Add(59 * 24 * time.Hour), fresh: true},
		{name: "61 days on: renew", m: first, names: sans, at: now.Add(61 * 24 * time.Hour)},
		{name: "other names", m: first, names: []string{"x.audit.svc", "x.audit.svc.cluster.local"}, at: now},
		{name: "key mismatch", m: map[string]string{"certificate": first["certificate"], "private-key": first["ca-private-key"], "ca-certificate": first["ca-certificate"]}, names: sans, at: now},
		{name: "empty", m: map[string]string{}, names: sans, at: now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := charmCertFresh(tc.m, tc.names, tc.at); got != tc.fresh {
				t.Errorf("fresh = %v, want %v", got, tc.fresh)
			}
		})
	}
	later := now.Add(61 * 24 * time.Hour)
	renewed, err := issueCharmCert(first, sans, later)
	if err != nil {
		t.Fatal(err)
	}
	if renewed["ca-certificate"] != first["ca-certificate"] || renewed["ca-private-key"] != first["ca-private-key"] {
		t.Error("renewal replaced the CA")
	}
	if renewed["certificate"] == first["certificate"] || renewed["private-key"] == first["private-key"] {
		t.Error("renewal kept the old certificate or key")
	}
	if !charmCertFresh(renewed, sans, later) {
		t.Error("renewed certificate is not fresh")
	}
	// A CA that would expire before a new certificate is replaced.
	old := parseCertPEM(first["ca-certificate"])
	caEnd := old.NotAfter
	again, err := issueCharmCert(first, sans, caEnd.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if again["ca-certificate"] == first["ca-certificate"] {
		t.Error("a CA about to expire was kept")
	}
}
