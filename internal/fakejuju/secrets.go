package fakejuju

import (
	"crypto/rand"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// OwnedSecretTools create and update secrets the charm owns (secret-get reads them too).
var OwnedSecretTools = []string{"secret-add", "secret-set", "secret-info-get"}

// secretKeyRe is Juju's rule for secret content keys (coresecrets.validateKey).
var secretKeyRe = regexp.MustCompile(`^([a-z](?:-?[a-z0-9]){2,})$`)

// newSecretID is a 20-character xid-like ID (lower-case base32hex), as Juju's secret IDs are.
func newSecretID() string {
	const alphabet = "0123456789abcdefghijklmnopqrstuv"
	b := make([]byte, 20)
	rand.Read(b) //nolint:errcheck // crypto/rand never fails on Linux
	for i := range b {
		b[i] = alphabet[int(b[i])%32]
	}
	return string(b)
}

// secretContent parses key=value arguments.
func secretContent(args []string) (map[string]string, error) {
	m := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, usagef("key value %q not valid", a)
		}
		if !secretKeyRe.MatchString(k) {
			return nil, usagef("key %q not valid", k)
		}
		m[k] = v
	}
	return m, nil
}

// canWriteOwned applies Juju's rule: an application-owned secret is created and updated by the
// leader only; a unit-owned one by its unit.
func (st *State) canWriteOwned(owner string) error {
	if owner == "application" && !st.Leader {
		return fmt.Errorf("permission denied")
	}
	return nil
}

func runOwnedSecretTool(st *State, tool string, args []string, out io.Writer) error {
	switch tool {
	case "secret-add":
		f, err := parse(args, nil, map[string]string{"owner": "owner", "label": "label", "description": "description"})
		if err != nil {
			return err
		}
		owner := f.set["owner"]
		if owner == "" {
			owner = "application"
		}
		if owner != "application" && owner != "unit" {
			return usagef(`secret owner %q not valid`, owner)
		}
		if len(f.posArgs) == 0 {
			return usagef("missing secret value")
		}
		content, err := secretContent(f.posArgs)
		if err != nil {
			return err
		}
		if err := st.canWriteOwned(owner); err != nil {
			return err
		}
		if l := f.set["label"]; l != "" {
			if _, taken := st.SecretLabels[l]; taken {
				return fmt.Errorf("secret with label %q already exists", l)
			}
		}
		id := newSecretID()
		st.ensureSecrets()
		st.Secrets[id] = content
		st.SecretRevisions[id] = []map[string]string{content}
		st.Owned[id] = owner
		st.Granted[id] = true
		if l := f.set["label"]; l != "" {
			st.SecretLabels[l] = id
		}
		_, err = fmt.Fprintln(out, "secret:"+id)
		return err
	case "secret-set":
		f, err := parse(args, nil, map[string]string{"label": "label", "description": "description"})
		if err != nil {
			return err
		}
		if len(f.posArgs) < 1 {
			return usagef("missing secret URI")
		}
		id, ok := parseSecretURI(f.posArgs[0])
		if !ok {
			return usagef("secret URI %q not valid", f.posArgs[0])
		}
		owner, owned := st.Owned[id]
		if _, found := st.Secrets[id]; !found || !owned {
			return fmt.Errorf("secret %q not found", id)
		}
		if err := st.canWriteOwned(owner); err != nil {
			return err
		}
		if len(f.posArgs) > 1 {
			content, err := secretContent(f.posArgs[1:])
			if err != nil {
				return err
			}
			st.Secrets[id] = content
			st.SecretRevisions[id] = append(st.SecretRevisions[id], content)
		}
		if l := f.set["label"]; l != "" {
			st.SecretLabels[l] = id
		}
		return nil
	case "secret-info-get":
		// Juju prints {ID: {label, owner, revision}} for a secret the unit's application owns.
		f, fm, err := parseFormatted(args, nil, map[string]string{"format": "format", "label": "label"}, 1)
		if err != nil {
			return err
		}
		id := ""
		switch {
		case f.set["label"] != "" && len(f.posArgs) == 0:
			id = st.SecretLabels[f.set["label"]]
		case len(f.posArgs) == 1 && f.set["label"] == "":
			id, _ = parseSecretURI(f.posArgs[0])
		default:
			return usagef("specify either a secret URI or label but not both")
		}
		owner, owned := st.Owned[id]
		if !owned {
			return fmt.Errorf("secret %q not found", firstNonEmpty(f.set["label"], firstArg(f.posArgs)))
		}
		info := map[string]any{"owner": owner, "revision": len(st.SecretRevisions[id])}
		for l, lid := range st.SecretLabels {
			if lid == id {
				info["label"] = l
			}
		}
		return emit(out, fm, map[string]any{id: info})
	}
	return fmt.Errorf("fakejuju: unknown tool %q", tool)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (st *State) ensureSecrets() {
	if st.Secrets == nil {
		st.Secrets = map[string]map[string]string{}
	}
	if st.Granted == nil {
		st.Granted = map[string]bool{}
	}
	if st.SecretRevisions == nil {
		st.SecretRevisions = map[string][]map[string]string{}
	}
	if st.Owned == nil {
		st.Owned = map[string]string{}
	}
	if st.SecretLabels == nil {
		st.SecretLabels = map[string]string{}
	}
}
