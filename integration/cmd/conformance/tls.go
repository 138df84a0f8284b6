package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// registryTLS is what the registry needs to pass for the public registries
// inside a run: a certificate for their names, signed by a certificate
// authority made for the run, which the suite and its containerd trust
// through SSL_CERT_FILE. The key of the authority is never written: nothing
// else can be signed with it.
type registryTLS struct {
	CA          string // the authority's certificate, for SSL_CERT_FILE
	Certificate string // the registry's certificate and key
	Key         string
}

// makeRegistryTLS writes the authority's certificate and the registry's
// certificate and key for hosts into dir. They are valid for a week from
// now, longer than any run.
func makeRegistryTLS(dir string, hosts []string) (registryTLS, error) {
	files := registryTLS{
		CA:          filepath.Join(dir, "ca.pem"),
		Certificate: filepath.Join(dir, "registry.pem"),
		Key:         filepath.Join(dir, "registry-key.pem"),
	}
	notBefore := time.Now().Add(-time.Hour) // a clock a little behind still accepts it
	notAfter := notBefore.Add(7 * 24 * time.Hour)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return files, err
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "containerd-shim-teach-v2 conformance registry CA"},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return files, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return files, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return files, err
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: hosts[0]},
		DNSNames:     hosts,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		return files, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return files, err
	}
	for path, block := range map[string]*pem.Block{
		files.CA:          {Type: "CERTIFICATE", Bytes: caDER},
		files.Certificate: {Type: "CERTIFICATE", Bytes: der},
		files.Key:         {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return files, err
		}
	}
	return files, nil
}
