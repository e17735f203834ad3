package charm

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"time"
)

// The peer API carries the peer token and every unit's alerts, so it is https only: each unit
// serves it with its own certificate for its peer ingress address, signed by the charm's CA
// (charmca.go: the same application-owned secret, label webhook-ca, that the leader creates).
// The leader publishes the secret's URI in the application databag, as it does the token's,
// and every unit reads the CA by URI (a unit of the owning application may read an
// application-owned secret). A peer client trusts that CA only. A unit signs its own
// certificate with the CA key it already reads, keeps it in the workload and signs a new one
// only when its address changes, it nears expiry or the CA changed; the agent reloads it on
// SIGHUP, never by a restart.
const (
	// PeerTLSCertPath and PeerTLSKeyPath are the unit's peer API certificate and key (0600).
	PeerTLSCertPath = ConfigDir + "/peer-tls/tls.crt"
	PeerTLSKeyPath  = ConfigDir + "/peer-tls/tls.key"

	keyCASecret = "ca-secret"
)

// peerCA reads the charm's CA for the peer API; the leader creates it and publishes its URI.
func (c *Context) peerCA(ctx context.Context, rt RelationTools, p *Peers) error {
	ot, ok := c.Tools.(OwnedSecretTools)
	if !ok {
		return nil
	}
	uri := p.App[keyCASecret]
	var m map[string]string
	if p.Leader {
		var exists bool
		var err error
		if m, exists, err = c.readCharmCA(ctx, ot); err != nil {
			return err
		}
		if _, caCert := storedCharmCA(m); caCert == nil {
			// No CA yet (or an unusable one): the same content CharmTLS makes, so the webhook
			// finds its certificate there when admission is turned on.
			next, err := issueCharmCert(m, WebhookSANs(c.Env)[:2], c.Now())
			if err != nil {
				return err
			}
			if uri, err = c.saveCharmCA(ctx, ot, exists, uri, next); err != nil {
				return err
			}
			m = next
		} else if uri == "" {
			if uri, err = ot.SecretIDLabel(ctx, CharmCALabel); err != nil {
				return fmt.Errorf("secret-info-get --label %s: %w", CharmCALabel, err)
			}
		}
		if p.App[keyCASecret] != uri {
			if err := rt.RelationSet(ctx, p.RelID, true, map[string]string{keyCASecret: uri}); err != nil {
				return fmt.Errorf("relation-set %s: %w", p.RelID, err)
			}
			p.App[keyCASecret] = uri
		}
	} else if uri != "" {
		var err error
		if m, err = c.Tools.SecretGet(ctx, uri, false); err != nil {
			return fmt.Errorf("secret-get peer CA: %w", err)
		}
		c.addCharmCASecrets(m)
	}
	if _, caCert := storedCharmCA(m); caCert != nil {
		p.ca = m
		p.CA = []byte(m["ca-certificate"])
	}
	return nil
}

// peerCert gives the unit its peer API certificate: the workload's when it is still good for
// the unit's address and the CA, else a new one signed by the CA (none without a CA yet).
// From a snapshot (no CA read) the workload's pair is kept as it is.
func (c *Context) peerCert(ctx context.Context, w Workload, p *Peers) error {
	root := c.Env.WorkloadRoot
	cert, err := w.Pull(ctx, root+PeerTLSCertPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	key, err := w.Pull(ctx, root+PeerTLSKeyPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	c.AddSecret(string(key))
	if p.cached {
		if _, err := tls.X509KeyPair(cert, key); err == nil {
			p.tlsCert, p.tlsKey = cert, key
		}
		return nil
	}
	if p.ca == nil {
		return nil // no CA readable yet: no peer API until the leader has made one
	}
	if peerCertFresh(cert, key, p.CA, p.Address, c.Now()) {
		p.tlsCert, p.tlsKey = cert, key
		return nil
	}
	if p.Address == "" {
		return nil
	}
	caKey, caCert := storedCharmCA(p.ca)
	cs, ks, err := signCharmLeaf(caCert, caKey, []string{p.Address}, c.Now())
	if err != nil {
		return err
	}
	c.AddSecret(ks)
	p.tlsCert, p.tlsKey = []byte(cs), []byte(ks)
	c.Log.Info().Str("address", p.Address).Msg("peer API certificate issued by the charm's CA")
	return nil
}

// peerCertFresh: a valid pair, signed by ca, naming address, more than charmCARenew from expiry.
func peerCertFresh(cert, key, ca []byte, address string, now time.Time) bool {
	if _, err := tls.X509KeyPair(cert, key); err != nil || address == "" {
		return false
	}
	x := parseCertPEM(string(cert))
	if x == nil || !now.Add(charmCARenew).Before(x.NotAfter) {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return false
	}
	if _, err := x.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return false
	}
	if ip := net.ParseIP(address); ip != nil {
		return slices.ContainsFunc(x.IPAddresses, ip.Equal)
	}
	return slices.Contains(x.DNSNames, address)
}
