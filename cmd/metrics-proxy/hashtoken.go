package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/alloyci/hardened-runner/auth"
)

// hashToken makes a bearer token for the routes file's tokens: and prints its
// SHA-256. Without tokenFile it prints the token too; with it, the token goes
// only into that new file (mode 0600, never overwriting one: an existing file
// may hold a token in use), so it need not pass through a terminal or shell
// history on its way to Prometheus's credentials_file.
func hashToken(stdout, stderr io.Writer, tokenFile string) int {
	token, sum := auth.GenerateToken()
	if tokenFile == "" {
		fmt.Fprintf(stdout, "token: %s\nsha256: %x\n", token, sum)
		return 0
	}
	if err := writeNewSecret(tokenFile, token+"\n"); err != nil {
		if errors.Is(err, fs.ErrExist) {
			fmt.Fprintf(stderr, "metrics-proxy hash-token: %s already exists and may hold a token in use; remove it or choose another path\n", tokenFile)
		} else {
			fmt.Fprintf(stderr, "metrics-proxy hash-token: %v\n", err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "sha256: %x\n", sum)
	fmt.Fprintf(stderr, "metrics-proxy hash-token: the token is in %s; Prometheus reads it with authorization: {credentials_file: %s}\n", tokenFile, tokenFile)
	return 0
}

// writeNewSecret creates path, which must not exist (O_EXCL, so not through a
// symlink either), readable by its owner only, and writes content to it. On
// failure it removes what it created, so that no half-written token remains.
// Its errors name the path, never the content.
func writeNewSecret(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, content)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
