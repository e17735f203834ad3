package config

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParse feeds arbitrary files and -o overrides (newline-separated) to Parse. Properties:
// no panic; an error comes with a nil config; on success Validate is deterministic, and the
// config re-marshalled to YAML parses back to the same config (a fixpoint of marshal/parse)
// with the same Validate result.
func FuzzParse(f *testing.F) {
	for _, s := range []struct{ yaml, overrides string }{
		{"", ""},
		{string(DefaultYAML), ""},
		{"webhook:\n  listen: 127.0.0.1:8443\n", ""},
		{"webhook:\n  max_event_size: 1MiB\n  max_body_size: 1000000\n", ""},
		{"rules:\n  rule_matching: first\n", "rules.rule_matching=all"},
		{"log:\n  level: debug\n", "outputs.http.url=http://x:2801/"},
		{"", "rules.files=[a.yaml, b.yaml]\noutputs.stdout.json=true\nobservability.listen="},
		{"", "follow.refs=[ghcr.io/a/b:1]\nfollow.rule_files=[k8s_audit_rules.yaml, extra/x.yml]\nfollow.interval=1s"},
		{"follow:\n  registry_ca:\n    registry.internal:5000: /ca.pem\n  plain_http: [127.0.0.1:5000]\n  jitter: 0.25\n  max_artifact_size: 1MiB\n", ""},
		{"follow:\n  registry_ca:\n    a/b: /ca.pem\n    c d: \"\"\n    https://e: /x\n", ""},
		{"", "follow.registry_ca={ghcr.io: /ca.pem}"},
		{"webhook:\n  max_body: 1\n", ""},
		{"", "webhook.queue.size=3"},
		{"", "webhook.listen"},
		{"", "webhook.read_timeout=soon"},
		{"webhook: 3\n", ""},
		{"webhook: [\n", ""},
		{"a: &x {b: 1}\nwebhook: *x\n", ""},
		{"", "webhook.listen=#comment"},
		{"", "follow.jitter=.nan"},
		{"journal:\n  enabled: true\n  max_bytes: 1KiB\n", "kubernetes.events=maybe"},
		{"# only a comment\n", "webhook=3\nwebhook.listen=:1"},
	} {
		f.Add([]byte(s.yaml), s.overrides)
	}
	f.Fuzz(func(t *testing.T, content []byte, overrides string) {
		var ov []string
		if overrides != "" {
			ov = strings.Split(overrides, "\n")
		}
		c, err := Parse(content, ov)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse returned a config with error %v", err)
			}
			return
		}
		v1, v2 := errString(c.Validate()), errString(c.Validate())
		if v1 != v2 {
			t.Fatalf("Validate is not deterministic:\n%s\n---\n%s", v1, v2)
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal parsed config: %v", err)
		}
		c2, err := Parse(out, nil)
		if err != nil {
			t.Fatalf("re-marshalled config does not parse: %v\n%s", err, out)
		}
		out2, err := yaml.Marshal(c2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("marshal/parse is not a fixpoint:\n%s\n---\n%s", out, out2)
		}
		if v := errString(c2.Validate()); v != v1 {
			t.Fatalf("Validate differs after a round trip:\n%s\n---\n%s", v1, v)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// FuzzParseByteSize checks that every accepted size is non-negative and survives
// String() -> ParseByteSize, and that String() of any non-negative size parses back.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"0", "10", "256KiB", "12MiB", "1Gi", "3 KB", "", "-1", "1TB", "x",
		"9223372036854775807", "8589934591GiB", "8589934592GiB", "+5", " 7 B ", "KiB", "1024"} {
		f.Add(s, int64(0))
	}
	f.Add("", int64(math.MaxInt64))
	f.Add("", int64(1<<40))
	f.Fuzz(func(t *testing.T, s string, n int64) {
		b, err := ParseByteSize(s)
		if err == nil {
			if b < 0 {
				t.Fatalf("ParseByteSize(%q) = %d < 0", s, b)
			}
			b2, err := ParseByteSize(b.String())
			if err != nil || b2 != b {
				t.Fatalf("ParseByteSize(%q) = %d, String %q parses to %d, %v", s, b, b.String(), b2, err)
			}
		} else if b != 0 {
			t.Fatalf("ParseByteSize(%q) = %d with error %v", s, b, err)
		}
		if n >= 0 {
			b3, err := ParseByteSize(ByteSize(n).String())
			if err != nil || b3 != ByteSize(n) {
				t.Fatalf("ByteSize(%d).String() = %q parses to %d, %v", n, ByteSize(n).String(), b3, err)
			}
		}
	})
}
