package charm

import (
	"errors"
	"testing"
)

func TestIssuedFor(t *testing.T) {
	const csr = "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
	for _, tc := range []struct {
		name, raw string
		cert, ca  string
		err       error
	}{
		{name: "not JSON", raw: "nope", err: errProviderData},
		{name: "object, not list", raw: `{"certificate":"x"}`, err: errProviderData},
		{name: "empty list", raw: `[]`},
		{name: "other CSR", raw: `[{"certificate":"c","certificate_signing_request":"other","ca":"a"}]`},
		{name: "ours, CSR with different trailing space", raw: `[{"certificate":"c","certificate_signing_request":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----","ca":"a","chain":["c","a"]}]`, cert: "c", ca: "a"},
		{name: "CA from the chain", raw: `[{"certificate":"c","certificate_signing_request":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n","chain":["c","root"]}]`, cert: "c", ca: "root"},
		{name: "revoked", raw: `[{"certificate":"c","certificate_signing_request":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n","ca":"a","revoked":true}]`},
		{name: "no certificate yet", raw: `[{"certificate":"","certificate_signing_request":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n","ca":"a"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := issuedFor(tc.raw, csr)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			got, ca := "", ""
			if pc != nil {
				got, ca = pc.Certificate, pc.CA
			}
			if got != tc.cert || ca != tc.ca {
				t.Errorf("certificate %q ca %q, want %q %q", got, ca, tc.cert, tc.ca)
			}
		})
	}
}

// FuzzIssuedFor: any provider data gives an entry for our CSR, nothing, or errProviderData;
// never a panic, never an entry for another CSR.
func FuzzIssuedFor(f *testing.F) {
	f.Add(`[{"certificate":"c","certificate_signing_request":"r","ca":"a","chain":["c","a"]}]`, "r")
	f.Add(`[{"certificate_signing_request":"r","chain":[]}]`, "r")
	f.Add(`{}`, "")
	f.Fuzz(func(t *testing.T, raw, csr string) {
		pc, err := issuedFor(raw, csr)
		if err != nil && !errors.Is(err, errProviderData) {
			t.Fatalf("untyped error %v", err)
		}
		if pc != nil && (pc.Certificate == "" || csr == "") {
			t.Fatalf("entry %+v for csr %q", pc, csr)
		}
	})
}
