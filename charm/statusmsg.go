package charm

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// maxMessage keeps `juju status` readable; the full story is in the show-rules and sync-rules
// actions and the agent's logs.
const maxMessage = 200

// StatusMessage summarises the agent's /status for the unit status, e.g.
// "53 rules (k8saudit-rules@sha256:ab12cd34ef56…), synced 3m ago", followed by what needs
// attention: a registry that refused or failed, and a rejected artifact.
func StatusMessage(st *status.Status, now time.Time, redact func(string) string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d rules", st.Ruleset.Rules.Active)
	var arts []string
	seen := map[string]bool{}
	for _, f := range st.Ruleset.Files {
		if f.Ref == "" {
			continue
		}
		a := shortArtifact(f.Ref, f.Digest)
		if !seen[a] {
			seen[a] = true
			arts = append(arts, a)
		}
	}
	if len(arts) == 0 {
		b.WriteString(" (built-in)")
	} else {
		fmt.Fprintf(&b, " (%s)", strings.Join(arts, ", "))
	}
	var last time.Time
	for _, s := range st.Sources {
		if s.LastSuccess.After(last) {
			last = s.LastSuccess
		}
	}
	if !last.IsZero() {
		fmt.Fprintf(&b, ", synced %s ago", ago(now.Sub(last)))
	}
	var problems []string
	for _, s := range st.Sources {
		if s.LastError == "" {
			continue
		}
		host := ""
		if r, err := ref.Parse(s.Ref); err == nil {
			host = r.Registry
		}
		problems = append(problems, registryProblem(host, s.Ref, s.LastError))
	}
	sort.Strings(problems)
	if li := st.LastIgnored; li != nil && (st.LastAccepted == nil || li.Time.After(st.LastAccepted.Time)) {
		what := "new rules"
		if li.Ref != "" {
			what = shortArtifact(li.Ref, li.Digest)
		}
		problems = append(problems, fmt.Sprintf("ignored %s: %s", what, li.Reason))
	}
	for _, p := range problems {
		b.WriteString("; ")
		b.WriteString(p)
	}
	msg := oneLine(redact(b.String()))
	if r := []rune(msg); len(r) > maxMessage {
		msg = string(r[:maxMessage-1]) + "…"
	}
	return msg
}

// registryProblem names the registry and says in a few words what went wrong.
func registryProblem(host, reference, lastErr string) string {
	if host == "" {
		host = reference
	}
	l := strings.ToLower(lastErr)
	switch {
	case strings.Contains(l, "401") || strings.Contains(l, "unauthorized") || strings.Contains(l, "authentication required"):
		return fmt.Sprintf("registry %s refused the credentials (unauthorized)", host)
	case strings.Contains(l, "403") || strings.Contains(l, "denied") || strings.Contains(l, "forbidden"):
		return fmt.Sprintf("registry %s denied access", host)
	case strings.Contains(l, "404") || strings.Contains(l, "not found"):
		return fmt.Sprintf("registry %s: %s not found", host, reference)
	}
	return fmt.Sprintf("registry %s: %s", host, lastErr)
}

// shortArtifact is the last path element of the repository and a digest prefix:
// "k8saudit-rules@sha256:ab12cd34ef56…".
func shortArtifact(reference, digest string) string {
	name := reference
	if r, err := ref.Parse(reference); err == nil {
		name = r.Repository
		if digest == "" {
			digest = r.Digest
		}
	}
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if digest == "" {
		return name
	}
	if len(digest) > len("sha256:")+12 {
		digest = digest[:len("sha256:")+12] + "…"
	}
	return name + "@" + digest
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
