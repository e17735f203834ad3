package charm

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// The certificates relation (interface tls-certificates, the v1 interface spoken by the
// tls_certificates_interface v4 charm library): every unit publishes one CSR in its unit
// databag; the provider (e.g. self-signed-certificates) answers in its application databag.
const (
	EndpointCertificates = "certificates"
	// csrKey is the requirer's unit data key: a JSON list of {certificate_signing_request, ca}.
	csrKey = "certificate_signing_requests"
	// providerCertsKey is the provider's application data key: a JSON list of
	// {certificate, certificate_signing_request, ca, chain}.
	providerCertsKey = "certificates"
	// RelationKeyPath holds the unit's private key for the relation's CSR. It lives only in the
	// workload (0600), never in a databag: the provider sees the CSR alone.
	RelationKeyPath = ConfigDir + "/tls/relation.key"
	// RelationCSRPath keeps the published CSR, so a hook republishes the same request instead of
	// a new signature (ECDSA signatures are randomised) that would make the provider re-issue.
	RelationCSRPath = ConfigDir + "/tls/relation.csr"
)

// csrEntry is one element of certificate_signing_requests.
type csrEntry struct {
	CSR string `json:"certificate_signing_request"`
	CA  bool   `json:"ca"`
}

// providerCert is one element of the provider's certificates.
type providerCert struct {
	Certificate string   `json:"certificate"`
	CSR         string   `json:"certificate_signing_request"`
	CA          string   `json:"ca"`
	Chain       []string `json:"chain"`
	Revoked     bool     `json:"revoked,omitempty"`
}

// WebhookSANs are the DNS names kube-apiserver may use for this unit's webhook: the
// application Service's names and the pod's name.
func WebhookSANs(env Env) []string {
	svc := env.App + "." + env.Model + ".svc"
	return []string{svc, svc + ".cluster.local", env.PodName()}
}

// certificatesRelation is the live certificates relation ("" when there is none; the
// endpoint is limit: 1), looked up once per hook or taken from the manifest's cache
// (primeRelations).
func (c *Context) certificatesRelation(ctx context.Context, rt RelationTools) (relation, bool, error) {
	c.mu.Lock()
	known := c.certRel
	c.mu.Unlock()
	if known != nil {
		return *known, known.ID != "", nil
	}
	rels, err := c.relations(ctx, rt, EndpointCertificates)
	if err != nil {
		return relation{}, false, err
	}
	var r relation
	if len(rels) > 0 {
		r = rels[0]
	}
	c.mu.Lock()
	c.certRel = &r
	c.mu.Unlock()
	return r, r.ID != "", nil
}

// RelationTLS requests a certificate on the certificates relation and returns the one the
// provider issued for this unit's CSR (all nil while there is none, or without the relation).
// The private key is made once and kept in the workload at RelationKeyPath.
func (c *Context) RelationTLS(ctx context.Context, w Workload) (cert, key, ca []byte, err error) {
	rt, ok := c.Tools.(RelationTools)
	if !ok {
		return nil, nil, nil, nil
	}
	rel, ok, err := c.certificatesRelation(ctx, rt)
	if !ok || err != nil {
		return nil, nil, nil, err
	}
	key, csr, err := c.relationKey(ctx, w)
	if err != nil {
		return nil, nil, nil, err
	}
	c.AddSecret(string(key))
	want, err := json.Marshal([]csrEntry{{CSR: string(csr), CA: false}})
	if err != nil {
		return nil, nil, nil, err
	}
	mine, err := rt.RelationGet(ctx, rel.ID, c.Env.Unit, false)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("relation-get %s %s: %w", rel.ID, c.Env.Unit, err)
	}
	if mine[csrKey] != string(want) {
		if err := rt.RelationSet(ctx, rel.ID, false, map[string]string{csrKey: string(want)}); err != nil {
			return nil, nil, nil, fmt.Errorf("relation-set %s: %w", rel.ID, err)
		}
	}
	pc, err := c.issued(ctx, rt, rel, string(csr))
	if err != nil || pc == nil {
		return nil, nil, nil, err
	}
	if _, err := tls.X509KeyPair([]byte(pc.Certificate), key); err != nil {
		c.Log.Warn().Str("relation", rel.ID).Str("provider", rel.App).Msg("certificate from the certificates relation does not match this unit's key; ignored")
		return nil, nil, nil, nil
	}
	return []byte(pc.Certificate), key, []byte(pc.CA), nil
}

// RelationCA is the CA of the certificate issued for this unit's published CSR (nil when
// none), read from the databags alone: the webhook-config action has no workload access.
func (c *Context) RelationCA(ctx context.Context) ([]byte, error) {
	rt, ok := c.Tools.(RelationTools)
	if !ok {
		return nil, nil
	}
	rel, ok, err := c.certificatesRelation(ctx, rt)
	if !ok || err != nil {
		return nil, err
	}
	mine, err := rt.RelationGet(ctx, rel.ID, c.Env.Unit, false)
	if err != nil {
		return nil, fmt.Errorf("relation-get %s %s: %w", rel.ID, c.Env.Unit, err)
	}
	var reqs []csrEntry
	if json.Unmarshal([]byte(mine[csrKey]), &reqs) != nil || len(reqs) == 0 {
		return nil, nil
	}
	pc, err := c.issued(ctx, rt, rel, reqs[0].CSR)
	if err != nil || pc == nil {
		return nil, err
	}
	return []byte(pc.CA), nil
}

// issued finds the provider's certificate for csr; malformed provider data is logged and
// treated as no certificate (the webhook falls back).
func (c *Context) issued(ctx context.Context, rt RelationTools, rel relation, csr string) (*providerCert, error) {
	data, err := rt.RelationGet(ctx, rel.ID, rel.App, true)
	if err != nil {
		return nil, fmt.Errorf("relation-get --app %s %s: %w", rel.ID, rel.App, err)
	}
	raw := data[providerCertsKey]
	if raw == "" {
		return nil, nil
	}
	pc, err := issuedFor(raw, csr)
	if err != nil {
		c.Log.Warn().Str("relation", rel.ID).Str("provider", rel.App).Err(err).Msg("provider data ignored")
		return nil, nil
	}
	return pc, nil
}

// errProviderData is provider application data that is not the v4 library's certificates list.
var errProviderData = errors.New("certificates is not a JSON list of {certificate, certificate_signing_request, ca, chain}")

// issuedFor picks the entry of the provider's certificates (JSON) that answers csr; nil when
// none does. The CA defaults to the chain's last element.
func issuedFor(raw, csr string) (*providerCert, error) {
	var certs []providerCert
	if err := json.Unmarshal([]byte(raw), &certs); err != nil {
		return nil, errProviderData
	}
	want := strings.TrimSpace(csr)
	for i := range certs {
		pc := &certs[i]
		if want == "" || strings.TrimSpace(pc.CSR) != want || pc.Revoked || pc.Certificate == "" {
			continue
		}
		if pc.CA == "" && len(pc.Chain) > 0 {
			pc.CA = pc.Chain[len(pc.Chain)-1]
		}
		return pc, nil
	}
	return nil, nil
}

// relationKey returns the unit's relation key and CSR, made on first use and remade when the
// CSR's names no longer match WebhookSANs (the key then stays).
func (c *Context) relationKey(ctx context.Context, w Workload) (keyPEM, csrPEM []byte, err error) {
	root := c.Env.WorkloadRoot
	keyPEM, err = w.Pull(ctx, root+RelationKeyPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	var priv any
	if err == nil {
		if b, _ := pem.Decode(keyPEM); b != nil {
			priv, _ = x509.ParsePKCS8PrivateKey(b.Bytes)
		}
	}
	if priv == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("generate the certificates relation key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, nil, fmt.Errorf("encode the certificates relation key: %w", err)
		}
		priv, keyPEM = k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		if err := w.Push(ctx, root+RelationKeyPath, bytes.NewReader(keyPEM), 0o600); err != nil {
			return nil, nil, err
		}
		_ = w.Remove(ctx, root+RelationCSRPath) // a new key needs a new CSR
	}
	sans := WebhookSANs(c.Env)
	csrPEM, err = w.Pull(ctx, root+RelationCSRPath)
	if err == nil && csrMatches(csrPEM, priv, sans) {
		return keyPEM, csrPEM, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: sans[0]},
		DNSNames: sans,
	}, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("create the certificate signing request: %w", err)
	}
	csrPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if err := w.Push(ctx, root+RelationCSRPath, bytes.NewReader(csrPEM), 0o644); err != nil {
		return nil, nil, err
	}
	return keyPEM, csrPEM, nil
}

// csrMatches reports whether a stored CSR is for this key and exactly these names.
func csrMatches(csrPEM []byte, priv any, sans []string) bool {
	b, _ := pem.Decode(csrPEM)
	if b == nil {
		return false
	}
	r, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil || !slices.Equal(r.DNSNames, sans) {
		return false
	}
	k, ok := priv.(interface{ Public() crypto.PublicKey })
	if !ok {
		return false
	}
	pub, ok := k.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(r.PublicKey)
}
