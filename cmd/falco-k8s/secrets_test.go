package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgentConfigErrorsHideSecrets: configuration mistakes around values that hold credentials
// (output URLs with a password or a token in the query, references and hosts written with user
// info, malformed -o overrides) are refused with an error naming the key, and no secret appears
// in the error, the output or the process's stderr (where logs go).
func TestAgentConfigErrorsHideSecrets(t *testing.T) {
	const pw, tok = "PASSWORD-S3CRET", "TOKEN-S3CRET"
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte("- macro: m\n  condition: ka.verb=get\n"), 0o600) //nolint:errcheck
	base := []string{"agent", "--check", "-o", "rules.builtin=false", "-o", "rules.files=[" + rules + "]", "-o", "rules.state_dir=" + dir}
	for _, tc := range []struct {
		name   string
		config string
		args   []string
		want   string // in the error
	}{
		{"file: URL that does not parse", "outputs:\n  http:\n    url: \"http://alice:" + pw + "@[::1\"\n", nil, "outputs.http.url"},
		{"file: URL with a bad scheme", "outputs:\n  http:\n    url: ftp://alice:" + pw + "@host/?token=" + tok + "\n", nil, "outputs.http.url"},
		{"-o: URL with a space", "", []string{"-o", "outputs.http.url=http://alice:" + pw + "@exa mple/?token=" + tok}, "outputs.http.url"},
		{"-o: no '='", "", []string{"-o", "outputs.http.url http://alice:" + pw + "@host/"}, "want -o dotted.key=value"},
		{"-o: value that is not YAML", "", []string{"-o", "outputs.http.url=[http://alice:" + pw + "@host/"}, "override outputs.http.url"},
		{"-o: reference with user info", "", []string{"-o", "follow.refs=['alice:" + pw + "@ghcr.io/x y']", "-o", "follow.rule_files=[k8s.yaml]"}, "follow.refs[0]"},
		{"-o: plain_http host with user info", "", []string{"-o", "follow.plain_http=[alice:" + pw + "@registry:5000]"}, "follow.plain_http[0]"},
		{"valid URL, missing CA file", "", []string{"-o", "outputs.http.url=https://alice:" + pw + "@host/?token=" + tok, "-o", "outputs.http.tls.ca_file=" + filepath.Join(dir, "nope.pem")}, "nope.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string(nil), base...)
			if tc.config != "" {
				cfg := filepath.Join(t.TempDir(), "agent.yaml")
				if err := os.WriteFile(cfg, []byte(tc.config), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-c", cfg)
			}
			args = append(args, tc.args...)
			stderrFile := filepath.Join(t.TempDir(), "stderr")
			f, err := os.Create(stderrFile)
			if err != nil {
				t.Fatal(err)
			}
			saved := os.Stderr
			os.Stderr = f
			stdout, stderr, code := runCLI(t, "", args...)
			os.Stderr = saved
			f.Close()
			logs, _ := os.ReadFile(stderrFile)
			if code == 0 {
				t.Fatalf("exit 0, want an error\n%s", stdout)
			}
			all := stdout + stderr + string(logs)
			if !strings.Contains(all, tc.want) {
				t.Errorf("error does not name %q:\n%s", tc.want, all)
			}
			for _, secret := range []string{pw, tok} {
				if strings.Contains(all, secret) {
					t.Errorf("secret %q shown:\n%s", secret, all)
				}
			}
		})
	}
}
