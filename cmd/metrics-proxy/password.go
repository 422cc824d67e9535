package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/term"

	"github.com/alloyci/hardened-runner/auth"
)

// hashPassword reads one password from stdin (without echo on a terminal,
// asking twice there) and prints its bcrypt hash.
func hashPassword(stdin *os.File, stdout, stderr io.Writer, cost int) int {
	var pw []byte
	if term.IsTerminal(int(stdin.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		p1, err := term.ReadPassword(int(stdin.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			fmt.Fprintf(stderr, "metrics-proxy hash-password: cannot read the password: %v\n", err)
			return 1
		}
		fmt.Fprint(stderr, "Again: ")
		p2, err := term.ReadPassword(int(stdin.Fd()))
		fmt.Fprintln(stderr)
		if err != nil || !bytes.Equal(p1, p2) {
			fmt.Fprintln(stderr, "metrics-proxy hash-password: the two passwords differ; nothing printed")
			return 1
		}
		pw = p1
	} else {
		// One line: what `echo pw |` or a password file gives. Read at most a
		// little more than bcrypt's limit so a huge input is refused, not read.
		line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadBytes('\n')
		if err != nil && err != io.EOF {
			fmt.Fprintf(stderr, "metrics-proxy hash-password: cannot read the password: %v\n", err)
			return 1
		}
		pw = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	}
	h, err := auth.HashPassword(pw, cost)
	if err != nil {
		fmt.Fprintf(stderr, "metrics-proxy hash-password: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, h)
	return 0
}
