package charm

import (
	"context"
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
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// The charm-made CA: without webhook-tls and without a certificates relation, an admission
// webhook (enforce-mode warn/deny) still needs https, so the leader makes a CA and one serving
// certificate for the Service's names, kept in an application-owned Juju secret every unit
// reads. The serving certificate is renewed a third of its life before it expires.
const (
	CharmCALabel     = "webhook-ca"
	charmCertLife    = 90 * 24 * time.Hour
	charmCARenew     = 30 * 24 * time.Hour
	charmCALife      = 10 * 365 * 24 * time.Hour
	charmSecretOwner = "application"
)

// ErrOwnedSecretMissing is a secret the charm would own that does not exist (yet).
var ErrOwnedSecretMissing = errors.New("owned secret not found")

// OwnedSecretTools are the hook tools for secrets the charm owns, kept apart from Tools like
// RelationTools.
type OwnedSecretTools interface {
	// SecretGetLabel reads an owned secret's latest content by label.
	SecretGetLabel(ctx context.Context, label string) (map[string]string, error)
	// SecretIDLabel is the URI of an owned secret (secret-info-get --label).
	SecretIDLabel(ctx context.Context, label string) (string, error)
	// SecretAdd creates an application-owned secret (leader only) and returns its URI.
	SecretAdd(ctx context.Context, label string, content map[string]string) (string, error)
	// SecretSet writes a new revision (leader only for application-owned secrets).
	SecretSet(ctx context.Context, uri string, content map[string]string) error
}

var _ OwnedSecretTools = ExecTools{}

func ownedMissing(err error, what string) error {
	var te *ToolError
	if errors.As(err, &te) && strings.Contains(te.Stderr, "not found") {
		return fmt.Errorf("%s: %w", what, ErrOwnedSecretMissing)
	}
	return err
}

func contentArgs(content map[string]string) []string {
	args := make([]string, 0, len(content))
	for _, k := range sortedKeys(content) {
		args = append(args, k+"="+content[k])
	}
	return args
}

// SecretGetLabel implements OwnedSecretTools.
func (ExecTools) SecretGetLabel(ctx context.Context, label string) (map[string]string, error) {
	m := map[string]string{}
	if err := runJSON(ctx, &m, "secret-get", "--format=json", "--label", label); err != nil {
		return nil, ownedMissing(err, label)
	}
	return m, nil
}

// SecretIDLabel implements OwnedSecretTools.
func (ExecTools) SecretIDLabel(ctx context.Context, label string) (string, error) {
	m := map[string]json.RawMessage{}
	if err := runJSON(ctx, &m, "secret-info-get", "--format=json", "--label", label); err != nil {
		return "", ownedMissing(err, label)
	}
	for id := range m {
		return "secret:" + id, nil
	}
	return "", fmt.Errorf("%s: %w", label, ErrOwnedSecretMissing)
}

// SecretAdd implements OwnedSecretTools.
func (ExecTools) SecretAdd(ctx context.Context, label string, content map[string]string) (string, error) {
	out, err := run(ctx, "secret-add", append([]string{"--owner", charmSecretOwner, "--label", label}, contentArgs(content)...)...)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// SecretSet implements OwnedSecretTools.
func (ExecTools) SecretSet(ctx context.Context, uri string, content map[string]string) error {
	_, err := run(ctx, "secret-set", append([]string{uri}, contentArgs(content)...)...)
	return err
}

// CharmTLS returns the charm-made serving certificate, key and CA, creating or renewing them on
// the leader. A non-leader uses what the leader stored (all nil until it has).
func (c *Context) CharmTLS(ctx context.Context) (cert, key, ca []byte, err error) {
	ot, ok := c.Tools.(OwnedSecretTools)
	if !ok {
		return nil, nil, nil, nil
	}
	m, exists, err := c.readCharmCA(ctx, ot)
	if err != nil {
		return nil, nil, nil, err
	}
	sans := WebhookSANs(c.Env)[:2] // one certificate for every unit: the Service's names
	fresh := exists && charmCertFresh(m, sans, c.Now())
	if fresh {
		return []byte(m["certificate"]), []byte(m["private-key"]), []byte(m["ca-certificate"]), nil
	}
	lt, ok := c.Tools.(interface {
		IsLeader(ctx context.Context) (bool, error)
	})
	leader := false
	if ok {
		if leader, err = lt.IsLeader(ctx); err != nil {
			return nil, nil, nil, fmt.Errorf("is-leader: %w", err)
		}
	}
	if !leader {
		if exists && charmPairValid(m) {
			return []byte(m["certificate"]), []byte(m["private-key"]), []byte(m["ca-certificate"]), nil
		}
		return nil, nil, nil, nil // the leader makes it; the next hook picks it up
	}
	next, err := issueCharmCert(m, sans, c.Now())
	if err != nil {
		return nil, nil, nil, err
	}
	if _, err := c.saveCharmCA(ctx, ot, exists, "", next); err != nil {
		return nil, nil, nil, err
	}
	c.Log.Info().Msg("webhook certificate issued by the charm's own CA")
	return []byte(next["certificate"]), []byte(next["private-key"]), []byte(next["ca-certificate"]), nil
}

// CharmCA is the charm-made CA (nil when there is none), for webhook-config.
func (c *Context) CharmCA(ctx context.Context) ([]byte, error) {
	ot, ok := c.Tools.(OwnedSecretTools)
	if !ok {
		return nil, nil
	}
	m, exists, err := c.readCharmCA(ctx, ot)
	if err != nil || !exists {
		return nil, err
	}
	return []byte(m["ca-certificate"]), nil
}

// readCharmCA reads the charm's CA secret by label (the owner's view), its keys registered for
// redaction; exists is false when there is none yet.
func (c *Context) readCharmCA(ctx context.Context, ot OwnedSecretTools) (m map[string]string, exists bool, err error) {
	m, err = ot.SecretGetLabel(ctx, CharmCALabel)
	if errors.Is(err, ErrOwnedSecretMissing) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("secret-get --label %s: %w", CharmCALabel, err)
	}
	c.addCharmCASecrets(m)
	return m, true, nil
}

// addCharmCASecrets registers the private keys of a CA secret's content for redaction.
func (c *Context) addCharmCASecrets(m map[string]string) {
	c.AddSecret(m["private-key"])
	c.AddSecret(m["ca-private-key"])
}

// saveCharmCA stores next as the charm's CA secret (leader only): secret-set on the existing
// one (its URI looked up unless given), else secret-add. It returns the secret's URI.
func (c *Context) saveCharmCA(ctx context.Context, ot OwnedSecretTools, exists bool, uri string, next map[string]string) (string, error) {
	c.addCharmCASecrets(next)
	if !exists {
		uri, err := ot.SecretAdd(ctx, CharmCALabel, next)
		if err != nil {
			return "", fmt.Errorf("secret-add %s: %w", CharmCALabel, err)
		}
		return uri, nil
	}
	if uri == "" {
		var err error
		if uri, err = ot.SecretIDLabel(ctx, CharmCALabel); err != nil {
			return "", fmt.Errorf("secret-info-get --label %s: %w", CharmCALabel, err)
		}
	}
	if err := ot.SecretSet(ctx, uri, next); err != nil {
		return "", fmt.Errorf("secret-set %s: %w", CharmCALabel, err)
	}
	return uri, nil
}

func charmPairValid(m map[string]string) bool {
	_, err := tls.X509KeyPair([]byte(m["certificate"]), []byte(m["private-key"]))
	return err == nil && m["ca-certificate"] != ""
}

// charmCertFresh: a valid pair for these names, more than charmCARenew from expiry.
func charmCertFresh(m map[string]string, sans []string, now time.Time) bool {
	if !charmPairValid(m) {
		return false
	}
	c := parseCertPEM(m["certificate"])
	return c != nil && slices.Equal(c.DNSNames, sans) && now.Add(charmCARenew).Before(c.NotAfter)
}

func parseCertPEM(s string) *x509.Certificate {
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		return nil
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil
	}
	return c
}

// issueCharmCert signs a new serving certificate, with the stored CA when it is usable and
// outlives the new certificate, else a new CA.
func issueCharmCert(old map[string]string, sans []string, now time.Time) (map[string]string, error) {
	caCert, caKey, caPEM, caKeyPEM, err := charmCAFrom(old, now)
	if err != nil {
		return nil, err
	}
	cert, key, err := signCharmLeaf(caCert, caKey, sans, now)
	if err != nil {
		return nil, err
	}
	return map[string]string{"certificate": cert, "private-key": key, "ca-certificate": caPEM, "ca-private-key": caKeyPEM}, nil
}

// charmCAFrom is the stored CA when it is usable and outlives a new certificate, else a new one.
func charmCAFrom(old map[string]string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, string, string, error) {
	caKey, caCert := storedCharmCA(old)
	if caCert != nil && now.Add(charmCertLife).Before(caCert.NotAfter) {
		return caCert, caKey, old["ca-certificate"], old["ca-private-key"], nil
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, "", "", fmt.Errorf("generate the charm CA key: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "falco-k8s webhook CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(charmCALife), IsCA: true, BasicConstraintsValid: true,
		MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, "", "", fmt.Errorf("create the charm CA: %w", err)
	}
	if caCert, err = x509.ParseCertificate(der); err != nil {
		return nil, nil, "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(caKey)
	if err != nil {
		return nil, nil, "", "", err
	}
	return caCert, caKey, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})), nil
}

// storedCharmCA is the CA certificate and its key from the secret's content (nils when either is
// missing, unreadable or they do not match).
func storedCharmCA(m map[string]string) (*ecdsa.PrivateKey, *x509.Certificate) {
	caCert := parseCertPEM(m["ca-certificate"])
	b, _ := pem.Decode([]byte(m["ca-private-key"]))
	if b == nil || caCert == nil {
		return nil, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, nil
	}
	caKey, _ := k.(*ecdsa.PrivateKey)
	if caKey == nil || !caKey.PublicKey.Equal(caCert.PublicKey) {
		return nil, nil
	}
	return caKey, caCert
}

// signCharmLeaf signs a serving certificate for sans (IP SANs for addresses, DNS names else),
// returning the certificate and key PEM.
func signCharmLeaf(caCert *x509.Certificate, caKey *ecdsa.PrivateKey, sans []string, now time.Time) (string, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("generate a serving key: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: sans[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(charmCertLife),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, n := range sans {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", "", fmt.Errorf("sign a serving certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})), nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)) //nolint:errcheck // crypto/rand never fails on Linux
	return n
}
